package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zonekit/internal/errkind"
)

func shSpec(t *testing.T, script string) Spec {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	pid := filepath.Join(dir, "run", "x.pid")
	return Spec{
		Title: "the test daemon", Name: "test daemon",
		PidFile: pid, OutFile: filepath.Join(dir, "x.out"), Dirs: []string{filepath.Join(dir, "run")},
		Exe: "/bin/sh", Args: []string{"-c", strings.ReplaceAll(script, "PIDFILE", pid)},
		Prefix: "x: ",
	}
}

func TestStartStop(t *testing.T) {
	s := shSpec(t, `echo $$ > PIDFILE; exec sleep 30`)
	st, err := Start(s, 5*time.Second)
	if err != nil || !st.Running {
		t.Fatalf("Start: %+v, %v", st, err)
	}
	if got := ReadStatus(s); got != st {
		t.Errorf("ReadStatus = %+v; want %+v", got, st)
	}
	if _, err := Start(s, time.Second); errkind.Of(err) != errkind.Exists || !strings.Contains(err.Error(), "the test daemon is already running") {
		t.Errorf("second Start: %v; want already running", err)
	}
	if _, err := Stop(s, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if Alive(st.Pid) {
		t.Errorf("pid %d still alive after Stop", st.Pid)
	}
}

func TestStartFailureCarriesLastWords(t *testing.T) {
	s := shSpec(t, `echo "x: port 443 is in use" >&2; exit 1`)
	_, err := Start(s, 5*time.Second)
	if err == nil || err.Error() != "the test daemon did not start: port 443 is in use" {
		t.Fatalf("Start: %v", err)
	}
}

func TestStaleOrReusedPid(t *testing.T) {
	s := shSpec(t, "true")
	if err := os.MkdirAll(filepath.Dir(s.PidFile), 0o755); err != nil {
		t.Fatal(err)
	}
	// Our own pid is alive but, per Ours, not the daemon: a reused pid.
	os.WriteFile(s.PidFile, []byte(fmt.Sprint(os.Getpid())), 0o644)
	s.Ours = func(cmdline []byte) bool { return HasArgs(cmdline, "no-such-argument") }
	if st := ReadStatus(s); st.Running {
		t.Errorf("a reused pid reads as running: %+v", st)
	}
	s.Ours = nil
	if st := ReadStatus(s); !st.Running || st.Pid != os.Getpid() {
		t.Errorf("ReadStatus = %+v; want our pid running", st)
	}
	os.WriteFile(s.PidFile, []byte("garbage"), 0o644)
	if st := ReadStatus(s); st.Running {
		t.Errorf("a garbage pid file reads as running")
	}
	if st, err := Stop(s, time.Second); err != nil || st.Running {
		t.Errorf("Stop of a stopped daemon: %+v, %v", st, err)
	}
}

func TestHasArgs(t *testing.T) {
	cmdline := []byte("pbserv\x00tftp\x00run\x00--home\x00/srv\x00")
	if !HasArgs(cmdline, "tftp", "run") || HasArgs(cmdline, "tft", "run") || HasArgs(cmdline, "imaging") {
		t.Error("HasArgs matched wrongly")
	}
}
