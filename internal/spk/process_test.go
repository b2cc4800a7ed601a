package spk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openTest compiles src with files and opens the CPK.
func openTest(t testing.TB, src string, files map[string]string) *Opened {
	t.Helper()
	data, _ := compileTest(t, src, files)
	return openCPK(t, data)
}

// openCPK opens a compiled CPK, closed when the test ends.
func openCPK(t testing.TB, data []byte) *Opened {
	t.Helper()
	o, err := Open(bytes.NewReader(data), OpenOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func runTest(t testing.TB, p *Processor, o *Opened, given Values) (*Result, error) {
	t.Helper()
	vals, err := Resolve(o.Package, given)
	if err != nil {
		t.Fatal(err)
	}
	if p.StateDir == "" {
		p.StateDir = t.TempDir()
	}
	return p.Run(context.Background(), o, vals)
}

// A package without content runs its commands (in an empty directory),
// and a dry run agrees.
func TestLogicOnlyCPK(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	o := openTest(t, `spk: 1
name: logic
variables: [{name: OUT, required: true}]
components:
  - component: C
    pre_install:
      - script: 'pwd > "$OUT"'
      - run: [sh, -c, 'echo run >> "$0"', "%OUT%"]
`, nil)
	if _, err := runTest(t, &Processor{DryRun: true}, o, Values{"OUT": out}); err != nil {
		t.Fatal(err)
	}
	res, err := runTest(t, &Processor{}, o, Values{"OUT": out})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !strings.HasSuffix(string(got), "/content\nrun\n") || res.Changes != 2 {
		t.Fatalf("output %q, %d changes", got, res.Changes)
	}
}

const editSPK = `spk: 1
name: edits
variables: [{name: DIR, required: true}]
components:
  - component: FILES
    files:
      - from_package: conf.txt
        to: "%DIR%/link.conf"
      - from_package: conf.txt
        to: "%DIR%/new/conf.txt"
    edits:
      - file: "%DIR%/link.conf"
        append: added
      - file: "%DIR%/hosts"
        replace: {search: "10.0.0.1 old", with: "10.0.0.1 new"}
      - file: "%DIR%/hosts"
        insert_after: {match: "localhost", lines: "10.0.0.2 more"}
      - file: "%DIR%/app.ini"
        set: {section: db, key: host, value: db2}
      - file: "%DIR%/crlf.ini"
        append: "x=1"
`

type fileState struct {
	data      string
	mode      os.FileMode
	uid, gid  int
	link      string
	isSymlink bool
}

func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		st := fileState{mode: fi.Mode()}
		st.uid, st.gid, _ = ownerOf(fi)
		if fi.Mode()&os.ModeSymlink != 0 {
			st.isSymlink = true
			st.link, _ = os.Readlink(p)
		} else if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			st.data = string(b)
		}
		out[p] = st
		return nil
	})
	return out
}

func editFixture(t *testing.T) (dir string) {
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "real.conf"), []byte("original\n"), 0o640)
	os.Symlink("real.conf", filepath.Join(dir, "link.conf"))
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n10.0.0.1 old\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.ini"), []byte("[db]\nhost=db1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "crlf.ini"), []byte("[a]\r\nk=v\r\n"), 0o644)
	if os.Geteuid() == 0 {
		for _, n := range []string{"real.conf", "hosts", "app.ini"} {
			os.Chown(filepath.Join(dir, n), 65534, 65534) // nobody:nogroup
		}
	}
	return dir
}

