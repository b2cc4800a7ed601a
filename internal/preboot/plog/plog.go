// Package plog is the preboot services' log: numbered priority levels (a
// message is written when its priority is at most the configured level)
// and the reference's size rule, under which a log that grows past its
// size is deleted and restarted.
package plog

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Priorities of the proxy DHCP and TFTP services (0-4).
const (
	Critical    = 0
	Warning     = 1
	Transaction = 2
	Request     = 3
	Debug       = 4
)

// Logger writes leveled lines to a file. The zero level logs only
// critical messages; a nil *Logger logs nothing.
type Logger struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64
	limit   int64
	level   int
	service string
	now     func() time.Time
	extra   io.Writer // a copy of every line (the foreground terminal), may be nil
}

// Open opens (appending) the log file at path; limitMB is the size rule's
// size. Lines are also copied to extra when it is not nil.
func Open(path, service string, level, limitMB int, extra io.Writer) (*Logger, error) {
	l := &Logger{path: path, service: service, level: level, limit: int64(limitMB) << 20, now: time.Now, extra: extra}
	if path == "" {
		return l, nil
	}
	f, size, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l.f, l.size = f, size
	return l, nil
}

// Configure applies a reloaded configuration: the level, the size rule and
// the file, which may move or (path "") stop. The new file is opened
// before the old one is closed, so on an error nothing changes.
func (l *Logger) Configure(path string, level, limitMB int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if path != l.path {
		var f *os.File
		var size int64
		if path != "" {
			var err error
			if f, size, err = openFile(path); err != nil {
				return err
			}
		}
		if l.f != nil {
			l.f.Close()
		}
		l.f, l.size, l.path = f, size, path
	}
	l.level, l.limit = level, int64(limitMB)<<20
	return nil
}

// Check reports whether a log file could be opened at path, creating it
// as Open would.
func Check(path string) error {
	if path == "" {
		return nil
	}
	f, _, err := openFile(path)
	if err != nil {
		return err
	}
	return f.Close()
}

func openFile(path string) (*os.File, int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, 0, fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open log: %w", err)
	}
	return f, st.Size(), nil
}

// SetLevel changes the level (on a configuration reload).
func (l *Logger) SetLevel(level, limitMB int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.level, l.limit = level, int64(limitMB)<<20
	l.mu.Unlock()
}

// Enabled reports whether messages of priority p are written, so callers
// can skip building expensive ones.
func (l *Logger) Enabled(p int) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return p <= l.level
}

// Logf writes a message of priority p.
func (l *Logger) Logf(p int, format string, args ...any) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p > l.level {
		return
	}
	line := fmt.Sprintf("%s %s [%d] %s\n", l.now().Format("2006-01-02 15:04:05.000"), l.service, p, Escape(fmt.Sprintf(format, args...)))
	if l.extra != nil {
		io.WriteString(l.extra, line)
	}
	if l.f == nil {
		return
	}
	if l.limit > 0 && l.size+int64(len(line)) > l.limit {
		l.restart()
	}
	n, _ := l.f.WriteString(line)
	l.size += int64(n)
}

// Escape makes a message one line that says what it holds: control
// characters (C0, DEL, C1, the Unicode line and paragraph separators) and
// invalid UTF-8 become \n, \r, \t or \xNN / \uNNNN. Values in log messages come from clients (image names, DHCP
// option strings, file names), and a line break in one would let a client
// write a line of its own choosing into the log.
func Escape(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100 && needsEscape(r):
			fmt.Fprintf(&b, "\\x%02x", r)
		case needsEscape(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == utf8.RuneError
}

// restart deletes the log and begins a new one (the size rule).
func (l *Logger) restart() {
	l.f.Close()
	os.Remove(l.path)
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		l.f = nil
		return
	}
	l.f, l.size = f, 0
	n, _ := fmt.Fprintf(f, "%s %s [0] log restarted: it passed %d MB\n", l.now().Format("2006-01-02 15:04:05.000"), l.service, l.limit>>20)
	l.size += int64(n)
}

// Close closes the file.
func (l *Logger) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.f.Close()
	l.f = nil
	return err
}
