package zonekit_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// interruptLimit is how long a command may take to end after SIGINT or
// SIGTERM (issue 22: every command ends within two seconds).
const interruptLimit = 2 * time.Second

// cmdInterrupt runs a program that reads FIFO, waits until it is blocked
// opening or reading it (a reader holds the FIFO open), sends it the
// signal and checks that it ends within two seconds; its exit status goes
// to stdout as "exit N", its stderr to stderr:
// interrupt INT|TERM FIFO PROGRAM ARGS...
func cmdInterrupt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: interrupt INT|TERM FIFO PROGRAM ARGS...")
	}
	sig := map[string]syscall.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM}[args[0]]
	if sig == 0 {
		ts.Fatalf("unknown signal %s", args[0])
	}
	fifo := ts.MkAbs(args[1])
	if _, err := os.Stat(fifo); errors.Is(err, os.ErrNotExist) {
		ts.Check(syscall.Mkfifo(fifo, 0o600))
	}
	prog := lookPath(ts, args[2])
	cmd := exec.Command(prog, args[3:]...)
	cmd.Dir = ts.Getenv("WORK")
	for _, k := range []string{"PATH", "HOME", "WORK", "TMPDIR", "ZONEKIT_HOME", "ZAC_HOME", "ZMAN_CONFIG_DIR", "ZMAN_USER", "ZMAN_PASSWORD", "ZMAN_CACERT", "GORACE"} {
		if v := ts.Getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	ts.Check(cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// The FIFO opens for writing without blocking only once a reader has
	// it open: then the program is blocked in its read.
	var w *os.File
	for deadline := time.Now().Add(20 * time.Second); w == nil; time.Sleep(20 * time.Millisecond) {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			w = f
			break
		}
		select {
		case err := <-done:
			ts.Fatalf("%s ended before reading %s (%v): %s", args[2], args[1], err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			ts.Fatalf("%s never opened %s", args[2], args[1])
		}
	}
	defer w.Close()

	ts.Check(cmd.Process.Signal(sig))
	start := time.Now()
	select {
	case err := <-done:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			ts.Fatalf("%s: %v", args[2], err)
		}
		ts.Logf("%s ended %s after SIG%s", args[2], time.Since(start).Round(time.Millisecond), args[0])
		fmt.Fprintf(ts.Stdout(), "exit %d\n", code)
		fmt.Fprint(ts.Stderr(), stderr.String())
	case <-time.After(interruptLimit):
		cmd.Process.Kill()
		<-done
		ts.Fatalf("%s still running %s after SIG%s", args[2], interruptLimit, args[0])
	}
}

// lookPath finds prog in the script's PATH (where the programs under test are).
func lookPath(ts *testscript.TestScript, prog string) string {
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	ts.Fatalf("%s not found in PATH", prog)
	return ""
}