// Copies and edits go through symbolic links to their targets and keep
// every file's owner, group and mode; so does a rollback.
func TestSymlinksOwnersModes(t *testing.T) {
	o := openTest(t, editSPK, map[string]string{"conf.txt": "from the package\n"})
	dir := editFixture(t)
	before := snapshot(t, dir)
	res, err := runTest(t, &Processor{}, o, Values{"DIR": dir})
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, dir)
	link := filepath.Join(dir, "link.conf")
	if !after[link].isSymlink || after[link].link != "real.conf" {
		t.Fatalf("the symlink was replaced: %+v", after[link])
	}
	real := filepath.Join(dir, "real.conf")
	if after[real].data != "from the package\nadded\n" {
		t.Fatalf("target not edited: %q", after[real].data)
	}
	for _, n := range []string{"real.conf", "hosts", "app.ini", "crlf.ini"} {
		p := filepath.Join(dir, n)
		b, a := before[p], after[p]
		if a.mode != b.mode || a.uid != b.uid || a.gid != b.gid {
			t.Errorf("%s: mode/owner %v %d:%d became %v %d:%d", n, b.mode, b.uid, b.gid, a.mode, a.uid, a.gid)
		}
	}
	if res.Changes != 7 {
		t.Errorf("%d changes, want 7", res.Changes)
	}
	if after[filepath.Join(dir, "crlf.ini")].data != "[a]\r\nk=v\r\nx=1\r\n" {
		t.Errorf("CRLF: %q", after[filepath.Join(dir, "crlf.ini")].data)
	}

	// Now a failing package on the fixture: rollback puts back every
	// byte, mode, owner and link.
	dir2 := editFixture(t)
	before = snapshot(t, dir2)
	bad := openTest(t, editSPK+`    post_install:
      - run: ["false"]
`, map[string]string{"conf.txt": "from the package\n"})
	if _, err := runTest(t, &Processor{}, bad, Values{"DIR": dir2}); err == nil {
		t.Fatal("the failing step succeeded")
	}
	compareSnapshots(t, before, snapshot(t, dir2))
}

func compareSnapshots(t *testing.T, want, got map[string]fileState) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s is gone", p)
			continue
		}
		if g != w {
			t.Errorf("%s: %+v, want %+v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s was left behind", p)
		}
	}
}

// Running the same package twice changes nothing the second time, and
// the dry run predicts the same counts as the real run.
func TestSecondRunUnchanged(t *testing.T) {
	o := openTest(t, editSPK+`    post_install:
      - run: [sh, -c, 'echo x > "$DIR/made"']
        creates: "%DIR%/made"
      - run: [sh, -c, 'echo y >> "$DIR/log"']
        unless: [test, -e, "%DIR%/log"]
`, map[string]string{"conf.txt": "from the package\n"})
	dir := editFixture(t)
	dry, err := runTest(t, &Processor{DryRun: true}, o, Values{"DIR": dir})
	if err != nil {
		t.Fatal(err)
	}
	first, err := runTest(t, &Processor{}, o, Values{"DIR": dir})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Changes != first.Changes || dry.OK != first.OK || first.Changes != 9 {
		t.Fatalf("dry run ok=%d changed=%d, real run ok=%d changed=%d", dry.OK, dry.Changes, first.OK, first.Changes)
	}
	snap := snapshot(t, dir)
	for i := 0; i < 2; i++ {
		again, err := runTest(t, &Processor{DryRun: i == 0}, o, Values{"DIR": dir})
		if err != nil {
			t.Fatal(err)
		}
		if again.Changes != 0 || again.OK != 9 || (i == 1 && again.Status != "unchanged") {
			t.Fatalf("run %d: status %s ok=%d changed=%d: %+v", i, again.Status, again.OK, again.Changes, again.Steps)
		}
	}
	compareSnapshots(t, snap, snapshot(t, dir))
}

