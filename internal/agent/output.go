package agent

import (
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
)

// outputTail reads what a command wrote to its log after offset start, at
// most limit bytes from the end, with secrets masked: the part of the
// output that tells why, bounded, and nothing that must not leave the
// device.
func outputTail(path string, start int64, limit int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end <= start {
		return ""
	}
	from := max(start, end-int64(limit))
	buf := make([]byte, end-from)
	if _, err := f.ReadAt(buf, from); err != nil && err != io.EOF {
		return ""
	}
	out := string(buf)
	if from > start {
		// Cut at a line start: a half line (or half a secret) helps nobody.
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			out = out[i+1:]
		}
	}
	return strings.ToValidUTF8(MaskSecrets(out), "?")
}

// secretREs are compiled on first use: zac runs as a short process for
// most commands (register, refresh) that never mask output.
var secretREs = sync.OnceValue(func() (r struct{ assign, auth, url, pem *regexp.Regexp }) {
	// name=value, name: value, --name value for names that hold secrets.
	r.assign = regexp.MustCompile(`(?i)((?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|private[_-]?key|credentials?)[\w.-]*)(\s*[:=]\s*|\s+)("[^"]*"|'[^']*'|[^\s"',;]+)`)
	// HTTP authorization headers and URLs with a password.
	r.auth = regexp.MustCompile(`(?i)(authorization:\s*(?:basic|bearer|token)\s+)\S+`)
	r.url = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@`)
	// PEM private keys, whole.
	r.pem = regexp.MustCompile(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----`)
	return r
})

// MaskSecrets replaces what looks like a secret in command output with
// ****: values after password/secret/token/key names, authorization
// headers, passwords in URLs, private keys. It errs on the side of
// masking: an admin reading the output loses a value, never a password.
func MaskSecrets(s string) string {
	re := secretREs()
	s = re.pem.ReplaceAllString(s, "-----PRIVATE KEY (masked)-----")
	s = re.auth.ReplaceAllString(s, "${1}****")
	s = re.url.ReplaceAllString(s, "${1}****@")
	return re.assign.ReplaceAllString(s, "${1}${2}****")
}
