package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMaskSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"db password=hunter2 ok":                                               "db password=**** ok",
		`API_KEY: "abc def"`:                                                   `API_KEY: ****`,
		"mysql --password s3cret -u root":                                      "mysql --password **** -u root",
		"client_secret='x y z';":                                               "client_secret=****;",
		"Authorization: Bearer eyJhbGciOi.abc.def":                             "Authorization: Bearer ****",
		"fetch https://admin:pa55@repo.example/x":                              "fetch https://admin:****@repo.example/x",
		"installed 3 files in /opt/app":                                        "installed 3 files in /opt/app",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----": "-----PRIVATE KEY (masked)-----",
	} {
		if got := MaskSecrets(in); got != want {
			t.Errorf("MaskSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}

// The tail of this run's output only, bounded, cut at a line start.
func TestOutputTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "package-1.log")
	earlier := "an earlier run said token=old\n"
	this := strings.Repeat("line of output\n", 100) + "last: password=x\n"
	os.WriteFile(p, []byte(earlier+this), 0o600)
	if got := outputTail(p, int64(len(earlier)), 1<<20); got != strings.Replace(this, "password=x", "password=****", 1) {
		t.Errorf("whole run: %q", got)
	}
	got := outputTail(p, int64(len(earlier)), 40)
	if len(got) > 40 || !strings.HasSuffix(got, "last: password=****\n") || strings.HasPrefix(got, "ine") {
		t.Errorf("bounded tail: %q", got)
	}
}