// Steps are bounded: a hung command is killed with its process group
// after the timeout; a background child holding the output does not
// hold the run; cancel kills the group too.
func TestStepTimeoutAndBackgroundChild(t *testing.T) {
	dir := t.TempDir()
	o := openTest(t, `spk: 1
name: slow
variables: [{name: DIR, required: true}]
components:
  - component: C
    pre_install:
      - script: 'sleep 30 & echo $! > "$DIR/bg.pid"'
      - script: 'sleep 30 & echo $! > "$DIR/child.pid"; wait'
        timeout: 300ms
`, nil)
	res, err := runTest(t, &Processor{}, o, Values{"DIR": dir})
	if err == nil || !strings.Contains(err.Error(), "killed after the step timeout of 300ms") {
		t.Fatalf("timeout: %v", err)
	}
	if res.Changes != 1 {
		t.Errorf("the background step did not finish: %+v", res.Steps)
	}
	bg := readPid(t, filepath.Join(dir, "bg.pid"))
	defer killPid(bg)
	if !alive(bg) {
		t.Error("the first step's background child was killed: only a timeout kills")
	}
	waitDead(t, readPid(t, filepath.Join(dir, "child.pid")))

	// Cancel: the group is killed and the run rolls back at once.
	o2 := openTest(t, `spk: 1
name: cancel
variables: [{name: DIR, required: true}]
components:
  - component: C
    pre_install:
      - script: 'sleep 30 & echo $! > "$DIR/c.pid"; wait'
`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	vals, _ := Resolve(o2.Package, Values{"DIR": dir})
	done := make(chan error)
	go func() {
		_, err := (&Processor{StateDir: t.TempDir()}).Run(ctx, o2, vals)
		done <- err
	}()
	pid := 0
	for pid == 0 {
		if b, err := os.ReadFile(filepath.Join(dir, "c.pid")); err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("cancel: %v", err)
	}
	waitDead(t, pid)
}

func readPid(t *testing.T, p string) int {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 200 && alive(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		killPid(pid)
		t.Fatalf("process %d survived its step", pid)
	}
}

// A run that crashes at any point is rolled back by Recover to the
// original state, whichever change it stopped at.
func TestCrashRecovery(t *testing.T) {
	src := editSPK + `    post_install:
      - run: [sh, -c, 'echo x > "$DIR/made"']
        undo: [rm, -f, "%DIR%/made"]
`
	o := openTest(t, src, map[string]string{"conf.txt": "from the package\n"})
	crash := errors.New("crash")
	past := false
	for n := 1; !past; n++ {
		for _, when := range []string{"before", "after"} {
			name := fmt.Sprintf("%s-change-%d", when, n)
			t.Run(name, func(t *testing.T) {
				dir := editFixture(t)
				os.MkdirAll(filepath.Join(dir, "keep"), 0o755)
				before := snapshot(t, dir)
				state := t.TempDir()
				hit := false
				p := &Processor{StateDir: state, Failpoint: func(f string) error {
					if f == name {
						hit = true
						return crash
					}
					return nil
				}}
				_, err := runTest(t, p, o, Values{"DIR": dir})
				if !hit {
					if err != nil {
						t.Fatal(err)
					}
					if when == "before" {
						past = true
					}
					t.Skip("no such change")
				}
				if !errors.Is(err, crash) && (err == nil || !strings.Contains(err.Error(), "crash")) {
					t.Fatalf("run: %v", err)
				}
				var log bytes.Buffer
				rec, err := (&Processor{StateDir: state, Log: &log}).Recover(context.Background())
				if err != nil || len(rec) != 1 || rec[0].Action != "rolled-back" {
					t.Fatalf("recover: %+v %v\n%s", rec, err, log.String())
				}
				compareSnapshots(t, before, snapshot(t, dir))
				if left, _ := os.ReadDir(state); len(left) != 0 {
					t.Errorf("state left behind: %v", left)
				}
				// Nothing more to recover.
				if rec, _ := (&Processor{StateDir: state}).Recover(context.Background()); len(rec) != 0 {
					t.Errorf("recovered twice: %+v", rec)
				}
			})
		}
	}
}

// Snapshots of a successful run are removed; with KeepRuns they are kept
// except those of files that held a secret.
func TestSnapshotsAndSecrets(t *testing.T) {
	src := `spk: 1
name: sec
variables:
  - {name: DIR, required: true}
  - {name: PW, required: true, secret: true}
components:
  - component: C
    edits:
      - file: "%DIR%/resp.ini"
        set: {key: password, value: "%PW%"}
      - file: "%DIR%/plain.txt"
        append: hello
`
	o := openTest(t, src, nil)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "resp.ini"), []byte("password=old-secret\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("x\n"), 0o644)
	state := t.TempDir()
	var log bytes.Buffer
	res, err := runTest(t, &Processor{StateDir: state, Log: &log}, o, Values{"DIR": dir, "PW": "hunter2-long"})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeptIn != "" {
		t.Errorf("kept in %s", res.KeptIn)
	}
	if left, _ := os.ReadDir(state); len(left) != 1 || left[0].Name() != installedDir {
		t.Fatalf("snapshots left after success: %v", left)
	}
	if strings.Contains(log.String(), "hunter2-long") {
		t.Error("secret in the log")
	}
	os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("y\n"), 0o644)
	res, err = runTest(t, &Processor{StateDir: state, KeepRuns: 1}, o, Values{"DIR": dir, "PW": "new-secret-9"})
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	filepath.Walk(state, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "old-secret") || strings.Contains(string(b), "new-secret-9") {
				t.Errorf("%s holds a secret: %q", p, b)
			}
			kept = append(kept, filepath.Base(p))
		}
		return nil
	})
	if res.KeptIn == "" || !strings.Contains(strings.Join(kept, " "), "plain.txt") {
		t.Errorf("kept %v in %q", kept, res.KeptIn)
	}
}

