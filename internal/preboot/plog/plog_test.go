package plog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLevels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	l, err := Open(path, "tftp", Transaction, 15, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	l.Logf(Critical, "start")
	l.Logf(Transaction, "sent")
	l.Logf(Request, "request")
	l.Logf(Debug, "packet")
	l.SetLevel(Debug, 15)
	l.Logf(Debug, "now shown")
	l.Close()
	data, _ := os.ReadFile(path)
	want := "2026-01-02 03:04:05.000 tftp [0] start\n2026-01-02 03:04:05.000 tftp [2] sent\n2026-01-02 03:04:05.000 tftp [4] now shown\n"
	if string(data) != want {
		t.Fatalf("log:\n%s\nwant:\n%s", data, want)
	}
	var nl *Logger
	nl.Logf(Critical, "nothing") // a nil logger logs nothing
}

// TestSizeRule: past the size the log is deleted and restarted.
func TestSizeRule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(path, []byte(strings.Repeat("old\n", 100)), 0o640)
	l, err := Open(path, "proxydhcp", Debug, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.limit = 1000 // bytes, for the test
	for i := range 30 {
		l.Logf(Transaction, "line %02d %s", i, strings.Repeat("x", 40))
	}
	data, _ := os.ReadFile(path)
	if len(data) > 1000 {
		t.Fatalf("log is %d bytes, past its limit", len(data))
	}
	if strings.Contains(string(data), "old") {
		t.Fatal("the old log survived the restart")
	}
	if !strings.Contains(string(data), "log restarted: it passed 0 MB") || !strings.Contains(string(data), "line 29") {
		t.Fatalf("log:\n%s", data)
	}
}

// TestEscape: a value from a client cannot start a line of its own in the
// log, nor hide behind terminal control sequences.
func TestEscape(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	l, _ := Open(path, "pbserv", Debug, 15, nil)
	l.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	l.Logf(Transaction, "upload of %s: stored", "a.img\n2026-01-02 03:04:05.000 pbserv [0] forged\r\x1b[2K\u2028\x85\xff")
	l.Close()
	data, _ := os.ReadFile(path)
	want := `2026-01-02 03:04:05.000 pbserv [2] upload of a.img\n2026-01-02 03:04:05.000 pbserv [0] forged\r\x1b[2K\u2028\x85\xff: stored` + "\n"
	if string(data) != want {
		t.Fatalf("log:\n%q\nwant:\n%q", data, want)
	}
	for _, s := range []string{"plain", "ünïcode ok", `C:\path`} {
		if Escape(s) != s {
			t.Errorf("%q changed to %q", s, Escape(s))
		}
	}
}
