package zonekit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	bolt "go.etcd.io/bbolt"

	"zonekit/internal/cli/pbserv"
	"zonekit/internal/cli/zac"
	"zonekit/internal/cli/zconfigure"
	"zonekit/internal/cli/zman"
)

// TestMain lets the test binary act as each of the four programs: testscript
// puts copies named zman, zac, zconfigure and pbserv first in $PATH, and a
// copy run under one of those names runs that program's Main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"zman":       func() { os.Exit(zman.Main()) },
		"zac":        func() { os.Exit(zac.Main()) },
		"zconfigure": func() { os.Exit(zconfigure.Main()) },
		"pbserv":     func() { os.Exit(pbserv.Main()) },
		"dhcpprobe":  func() { os.Exit(dhcpProbeMain()) },
	})
}

// TestScripts runs the end-to-end scripts in testdata/script, each a page of
// the manual with its expected output. Every script gets its own HTTPS port
// ($PORT), a zone home ($ZONEKIT_HOME), an agent home ($ZAC_HOME) and a
// home directory inside $WORK; zone servers it leaves running are stopped.
// Besides testscript's own commands the scripts have exitcode, perm,
// setschema, waitfile and validjson, described at their functions below.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup:               setupScript,
		Condition:           condition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":     cmdExitCode,
			"perm":         cmdPerm,
			"setschema":    cmdSetSchema,
			"waitfile":     cmdWaitFile,
			"validjson":    cmdValidJSON,
			"truncate":     cmdTruncate,
			"tmpfs":        cmdTmpfs,
			"emptydir":     cmdEmptyDir,
			"regexcapture": cmdRegexCapture,
			"freeport":     cmdFreePort,
			"pack":         cmdPack,
			"ocsserver":    cmdOCSServer,
			"ocswait":      cmdOCSWait,
			"httpdir":      cmdHTTPDir,
			"preboot":      cmdPreboot,
			"slipgz":       cmdSlipGz,
			"zacage":       cmdZacAge,
			"signal":       cmdSignal,
			"interrupt":    cmdInterrupt,
			"proxy":        cmdProxy,
			"until":        cmdUntil,
			"leaders":      cmdLeaders,
			"writes":       cmdWrites,
			"metrics":      cmdMetrics,
			"pxeoffer":     cmdPXEOffer,
			"oldraftlog":   cmdOldRaftLog,
		},
	})
}

func setupScript(env *testscript.Env) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	home := filepath.Join(env.WorkDir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	env.Setenv("PORT", strconv.Itoa(port))
	// TESTDATA lets scripts use the examples kept in the repository.
	if wd, err := os.Getwd(); err == nil {
		env.Setenv("TESTDATA", filepath.Join(wd, "testdata"))
	}
	env.Setenv("HOME", home)
	env.Setenv("ZMAN_CONFIG_DIR", filepath.Join(home, ".config", "zonekit"))
	env.Setenv("ZONEKIT_HOME", filepath.Join(env.WorkDir, "zone"))
	env.Setenv("ZAC_HOME", filepath.Join(env.WorkDir, "agent"))
	if os.Getenv("GORACE") == "" {
		// Under -race every process sleeps a second on exit by default;
		// the scripts run hundreds of them.
		env.Setenv("GORACE", "atexit_sleep_ms=10")
	}
	env.Values[leaderWatchKey{}] = &leaderWatch{}
	env.Values[writerKey{}] = &writer{}
	// A script that fails half way must not leave a zone server behind.
	work := env.WorkDir
	env.Defer(func() {
		stopServers(env.T(), work)
		checkRaces(env.T(), work)
	})
	return nil
}

// freePort asks the kernel for a port that nothing listens on.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// stopServers stops every zone server whose pid file lies under dir, with
// SIGTERM first so it closes its store, and SIGKILL if it will not go.
func stopServers(t testscript.T, dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "zoneserver.pid" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || !isZoneServer(pid, dir) {
			return nil
		}
		t.Log(fmt.Sprintf("stopping zone server %d left running (%s)", pid, path))
		syscall.Kill(pid, syscall.SIGTERM)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(pid, 0) != nil {
				return nil
			}
		}
		syscall.Kill(pid, syscall.SIGKILL)
		return nil
	})
}

// isZoneServer reports whether pid is a `zconfigure serve` started in or
// for dir, so a stale pid file never makes us signal someone else.
func isZoneServer(pid int, dir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	if len(args) < 2 || filepath.Base(args[0]) != "zconfigure" || args[1] != "serve" {
		return false
	}
	cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return bytes.Contains(cmdline, []byte(dir)) || strings.HasPrefix(cwd, dir)
}

// exitcode N PROGRAM [ARGS...] runs a program and checks its exit status;
// its output stays available to stdout and stderr.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// perm MODE FILE... checks the permission bits of files and directories.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: perm MODE file...")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("perm: %q is not an octal mode", args[0])
	}
	for _, f := range args[1:] {
		fi, err := os.Stat(ts.MkAbs(f))
		ts.Check(err)
		got := fi.Mode().Perm()
		if (got == fs.FileMode(want)) == neg {
			ts.Fatalf("%s has mode %04o, want %s%04o", f, got, map[bool]string{true: "not ", false: ""}[neg], want)
		}
	}
}

// setschema STORE VERSION writes a schema version into a stopped zone
// store, as a newer (or older) zonekit would have left it.
func cmdSetSchema(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setschema store version")
	}
	db, err := bolt.Open(ts.MkAbs(args[0]), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	ts.Check(err)
	defer db.Close()
	ts.Check(db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte(args[1]))
	}))
}