func TestRedactShortSecrets(t *testing.T) {
	secrets := []string{"long-secret", "ab"}
	if got := redact("pw=long-secret here", secrets); got != "pw=******** here" {
		t.Errorf("%q", got)
	}
	if got := redact("a line with ab inside", secrets); got != withheld {
		t.Errorf("short secret: %q", got)
	}
	if got := redact("nothing here", secrets); got != "nothing here" {
		t.Errorf("%q", got)
	}
}

// Values reach scripts as environment variables; a value written to
// shell text would be a command, so %NAME% in a script is refused.
func TestScriptValues(t *testing.T) {
	_, err := ParseSource(strings.NewReader(`spk: 1
name: inj
variables: [{name: TREE}]
components:
  - component: C
    pre_install:
      - script: "TREE='%TREE%'; echo $TREE"
`))
	if err == nil || !strings.Contains(err.Error(), `%TREE% in a script: values reach scripts as environment variables, write "$TREE"`) {
		t.Fatalf("substitution into a script: %v", err)
	}
	dir := t.TempDir()
	o := openTest(t, `spk: 1
name: env
variables: [{name: TREE}, {name: DIR}]
components:
  - component: C
    pre_install:
      - script: 'printf "%s\n" "$TREE" > "$DIR/tree"; date +%%Y > "$DIR/year"'
      - run: [sh, -c, 'printf "%s\n" "$1" > "$DIR/arg"', sh, "%TREE%"]
`, nil)
	evil := "t'; touch " + filepath.Join(dir, "pwned") + "; echo '"
	if _, err := runTest(t, &Processor{}, o, Values{"TREE": evil, "DIR": dir}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tree", "arg"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != evil+"\n" {
			t.Errorf("%s: %q", f, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("the value ran as a command")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "year")); len(b) != 5 {
		t.Errorf("%%%% in a script: %q", b)
	}
	for _, name := range []string{"PATH", "LD_PRELOAD", "IFS"} {
		if _, err := ParseSource(strings.NewReader("spk: 1\nname: x\nvariables: [{name: " + name + "}]\n")); err == nil {
			t.Errorf("variable %s accepted", name)
		}
	}
}

// env and setting requirements expand variables; undeclared ones do not compile.
func TestRequirementVariables(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "app.ini")
	os.WriteFile(ini, []byte("[db]\nhost = db1\n"), 0o644)
	o := openTest(t, `spk: 1
name: req
variables: [{name: WANT, default: web}, {name: HOST, default: db1}, {name: INI}]
requirements:
  - env: {name: ROLE, value: "%WANT%"}
  - setting: {file: "%INI%", section: db, key: host, value: "%HOST%"}
`, nil)
	h := LocalHost()
	h.LookupEnv = func(k string) (string, bool) { return "web", k == "ROLE" }
	if _, err := runTest(t, &Processor{Host: h}, o, Values{"INI": ini}); err != nil {
		t.Fatal(err)
	}
	if _, err := runTest(t, &Processor{Host: h}, o, Values{"INI": ini, "HOST": "db2"}); err == nil {
		t.Fatal("setting requirement held with another value")
	}
	for _, req := range []string{`env: {name: ROLE, value: "%NOPE%"}`, `setting: {file: /x, key: k, value: "%NOPE%"}`} {
		_, err := ParseSource(strings.NewReader("spk: 1\nname: x\nrequirements:\n  - " + req + "\n"))
		if err == nil || !strings.Contains(err.Error(), "%NOPE% is not a declared variable") {
			t.Errorf("%s: %v", req, err)
		}
	}
}

