package zonekit_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdSignal sends a signal to the process whose pid file is given:
// signal KILL|STOP|CONT|TERM PIDFILE. Zone servers are killed without
// warning or frozen (cut off from their peers) this way.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal KILL|STOP|CONT|TERM PIDFILE")
	}
	sigs := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "TERM": syscall.SIGTERM}
	sig, ok := sigs[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %s", args[0])
	}
	data, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	ts.Check(err)
	ts.Check(syscall.Kill(pid, sig))
	if sig == syscall.SIGKILL {
		// Gone for real before the script goes on; the pid file stays,
		// as it would after a crash.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if syscall.Kill(pid, 0) != nil {
				return
			}
		}
		ts.Fatalf("process %d survived SIGKILL", pid)
	}
}

// cmdUntil runs a command again and again until it succeeds with its
// stdout or stderr matching a regular expression: until SECONDS REGEX PROGRAM ARGS... Its last output
// stays in stdout/stderr for the checks that follow. It is for what
// converges (an election, a follower catching up), never for timing.
func cmdUntil(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: until SECONDS REGEX PROGRAM ARGS...")
	}
	secs, err := strconv.Atoi(args[0])
	ts.Check(err)
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for {
		err := ts.Exec(args[2], args[3:]...)
		out := ts.ReadFile("stdout")
		if err == nil && (re.MatchString(out) || re.MatchString(ts.ReadFile("stderr"))) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after %ds, no match for %q in the output of %s: %s%s", secs, args[1], args[2], out, ts.ReadFile("stderr"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