// waitfile FILE waits up to 30 seconds for a file to exist (with !, to be gone).
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile file")
	}
	path := ts.MkAbs(args[0])
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); (err == nil) != neg {
			return
		}
	}
	ts.Fatalf("waited 30s for %s to %s", args[0], map[bool]string{true: "go away", false: "appear"}[neg])
}

// validjson [N] checks that the last command's stdout is one JSON value
// and, given N, an array of N elements.
func cmdValidJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: validjson [length]")
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &v); err != nil {
		ts.Fatalf("stdout is not JSON: %v", err)
	}
	if len(args) == 1 {
		want, err := strconv.Atoi(args[0])
		ts.Check(err)
		a, ok := v.([]any)
		if !ok {
			ts.Fatalf("stdout is JSON but not an array")
		}
		if len(a) != want {
			ts.Fatalf("stdout is a JSON array of %d elements, want %d", len(a), want)
		}
	}
}

// truncate SRC DST N copies the first N bytes of SRC to DST (damaged archives).
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: truncate SRC DST N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	data, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	if n > len(data) {
		ts.Fatalf("truncate: %s has only %d bytes", args[0], len(data))
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), data[:n], 0o600))
}

// tmpfs DIR SIZE mounts a tmpfs of SIZE on DIR for the rest of the script
// (a full disk on demand); scripts guard it with the [mount] condition.
func cmdTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: tmpfs DIR SIZE")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+args[1], "tmpfs", dir).CombinedOutput()
	if err != nil {
		ts.Fatalf("mount a tmpfs on %s: %s", dir, strings.TrimSpace(string(out)))
	}
	ts.Defer(func() { exec.Command("umount", "-l", dir).Run() })
}

// emptydir DIR fails unless DIR holds no entries.
func cmdEmptyDir(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: emptydir DIR")
	}
	entries, err := os.ReadDir(ts.MkAbs(args[0]))
	ts.Check(err)
	var names []string
	for _, e := range entries {
		if e.Name() != "lost+found" {
			names = append(names, e.Name())
		}
	}
	if (len(names) == 0) == neg {
		ts.Fatalf("%s holds %v", args[0], names)
	}
}

// canMount reports whether this process may mount a tmpfs (root with
// CAP_SYS_ADMIN), by trying once.
var canMount = sync.OnceValue(func() bool {
	dir, err := os.MkdirTemp("", "zonekit-mount-probe-")
	if err != nil {
		return false
	}
	defer os.Remove(dir)
	if exec.Command("mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", dir).Run() != nil {
		return false
	}
	exec.Command("umount", dir).Run()
	return true
})

func condition(cond string) (bool, error) {
	if prog, ok := strings.CutPrefix(cond, "tool:"); ok {
		return toolCondition(prog)
	}
	switch cond {
	case "mount":
		return canMount(), nil
	case "netns":
		return netnsOK(), nil
	case "imagingenv":
		// .ci/run installs the imaging environment's packages: a skip
		// there would hide the imaging tests.
		ok := imagingEnvOK()
		if !ok && os.Getenv("CI") == "true" {
			return false, errors.New("the imaging environment (qemu-system-x86, busybox-static, partclone, udpcast, zstd, fdisk, e2fsprogs, a kernel) is incomplete; CI=true: .ci/run installs it")
		}
		return ok, nil
	case "promtool":
		return promtoolOK()
	}
	if name, ok := strings.CutPrefix(cond, "shell:"); ok {
		return shellOK(name)
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// toolCondition is [tool:PROGRAM], testscript's [exec:PROGRAM] for the
// outside tools of interop scripts: under CI=true a missing PROGRAM fails
// the script (.ci/run installs every such tool, so a skip there would
// hide a lost test), elsewhere it is false.
func toolCondition(prog string) (bool, error) {
	if _, err := exec.LookPath(prog); err == nil {
		return true, nil
	}
	if os.Getenv("CI") == "true" {
		return false, fmt.Errorf("%s is not installed; CI=true: .ci/run installs it, so this script fails instead of skipping", prog)
	}
	return false, nil
}

// TestScriptsUseToolCondition keeps the scripts on [tool:X] for outside
// programs: testscript's own [exec:X] would let a script skip in CI.
func TestScriptsUseToolCondition(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "script", "*.txtar"))
	re := regexp.MustCompile(`(?m)^\[!?exec:[^\]]*\]`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := re.Find(data); m != nil {
			t.Errorf("%s uses %s: write [tool:...] instead, which fails under CI=true when the program is missing", f, m)
		}
	}
}

// regexcapture REGEX VAR sets $VAR to the first group of REGEX in the last
// command's stdout, with regexp metacharacters escaped so that it can be
// used inside a later pattern.
func cmdRegexCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: regexcapture REGEX VAR")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("regexcapture: no match for %q in stdout", args[0])
	}
	ts.Setenv(args[1], regexp.QuoteMeta(m[1]))
}

// checkRaces fails the script when a daemon it started (a zone server, a
// preboot service, a satellite) reported a data race in its output: under
// -race they run as the race-built test binary, but their exit status is
// nobody's to check.
func checkRaces(t testscript.T, dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		switch filepath.Ext(path) {
		case ".out", ".log", ".err":
		default:
			return nil
		}
		if fi, err := d.Info(); err != nil || fi.Size() > 8<<20 {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		if i := bytes.Index(data, []byte("WARNING: DATA RACE")); i >= 0 {
			end := min(len(data), i+3000)
			t.Fatal(fmt.Sprintf("data race reported in %s:\n%s", path, data[i:end]))
		}
		return nil
	})
}