// Built-in host variables need no declaring and cannot be declared or given.
func TestHostVariables(t *testing.T) {
	p, err := ParseSource(strings.NewReader("spk: 1\nname: h\nvariables: [{name: DIR, default: \"/srv/%HOST_NAME%\"}]\nrequirements: [{file: {path: \"%DIR%/%HOST_ARCH%\", absent: true}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := Host{Vars: Values{"HOST_NAME": "web1", "HOST_ARCH": "amd64"}}
	v, err := ResolveOn(h, p, nil)
	if err != nil || v["DIR"] != "/srv/web1" || v["HOST_ARCH"] != "amd64" {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := ResolveOn(h, p, Values{"HOST_NAME": "x"}); err == nil || !strings.Contains(err.Error(), "built-in") {
		t.Errorf("given a host variable: %v", err)
	}
	if _, err := ParseSource(strings.NewReader("spk: 1\nname: h\nvariables: [{name: HOST_IP}]\n")); err == nil || !strings.Contains(err.Error(), "built-in") {
		t.Errorf("declared a host variable: %v", err)
	}
	local := LocalHost().Values(p)
	if local["HOST_OS"] == "" || local["HOST_NAME"] == "" || local["HOST_ARCH"] == "" {
		t.Errorf("local host variables: %v", local)
	}
}

const deleteSPK = `spk: 1
name: del
variables: [{name: DIR, required: true}]
components:
  - component: C
    files:
      - delete: "%DIR%/tree"
      - delete: "%DIR%/gone-already"
    edits:
      - file: "%DIR%/app.ini"
        unset: {section: db, key: password}
      - file: "%DIR%/hosts"
        remove_lines: "old.example"
`

func deleteFixture(t *testing.T) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o750)
	os.WriteFile(filepath.Join(dir, "tree", "a.txt"), []byte("a"), 0o640)
	os.WriteFile(filepath.Join(dir, "tree", "sub", "b.txt"), []byte("b"), 0o600)
	os.Symlink("../a.txt", filepath.Join(dir, "tree", "sub", "link"))
	os.WriteFile(filepath.Join(dir, "app.ini"), []byte("[db]\nhost=db1\npassword=x\n[web]\npassword=y\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n10.0.0.9 old.example\n"), 0o644)
	if os.Geteuid() == 0 {
		os.Lchown(filepath.Join(dir, "tree", "sub"), 65534, 65534)
		os.Lchown(filepath.Join(dir, "tree", "a.txt"), 65534, 65534)
		os.Lchown(filepath.Join(dir, "tree", "sub", "link"), 65534, 65534)
	}
	return dir
}

// delete, unset and remove_lines: done once, ok the second time, and
// put back whole (modes, owners, links) by a rollback or a recovery.
func TestDeleteAndRemoveOperations(t *testing.T) {
	o := openTest(t, deleteSPK, nil)
	dir := deleteFixture(t)
	res, err := runTest(t, &Processor{}, o, Values{"DIR": dir})
	if err != nil || res.Changes != 3 || res.OK != 1 {
		t.Fatalf("%v: %+v", err, res)
	}
	if _, err := os.Lstat(filepath.Join(dir, "tree")); err == nil {
		t.Error("the tree is still there")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "app.ini")); string(b) != "[db]\nhost=db1\n[web]\npassword=y\n" {
		t.Errorf("unset: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hosts")); string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("remove_lines: %q", b)
	}
	if res, err := runTest(t, &Processor{}, o, Values{"DIR": dir}); err != nil || res.Changes != 0 {
		t.Fatalf("second run: %v %+v", err, res.Steps)
	}
	// Rollback of a failed run.
	dir = deleteFixture(t)
	before := snapshot(t, dir)
	bad := openTest(t, deleteSPK+"    post_install: [{run: [\"false\"]}]\n", nil)
	if _, err := runTest(t, &Processor{}, bad, Values{"DIR": dir}); err == nil {
		t.Fatal("succeeded")
	}
	compareSnapshots(t, before, snapshot(t, dir))
	// A crash in the middle of the tree, recovered.
	for n := 1; n <= 6; n++ {
		dir = deleteFixture(t)
		before = snapshot(t, dir)
		state := t.TempDir()
		name := fmt.Sprintf("before-change-%d", n)
		_, err := runTest(t, &Processor{StateDir: state, Failpoint: func(f string) error {
			if f == name {
				return errors.New("crash")
			}
			return nil
		}}, o, Values{"DIR": dir})
		if err == nil {
			t.Fatalf("%s not reached", name)
		}
		if rec, err := (&Processor{StateDir: state}).Recover(context.Background()); err != nil || len(rec) != 1 {
			t.Fatalf("%s: recover %v %v", name, rec, err)
		}
		compareSnapshots(t, before, snapshot(t, dir))
	}
}

// One run at a time: a second Lock waits (saying for whom) until the
// first is released or its context ends.
func TestLockWaits(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var holder string
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, dir, func(h string) { holder = h }); err == nil {
		t.Fatal("locked twice")
	}
	if !strings.Contains(holder, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("holder %q", holder)
	}
	unlock()
	u2, err := Lock(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	u2()
}

// Uninstall brings the machine back to before the package's first run,
// across several runs, except originals that held a secret.
func TestUninstall(t *testing.T) {
	o := openTest(t, editSPK, map[string]string{"conf.txt": "from the package\n"})
	dir := editFixture(t)
	os.WriteFile(filepath.Join(dir, "secret.ini"), []byte("pw=hunter22\n"), 0o600)
	before := snapshot(t, dir)
	state := t.TempDir()
	if _, err := runTest(t, &Processor{StateDir: state}, o, Values{"DIR": dir}); err != nil {
		t.Fatal(err)
	}
	// A second package version run: more changes, one on a file holding a secret.
	o2 := openTest(t, strings.Replace(editSPK, "variables: [{name: DIR, required: true}]", "variables: [{name: DIR, required: true}, {name: PW, secret: true}]", 1)+`      - file: "%DIR%/hosts"
        append: "10.0.0.3 third"
      - file: "%DIR%/secret.ini"
        set: {key: pw, value: "%PW%"}
`, map[string]string{"conf.txt": "from the package\n"})
	if _, err := runTest(t, &Processor{StateDir: state}, o2, Values{"DIR": dir, "PW": "hunter33"}); err != nil {
		t.Fatal(err)
	}
	p := &Processor{StateDir: state}
	if names, _ := p.Installed(); len(names) != 1 || names[0] != "edits" {
		t.Fatalf("installed: %v", names)
	}
	res, err := p.Uninstall(context.Background(), "edits")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unrestorable) != 1 || !strings.HasSuffix(res.Unrestorable[0], "secret.ini") {
		t.Errorf("unrestorable: %v", res.Unrestorable)
	}
	after := snapshot(t, dir)
	sec := filepath.Join(dir, "secret.ini")
	delete(before, sec)
	delete(after, sec)
	compareSnapshots(t, before, after)
	if _, err := p.Uninstall(context.Background(), "edits"); err == nil {
		t.Error("uninstalled twice")
	}
	// No record holds the secret.
	filepath.Walk(state, func(q string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(q); strings.Contains(string(b), "hunter22") || strings.Contains(string(b), "hunter33") {
				t.Errorf("%s holds the secret", q)
			}
		}
		return nil
	})
}

func TestSameContent(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // several read buffers
	w := func(n string, b []byte) string {
		p := filepath.Join(dir, n)
		os.WriteFile(p, b, 0o644)
		return p
	}
	a := w("a", big)
	changedEnd := append(append([]byte(nil), big[:len(big)-1]...), 'X')
	for name, c := range map[string]struct {
		b    []byte
		same bool
	}{"equal": {big, true}, "last byte": {changedEnd, false}, "shorter": {big[:len(big)-1], false}, "longer": {append(append([]byte(nil), big...), 'x'), false}, "empty": {nil, false}} {
		if got := sameContent(a, w(name, c.b)); got != c.same {
			t.Errorf("%s: %v", name, got)
		}
	}
	if !sameContent(w("e1", nil), w("e2", nil)) {
		t.Error("two empty files differ")
	}
}

// A copy without mode: takes the packaged file's mode, whatever the umask.
func TestCopyKeepsPackagedMode(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o644)
	os.Chmod(filepath.Join(dir, "tool"), 0o775)
	data, _ := compileDir(t, dir, "spk: 1\nname: m\nvariables: [{name: D}]\ncomponents: [{component: C, files: [{from_package: tool, to: \"%D%/tool\"}]}]\n")
	o := openCPK(t, data)
	dest := t.TempDir()
	if _, err := runTest(t, &Processor{}, o, Values{"D": dest}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dest, "tool")); fi.Mode().Perm() != 0o775 {
		t.Errorf("mode %v", fi.Mode())
	}
}

// Snapshot directories an earlier version left after its runs (kept.txt,
// no journal) may hold passwords: recovery removes them.
func TestRecoverRemovesLegacySnapshots(t *testing.T) {
	state := t.TempDir()
	old := filepath.Join(state, "edir-20260101T000000.000")
	os.MkdirAll(old, 0o700)
	os.WriteFile(filepath.Join(old, "kept.txt"), []byte("00001-response.ni\t/opt/x/response.ni\n"), 0o600)
	os.WriteFile(filepath.Join(old, "00001-response.ni"), []byte("Admin Password=S3cret\n"), 0o600)
	other := filepath.Join(state, "not-a-run")
	os.MkdirAll(other, 0o700)
	var log bytes.Buffer
	if _, err := (&Processor{StateDir: state, Log: &log}).Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("legacy snapshots kept")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("an unrelated directory was removed")
	}
	if !strings.Contains(log.String(), "snapshots an earlier version kept") {
		t.Errorf("log: %s", log.String())
	}
}
