package spk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/diff"
)

// DefaultStepTimeout bounds a step when neither the step nor the caller
// says otherwise (the agent passes the zone's execution timeout).
const DefaultStepTimeout = 2 * time.Hour

// Processor runs CPKs on this machine.
type Processor struct {
	Log    io.Writer // one line per step; secrets are masked
	DryRun bool      // say what would change, change nothing
	// Diff, with DryRun, receives a unified diff of every file that would change.
	Diff io.Writer
	// StateDir holds one directory per run: its journal and the files it
	// replaced (for rollback). A successful run's directory is removed,
	// or kept without secret-bearing files when KeepRuns > 0.
	StateDir string
	KeepRuns int
	// StepTimeout bounds each pre/post-install command whose step sets
	// no timeout; its process group is killed when it expires.
	StepTimeout time.Duration
	Host        Host
	Now         func() time.Time
	// Systemctl is the service manager command ("systemctl").
	Systemctl string
	// SecretNames are variables whose values are secret whatever the
	// package declares (the zone's secret values): masked in the log.
	SecretNames []string
	// Failpoint, when set, is called before and after each change with
	// a name such as "before-change-3"; an error stops the run there as
	// a crash would: no rollback, no end in the journal (tests).
	Failpoint func(name string) error

	noJournal bool // benchmarks only: the cost of a run without its journal
}

// Result is what a run did.
type Result struct {
	Package    string       `json:"package"`
	Digest     string       `json:"sha256"`
	Status     string       `json:"status"` // installed, unchanged, skipped, would-install, failed
	Components []string     `json:"components"`
	Skipped    []string     `json:"skipped_components,omitempty"`
	OK         int          `json:"ok"`
	Changes    int          `json:"changed"`
	Failed     int          `json:"failed"`
	Steps      []StepResult `json:"steps"`
	RolledBack int          `json:"rolled_back,omitempty"`
	KeptIn     string       `json:"kept_in,omitempty"` // the run's snapshots, when kept
	Reason     string       `json:"reason,omitempty"`
	// Output is the last lines of the failed step's command output.
	Output []string `json:"output,omitempty"`
}

// StepResult is one step's outcome.
type StepResult struct {
	Component string `json:"component"`
	Step      string `json:"step"`
	Status    string `json:"status"` // ok, changed, failed
	What      string `json:"what"`
}

// errCrash stops a run the way a crash would (Failpoint).
type errCrash struct{ err error }

func (e errCrash) Error() string { return e.err.Error() }

// run is the state of one package run.
type run struct {
	p        *Processor
	cpk      *Opened
	vals     Values
	env      []string // os.Environ plus the package's values
	secrets  []string
	undo     []undoRec
	overlay  map[string]*virtual // dry run: files as they would be
	dir      string              // the run's state directory
	j        *journal
	comp     string
	step     string
	res      *Result
	ctx      context.Context
	nkept    int
	nchanges int
	dirs     map[string]bool // directories known to exist
	// secretPaths are files a step wrote a secret into: their snapshots
	// are never kept after the run.
	secretPaths map[string]bool
	lastOutput  []string
	secretVars  map[string]bool
	secretStep  bool // the current step's text names a secret variable
	// settled are the files the component's copies and edits leave as
	// they already are: their steps are ok, not done again (a copy
	// then an edit of the same file changes nothing on a second run).
	settled      map[string]bool
	settledValid bool
	comps        []*Component
	allUndo      []undoRec // every change, kept after a rollback empties undo (to sync)
}

// settledPaths simulates (as a dry run does) the copies and edits from
// component i on, up to the next command step, and returns the files
// whose final content and mode are what they already hold.
func (r *run) settledPaths(comps []*Component, i int) map[string]bool {
	files, edits := false, false
	for k := i; k < len(comps); k++ {
		files = files || len(comps[k].Files) > 0
		edits = edits || len(comps[k].Edits) > 0
		if len(comps[k].PostInstall) > 0 || k > i && len(comps[k].PreInstall) > 0 {
			break
		}
	}
	if !files || !edits {
		return nil // without both, each step's own check is exact
	}
	sim := &run{p: &Processor{DryRun: true, Host: r.p.Host}, cpk: r.cpk, vals: r.vals, res: &Result{}, ctx: r.ctx,
		overlay: map[string]*virtual{}, secretVars: r.secretVars, secretPaths: map[string]bool{}}
	for k, v := range r.overlay {
		sim.overlay[k] = v
	}
	for k := i; k < len(comps); k++ {
		c := comps[k]
		sim.comp = c.CompName
		if k > i {
			if len(c.PreInstall) > 0 {
				break
			}
			ok, err := sim.requirements(c)
			if err != nil {
				break
			}
			if !ok {
				continue
			}
		}
		for _, f := range c.Files {
			if f.Move != "" || sim.file(f) != nil {
				return nil
			}
		}
		for _, e := range c.Edits {
			if sim.edit(e) != nil {
				return nil
			}
		}
		if len(c.PostInstall) > 0 {
			break
		}
	}
	out := map[string]bool{}
	for p, v := range sim.overlay {
		// Only files the segment edits: a file only copied is checked
		// exactly by its own step (streamed, any size).
		if old, ok := r.overlay[p]; v.removed || v.data == nil || ok && old == v {
			continue
		}
		if v.mode != 0 {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != v.mode.Perm() {
				continue
			}
		}
		final, err1 := sim.content(p)
		now, err2 := r.content(p)
		if err1 == nil && err2 == nil && bytes.Equal(final, now) {
			out[p] = true
		}
	}
	return out
}

// virtual is a dry run's view of a file: its content, where to read it,
// or gone.
type virtual struct {
	data    []byte
	src     string
	removed bool
	mode    os.FileMode // asked for by a copy (0: any)
}

func (v *virtual) modeOr() os.FileMode {
	if v == nil {
		return 0
	}
	return v.mode
}

func (p *Processor) defaults() {
	if p.Host.LookupEnv == nil {
		p.Host = LocalHost()
	}
	if p.Systemctl == "" {
		p.Systemctl = "systemctl"
	}
	if p.StepTimeout <= 0 {
		p.StepTimeout = DefaultStepTimeout
	}
	if p.StateDir == "" {
		p.StateDir = filepath.Join(os.TempDir(), "zonekit-spk")
	}
	if p.Now == nil {
		p.Now = time.Now
	}
}

func (p *Processor) logLine(s string) {
	if p.Log != nil {
		fmt.Fprintf(p.Log, "%s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05Z"), s)
	}
}

// Run applies an opened CPK with the given values (already resolved with
// Resolve). Each step is ok (already as wanted) or changed; on failure
// everything it changed is put back, in reverse order, and the error
// names the component and step. Callers hold Lock and call Recover first.
func (p *Processor) Run(ctx context.Context, cpk *Opened, vals Values) (*Result, error) {
	p.defaults()
	r := &run{p: p, cpk: cpk, vals: vals, secrets: Secrets(cpk.Package, vals, p.SecretNames...), ctx: ctx,
		res: &Result{Package: cpk.Package.Name, Digest: cpk.Digest, Steps: []StepResult{}}, secretPaths: map[string]bool{}}
	r.secretVars = map[string]bool{}
	for _, d := range cpk.Package.Declared() {
		if d.Secret {
			r.secretVars[d.Name] = true
		}
	}
	for _, n := range p.SecretNames {
		r.secretVars[n] = true
	}
	r.env = os.Environ()
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		r.env = append(r.env, k+"="+vals[k])
	}
	if p.DryRun {
		r.overlay = map[string]*virtual{}
	} else {
		r.dir = filepath.Join(p.StateDir, fmt.Sprintf("%s-%s", cpk.Package.Name, p.Now().UTC().Format("20060102T150405.000000000")))
		if p.noJournal {
			if err := os.MkdirAll(r.dir, 0o700); err != nil {
				return r.res, err
			}
		}
		j, err := createJournal(r.dir, journalBegin{Package: cpk.Package.Name, Version: cpk.Package.Version, Digest: cpk.Digest, Started: p.Now().UTC(), PID: os.Getpid()})
		if err != nil {
			return r.res, fmt.Errorf("package %s: %w", cpk.Package.Name, err)
		}
		r.j = j
		if p.noJournal {
			j.close()
			os.Remove(filepath.Join(r.dir, journalName))
			r.j = nil
		}
	}
	r.logf("package %s %s (CPK SHA-256 %s)%s", cpk.Package.Name, cpk.Package.Version, cpk.Digest, map[bool]string{true: ", dry run", false: ""}[p.DryRun])
	err := r.all()
	var crash errCrash
	if errors.As(err, &crash) {
		r.j.close()
		return r.res, err
	}
	end := "installed"
	switch {
	case err == nil && r.res.Status == "":
		r.res.Status = "installed"
		if r.res.Changes == 0 {
			r.res.Status = "unchanged"
		}
		if p.DryRun {
			r.res.Status = "would-install"
		}
	case err != nil:
		r.res.Status = "failed"
		r.res.Failed++
		r.res.Reason = r.redact(err.Error())
		r.res.Output = r.lastOutput
		r.res.Steps = append(r.res.Steps, StepResult{Component: r.comp, Step: r.step, Status: "failed", What: r.res.Reason})
		r.logf("FAILED: %s", r.res.Reason)
		if r.rollback() {
			end = "rolled-back"
		} else {
			end = "rollback-incomplete"
		}
	}
	if !p.DryRun {
		r.finish(end)
		// Files are renamed into place unsynced, one per step; one sync
		// of each file system the run wrote to makes the whole run (or
		// its rollback) durable: a thousand fsyncs would cost seconds.
		// Commands see to their own writes (dpkg syncs its own).
		dirs := []string{r.p.StateDir}
		for _, u := range r.allUndo {
			if u.Path != "" {
				dirs = append(dirs, filepath.Dir(u.Path))
			}
		}
		syncPaths(dirs)
	}
	r.comp, r.step = "", ""
	r.logf("package %s: %s (ok=%d changed=%d failed=%d)", cpk.Package.Name, r.res.Status, r.res.OK, r.res.Changes, r.res.Failed)
	if err != nil {
		return r.res, fmt.Errorf("package %s: %w (%d change(s) rolled back)", cpk.Package.Name, errors.New(r.res.Reason), r.res.RolledBack)
	}
	return r.res, nil
}

// finish ends the journal and removes what the run no longer needs: all
// of it after a success (or a complete rollback), except the newest
// KeepRuns successful runs' snapshots of files that never held a secret.
func (r *run) finish(end string) {
	var sp []string
	for p := range r.secretPaths {
		sp = append(sp, p)
	}
	if end == "installed" {
		// Before the end line: a crash in between rolls the run back,
		// and the record's entries for it are then already undone.
		if err := r.recordInstall(); err != nil {
			r.logf("install record (for an uninstall) not updated: %v", err)
		}
	}
	r.j.write(journalLine{End: end, Secrets: sp})
	r.j.close()
	switch {
	case end == "rollback-incomplete":
		r.res.KeptIn = r.dir
		r.logf("the files this run replaced are kept in %s", r.dir)
	case end == "installed" && r.p.KeepRuns > 0 && r.nkept > 0:
		for _, u := range r.undo {
			if u.Op == "restore" && (r.secretPaths[u.Path] || r.holdsSecret(u.Kept)) {
				os.Remove(u.Kept)
			}
		}
		r.res.KeptIn = r.dir
		pruneHistory(r.p.StateDir, r.p.KeepRuns)
	default:
		os.RemoveAll(r.dir)
	}
}

func (r *run) holdsSecret(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return true
	}
	for _, s := range r.secrets {
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

func (r *run) all() error {
	comps := r.cpk.Package.All()
	r.comps = comps
	for i, c := range comps {
		r.comp, r.step = c.CompName, ""
		ok, err := r.requirements(c)
		if err != nil {
			return err
		}
		if !ok {
			if i == 0 {
				r.res.Status = "skipped"
				return nil
			}
			r.res.Skipped = append(r.res.Skipped, c.CompName)
			continue
		}
		if err := r.component(i, c); err != nil {
			return err
		}
		r.res.Components = append(r.res.Components, c.CompName)
	}
	return nil
}

func (r *run) fail(format string, a ...any) error {
	return &StepError{Component: r.comp, Step: r.step, Err: fmt.Errorf(format, a...)}
}

// ok and changed record a step's outcome.
func (r *run) ok(what string) {
	r.res.OK++
	r.res.Steps = append(r.res.Steps, StepResult{Component: r.comp, Step: r.step, Status: "ok", What: r.redact(what)})
	r.logf("ok: %s", what)
}

func (r *run) changed(what string) {
	r.res.Changes++
	r.res.Steps = append(r.res.Steps, StepResult{Component: r.comp, Step: r.step, Status: "changed", What: r.redact(what)})
	r.logf("changed: %s", what)
}

// failpoint stops the run as a crash would when the test hook says so.
func (r *run) failpoint(name string) error {
	if r.p.Failpoint == nil {
		return nil
	}
	if err := r.p.Failpoint(name); err != nil {
		return errCrash{err}
	}
	return nil
}

// record journals how to undo a change, before the change is made.
func (r *run) record(u undoRec) error {
	r.nchanges++
	if err := r.failpoint(fmt.Sprintf("before-change-%d", r.nchanges)); err != nil {
		return err
	}
	j := u
	if u.Op == "exec" && r.mentionsSecret(strings.Join(u.Argv, "\x00")) {
		// The journal holds no secrets: after a crash this undo cannot run.
		j = undoRec{Op: "none", What: "(cannot undo after a crash: " + u.What + " needs secret values)"}
	}
	if err := r.j.write(journalLine{Undo: &j}); err != nil {
		return r.fail("%v", err)
	}
	r.undo = append(r.undo, u)
	r.allUndo = append(r.allUndo, u)
	return nil
}

func (r *run) afterChange() error {
	return r.failpoint(fmt.Sprintf("after-change-%d", r.nchanges))
}

// refersToSecret says whether raw step text names a secret variable.
func (r *run) refersToSecret(texts ...string) bool {
	found := false
	for _, t := range texts {
		scanRefs(t, func(_, _ int, name string) bool {
			if r.secretVars[name] {
				found = true
			}
			return false
		})
	}
	return found
}

func (r *run) mentionsSecret(s string) bool {
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			return true
		}
	}
	return false
}

func (r *run) expand(s string) (string, error) {
	x, err := r.vals.Expand(s)
	if err != nil {
		return "", r.fail("%v", err)
	}
	return x, nil
}

func (r *run) redact(s string) string { return redact(s, r.secrets) }

func (r *run) logf(format string, a ...any) {
	if r.p.Log == nil {
		return
	}
	where := ""
	if r.comp != "" {
		where = "[" + r.comp
		if r.step != "" {
			where += ", " + r.step
		}
		where += "] "
	}
	r.p.logLine(where + r.redact(fmt.Sprintf(format, a...)))
}

// requirements says whether the component runs: a failed "skip"
// requirement skips it; a failed "fail" one (the default) fails the package.
func (r *run) requirements(c *Component) (bool, error) {
	for i, req := range c.Requirements {
		r.step = fmt.Sprintf("requirement %d", i+1)
		x, err := r.expandRequirement(req)
		if err != nil {
			return false, err
		}
		err = r.p.Host.check(r.ctx, x)
		switch {
		case err == nil:
			continue
		case errors.Is(err, errCannotEvaluate):
			return false, r.fail("%v", err)
		case req.Else == "skip":
			r.logf("skipping: %v", msgOr(req.Message, err))
			return false, nil
		default:
			return false, r.fail("requirement not met: %v", msgOr(req.Message, err))
		}
	}
	r.step = ""
	return true, nil
}

func msgOr(m string, err error) string {
	if m != "" {
		return m + " (" + err.Error() + ")"
	}
	return err.Error()
}

func (r *run) expandRequirement(q Requirement) (Requirement, error) {
	var err error
	ex := func(s *string) {
		if err == nil && s != nil {
			*s, err = r.expand(*s)
		}
	}
	if q.Disk != nil {
		d := *q.Disk
		ex(&d.Path)
		q.Disk = &d
	}
	if q.File != nil {
		f := *q.File
		ex(&f.Path)
		q.File = &f
	}
	if q.Env != nil {
		e := *q.Env
		if e.Value != nil {
			v := *e.Value
			ex(&v)
			e.Value = &v
		}
		q.Env = &e
	}
	if q.Setting != nil {
		s := *q.Setting
		ex(&s.File)
		ex(&s.Section)
		ex(&s.Key)
		if s.Value != nil {
			v := *s.Value
			ex(&v)
			s.Value = &v
		}
		q.Setting = &s
	}
	return q, err
}

func (r *run) component(idx int, c *Component) error {
	r.logf("component %s", c.CompName)
	for i, a := range c.PreInstall {
		r.step = fmt.Sprintf("pre_install step %d", i+1)
		if err := r.action(a); err != nil {
			return err
		}
	}
	if len(c.PreInstall) > 0 || !r.settledValid {
		r.settled, r.settledValid = r.settledPaths(r.comps, idx), true
	}
	for i, f := range c.Files {
		r.step = fmt.Sprintf("files step %d", i+1)
		if err := r.file(f); err != nil {
			return err
		}
	}
	for i, e := range c.Edits {
		r.step = fmt.Sprintf("edits step %d", i+1)
		if err := r.edit(e); err != nil {
			return err
		}
	}
	if len(c.PostInstall) > 0 {
		r.settled, r.settledValid = nil, false
	}
	for i, a := range c.PostInstall {
		r.step = fmt.Sprintf("post_install step %d", i+1)
		if err := r.action(a); err != nil {
			return err
		}
	}
	r.step = ""
	return nil
}

// ---- actions ----

func (r *run) expandAll(ss []string) ([]string, error) {
	out := make([]string, len(ss))
	for i, s := range ss {
		var err error
		if out[i], err = r.expand(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *run) action(a Action) error {
	var argv, undo []string
	var err error
	switch {
	case a.Service != nil:
		name, err := r.expand(a.Service.Name)
		if err != nil {
			return err
		}
		argv = []string{r.p.Systemctl, a.Service.Action, name}
		switch a.Service.Action {
		case "start":
			undo = []string{r.p.Systemctl, "stop", name}
		case "stop":
			undo = []string{r.p.Systemctl, "start", name}
		}
	case a.Script != "":
		// Values reach scripts as environment variables, never as text
		// (Check refuses %NAME% in a script); this only turns %% into %.
		script, err := r.expand(a.Script)
		if err != nil {
			return err
		}
		argv = []string{"/bin/sh", "-e", "-c", script}
	case len(a.Run) > 0:
		if argv, err = r.expandAll(a.Run); err != nil {
			return err
		}
	case len(a.Dpkg) > 0:
		rest, err := r.expandAll(a.Dpkg)
		if err != nil {
			return err
		}
		argv = append([]string{"dpkg"}, rest...)
	case len(a.RPM) > 0:
		rest, err := r.expandAll(a.RPM)
		if err != nil {
			return err
		}
		argv = append([]string{"rpm"}, rest...)
	}
	if len(a.Undo) > 0 {
		if undo, err = r.expandAll(a.Undo); err != nil {
			return err
		}
	}
	dir := r.cpk.ContentPath(".")
	if a.Dir != "" {
		if dir, err = r.expand(a.Dir); err != nil {
			return err
		}
	}
	timeout := r.p.StepTimeout
	if a.Timeout != "" {
		timeout, _ = time.ParseDuration(a.Timeout)
	}
	shown := strings.Join(argv, " ")
	if a.Script != "" {
		shown = "script: " + firstLine(a.Script)
	}
	// Guards: a step whose work is already done is ok, not run again.
	if a.Creates != "" {
		c, err := r.expand(a.Creates)
		if err != nil {
			return err
		}
		if r.exists(c) {
			r.ok(fmt.Sprintf("%s (%s exists)", shown, c))
			return nil
		}
	}
	if len(a.Unless) > 0 {
		u, err := r.expandAll(a.Unless)
		if err != nil {
			return err
		}
		if _, err := runCommand(r.ctx, u, dir, r.env, timeout, r.dir); err == nil {
			r.ok(fmt.Sprintf("%s (unless: %s succeeded)", shown, strings.Join(u, " ")))
			return nil
		}
	}
	if a.Service != nil && (a.Service.Action == "start" || a.Service.Action == "stop") {
		_, err := runCommand(r.ctx, []string{r.p.Systemctl, "is-active", "--quiet", argv[2]}, dir, r.env, timeout, r.dir)
		if active := err == nil; active == (a.Service.Action == "start") {
			r.ok(fmt.Sprintf("service %s is %s", argv[2], map[bool]string{true: "active", false: "inactive"}[active]))
			return nil
		}
	}
	if r.p.DryRun {
		r.changed("would run " + shown)
		return nil
	}
	u := undoRec{Op: "none", What: "(cannot undo: " + shown + ")"}
	if undo != nil {
		u = undoRec{Op: "exec", Argv: undo, Dir: dir, What: "run " + strings.Join(undo, " ")}
	}
	if err := r.record(u); err != nil {
		return err
	}
	r.logf("run %s", shown)
	out, err := runCommand(r.ctx, argv, dir, r.env, timeout, r.dir)
	r.logOutput(out)
	if err != nil {
		// The command failed: its undo is for a command that worked.
		r.undo = r.undo[:len(r.undo)-1]
		return r.fail("%s: %v", shown, err)
	}
	if err := r.afterChange(); err != nil {
		return err
	}
	r.changed("ran " + shown)
	return nil
}

// logOutput logs a command's output and keeps its last lines for the
// result (a failure's details go to the zone).
func (r *run) logOutput(out []byte) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	r.lastOutput = nil
	for _, l := range lines {
		if l != "" {
			r.logf("  | %s", l)
		}
	}
	if n := len(lines); n > 10 {
		lines = lines[n-10:]
	}
	for _, l := range lines {
		if l != "" {
			r.lastOutput = append(r.lastOutput, r.redact(l))
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// maxOutput bounds how much of a command's output is read back.
const maxOutput = 1 << 20

// runCommand runs argv in dir with env in its own process group, killed
// whole after timeout or when ctx ends. Output goes to an unlinked file,
// not a pipe, so a background child that keeps it open never holds the
// run; the last maxOutput bytes are returned.
func runCommand(ctx context.Context, argv []string, dir string, env []string, timeout time.Duration, tmpDir string) ([]byte, error) {
	if timeout <= 0 {
		timeout = DefaultStepTimeout
	}
	if tmpDir == "" {
		tmpDir = os.TempDir()
	}
	f, err := os.CreateTemp(tmpDir, "output-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	defer f.Close()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, f, f
	ownGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	var out []byte
	if size, serr := f.Seek(0, io.SeekEnd); serr == nil {
		off := size - maxOutput
		if off < 0 {
			off = 0
		}
		out = make([]byte, size-off)
		n, _ := f.ReadAt(out, off)
		out = out[:n]
	}
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() != nil:
		return out, fmt.Errorf("cancelled (%v); its process group was killed", context.Cause(ctx))
	case cctx.Err() != nil:
		return out, fmt.Errorf("killed after the step timeout of %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return out, fmt.Errorf("exit status %d", ee.ExitCode())
	}
	return out, err
}

// ---- files ----

func (r *run) file(f FileStep) error {
	if f.Delete != "" {
		p, err := r.expand(f.Delete)
		if err != nil {
			return err
		}
		return r.delete(p)
	}
	to, err := r.expand(f.To)
	if err != nil {
		return err
	}
	var mode os.FileMode
	if f.Mode != "" {
		mode, _ = parseMode(f.Mode)
	}
	switch {
	case f.FromPackage != "":
		src := r.cpk.ContentPath(f.FromPackage)
		fi, err := os.Stat(src)
		if err != nil {
			return r.fail("the package does not contain %s", f.FromPackage)
		}
		if fi.IsDir() {
			// A directory's files land under to/, keeping their layout.
			return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(src, p)
				return r.place(p, filepath.Join(to, rel), mode, false)
			})
		}
		dst := to
		if strings.HasSuffix(f.To, "/") {
			dst = filepath.Join(to, filepath.Base(src))
		}
		return r.place(src, dst, mode, false)
	case f.Copy != "":
		from, err := r.expand(f.Copy)
		if err != nil {
			return err
		}
		return r.place(from, r.destFor(from, to, f.To), mode, false)
	default:
		from, err := r.expand(f.Move)
		if err != nil {
			return err
		}
		return r.place(from, r.destFor(from, to, f.To), mode, true)
	}
}

func (r *run) destFor(from, to, raw string) string {
	if strings.HasSuffix(raw, "/") {
		return filepath.Join(to, filepath.Base(from))
	}
	return to
}

func (r *run) exists(p string) bool {
	if v, ok := r.overlay[p]; ok {
		return !v.removed
	}
	_, err := os.Lstat(p)
	return err == nil
}

// content reads a file as the run sees it (a dry run's overlay first).
func (r *run) content(p string) ([]byte, error) {
	if v, ok := r.overlay[p]; ok {
		switch {
		case v.removed:
			return nil, fmt.Errorf("%s would have been moved away", p)
		case v.data != nil:
			return v.data, nil
		default:
			p = v.src
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.Size() > 64<<20 {
		return nil, fmt.Errorf("%s: %d bytes is too large to compare or edit", p, fi.Size())
	}
	return os.ReadFile(p)
}

// sameFile says whether dst already has src's content (and mode, when
// one is asked for): a copy that would change nothing.
func (r *run) sameFile(src, dst string, mode os.FileMode) bool {
	if _, ok := r.overlay[dst]; !ok {
		sfi, err1 := os.Stat(src)
		dfi, err2 := os.Stat(dst)
		if _, virt := r.overlay[src]; !virt && (err1 != nil || err2 != nil || sfi.Size() != dfi.Size() || !dfi.Mode().IsRegular()) {
			return false
		}
		if err2 == nil && mode != 0 && dfi.Mode().Perm() != mode.Perm() {
			return false
		}
	}
	_, vs := r.overlay[src]
	_, vd := r.overlay[dst]
	if !vs && !vd {
		return sameContent(src, dst) // streamed: any size
	}
	a, err := r.content(src)
	if err != nil {
		return false
	}
	b, err := r.content(dst)
	return err == nil && bytes.Equal(a, b)
}

// sameContent compares two files' bytes without reading either whole.
func sameContent(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		aEnd := ea == io.EOF || ea == io.ErrUnexpectedEOF
		bEnd := eb == io.EOF || eb == io.ErrUnexpectedEOF
		if aEnd || bEnd {
			return aEnd && bEnd
		}
		if ea != nil || eb != nil {
			return false
		}
	}
}

// place copies (or moves) src to dst. A symbolic link at dst stays: its
// target gets the content. A file it replaces keeps its owner and mode
// (unless a mode is given) and is kept for rollback.
func (r *run) place(src, dst string, mode os.FileMode, move bool) error {
	verb := "copy"
	if move {
		verb = "move"
	}
	real, err := realPath(dst)
	if err != nil {
		return r.fail("%v", err)
	}
	via := ""
	if real != dst {
		via = " (through the symbolic link " + dst + ")"
	}
	if !r.exists(src) {
		if move && r.exists(real) {
			r.ok(fmt.Sprintf("%s is already moved to %s", src, dst))
			return nil
		}
		return r.fail("cannot %s %s: it does not exist", verb, src)
	}
	replacing := r.exists(real)
	if replacing && !move && (r.settled[real] || r.sameFile(src, real, mode)) {
		r.ok(fmt.Sprintf("%s already has the content of %s", dst, src))
		return nil
	}
	what := fmt.Sprintf("%s %s to %s%s", verb, src, real, via)
	if replacing {
		what += " (replacing it)"
	}
	if r.p.DryRun {
		var old []byte
		if replacing && r.p.Diff != nil {
			old, _ = r.content(real)
		}
		v := &virtual{src: src, mode: mode}
		if o, ok := r.overlay[src]; ok {
			v = &virtual{data: o.data, src: o.src, mode: mode}
		}
		r.overlay[real] = v
		if move {
			r.overlay[src] = &virtual{removed: true}
		}
		if r.p.Diff != nil {
			nw, _ := r.content(real)
			r.diff(real, old, nw, replacing)
		}
		r.changed("would " + what)
		return nil
	}
	sfi, err := os.Stat(src)
	if err != nil {
		return r.fail("%v", err)
	}
	meta := &fileMeta{Mode: sfi.Mode().Perm()}
	if replacing {
		fi, err := os.Stat(real)
		if err != nil {
			return r.fail("%v", err)
		}
		if fi.IsDir() {
			return r.fail("%s is a directory", real)
		}
		meta = metaOf(fi)
	}
	if mode != 0 {
		meta.Mode = mode
	}
	if err := r.mkdirs(filepath.Dir(real)); err != nil {
		return err
	}
	if replacing {
		if err := r.keep(real); err != nil {
			return err
		}
	}
	if move {
		err = r.record(undoRec{Op: "unmove", Path: real, From: src, What: "move " + real + " back to " + src})
	} else if !replacing {
		err = r.record(undoRec{Op: "remove", Path: real, What: "remove " + real})
	}
	if err != nil {
		return err
	}
	if move {
		if err := os.Rename(src, real); err != nil {
			if err := copyMeta(src, real, meta); err != nil {
				return r.fail("move %s to %s: %v", src, real, err)
			}
			if err := os.Remove(src); err != nil {
				return r.fail("move %s: %v", src, err)
			}
		}
		if mode != 0 || replacing {
			if err := r.setMeta(real, meta); err != nil {
				return err
			}
		}
	} else if err := copyMeta(src, real, meta); err != nil {
		return r.fail("copy %s to %s: %v", src, real, err)
	}
	if err := r.afterChange(); err != nil {
		return err
	}
	if move {
		r.changed("moved " + strings.TrimPrefix(what, "move "))
	} else {
		r.changed("copied " + strings.TrimPrefix(what, "copy "))
	}
	return nil
}

func (r *run) setMeta(p string, m *fileMeta) error {
	if m.HasOwner {
		if err := os.Lchown(p, m.UID, m.GID); err != nil {
			return r.fail("keep the owner of %s: %v", p, err)
		}
	}
	if err := os.Chmod(p, m.Mode); err != nil {
		return r.fail("%v", err)
	}
	return nil
}

// delete removes a file, symbolic link or tree, each entry journaled for
// rollback (files kept as hard links, directories and links recorded
// with their owner and mode). One already gone is ok.
func (r *run) delete(p string) error {
	p = filepath.Clean(p)
	if !filepath.IsAbs(p) || p == filepath.Dir(p) {
		return r.fail("delete %q: give an absolute path below /", p)
	}
	if !r.exists(p) {
		r.ok(p + " is already absent")
		return nil
	}
	fi, err := os.Lstat(p)
	if r.p.DryRun {
		r.overlay[p] = &virtual{removed: true}
		if err == nil && fi.IsDir() {
			filepath.WalkDir(p, func(q string, _ fs.DirEntry, err error) error {
				if err == nil {
					r.overlay[q] = &virtual{removed: true}
				}
				return nil
			})
		}
		r.changed("would delete " + p)
		return nil
	}
	if err != nil {
		return r.fail("delete %s: %v", p, err)
	}
	// Children before their directory: rollback (newest first) then
	// makes each directory before what it held.
	var entries []string
	if fi.IsDir() {
		err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			entries = append(entries, q)
			return nil
		})
		if err != nil {
			return r.fail("delete %s: %v", p, err)
		}
	} else {
		entries = []string{p}
	}
	n := 0
	for i := len(entries) - 1; i >= 0; i-- {
		q := entries[i]
		qi, err := os.Lstat(q)
		if err != nil {
			return r.fail("delete %s: %v", q, err)
		}
		switch {
		case qi.IsDir():
			err = r.record(undoRec{Op: "mkdir", Path: q, Meta: metaOf(qi), What: "make directory " + q})
		case qi.Mode()&os.ModeSymlink != 0:
			link, lerr := os.Readlink(q)
			if lerr != nil {
				return r.fail("delete %s: %v", q, lerr)
			}
			err = r.record(undoRec{Op: "relink", Path: q, From: link, Meta: metaOf(qi), What: "link " + q + " to " + link})
		case qi.Mode().IsRegular():
			err = r.keep(q)
		default:
			return r.fail("delete %s: not a file, link or directory", q)
		}
		if err != nil {
			return err
		}
		if err := os.Remove(q); err != nil {
			return r.fail("delete %s: %v", q, err)
		}
		n++
	}
	if err := r.afterChange(); err != nil {
		return err
	}
	if n > 1 {
		r.changed(fmt.Sprintf("deleted %s (%d entries)", p, n))
	} else {
		r.changed("deleted " + p)
	}
	return nil
}

// mkdirs creates dir and its missing parents, to be removed on rollback.
func (r *run) mkdirs(dir string) error {
	if r.dirs[dir] {
		return nil
	}
	if r.dirs == nil {
		r.dirs = map[string]bool{}
	}
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	// Shallowest first, so that rollback (newest first) removes the
	// deepest first.
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := r.record(undoRec{Op: "rmdir", Path: d, What: "remove directory " + d}); err != nil {
			return err
		}
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return r.fail("%v", err)
		}
	}
	r.dirs[dir] = true
	return nil
}

// keep copies an existing file into the run's directory and journals how
// to put it back (content, mode and owner) before it is changed.
func (r *run) keep(real string) error {
	fi, err := os.Stat(real)
	if err != nil {
		return r.fail("%v", err)
	}
	r.nkept++
	// Numbered, because one run may replace the same file several times
	// (a copy, then edits): each version is kept, and rollback restores
	// them newest first, ending with the original.
	kept := filepath.Join(r.dir, fmt.Sprintf("%05d-%s", r.nkept, filepath.Base(real)))
	// Every change replaces a file by rename, so the original inode is
	// left alone: a hard link to it is the snapshot, without copying a
	// byte. A file with other links may change through them: copied.
	if linkCount(fi) != 1 || os.Link(real, kept) != nil {
		if err := copyMeta(real, kept, &fileMeta{Mode: 0o600}); err != nil {
			return r.fail("keep %s for rollback: %v", real, err)
		}
	}
	return r.record(undoRec{Op: "restore", Path: real, Kept: kept, Meta: metaOf(fi), What: "restore " + real})
}

// ---- edits ----

func (r *run) edit(e Edit) error {
	x := e
	var err error
	ex := func(s *string) {
		if err == nil {
			*s, err = r.expand(*s)
		}
	}
	ex(&x.File)
	if e.Replace != nil {
		c := *e.Replace
		ex(&c.Search)
		ex(&c.With)
		x.Replace = &c
	}
	// Expanded into copies: x shares e's pointers, and e keeps the text
	// as written (refersToSecret reads it below).
	exStr := func(p *string) *string {
		if p == nil {
			return nil
		}
		c := *p
		ex(&c)
		return &c
	}
	exAt := func(p *InsertAt) *InsertAt {
		if p == nil {
			return nil
		}
		c := *p
		ex(&c.Match)
		ex(&c.Lines)
		return &c
	}
	x.Append, x.Prepend, x.RemoveLines = exStr(e.Append), exStr(e.Prepend), exStr(e.RemoveLines)
	x.InsertBefore, x.InsertAfter = exAt(e.InsertBefore), exAt(e.InsertAfter)
	if e.Set != nil {
		c := *e.Set
		ex(&c.Section)
		ex(&c.Key)
		ex(&c.Value)
		x.Set = &c
	}
	if e.Unset != nil {
		c := *e.Unset
		ex(&c.Section)
		ex(&c.Key)
		x.Unset = &c
	}
	if err != nil {
		return err
	}
	real, err := realPath(x.File)
	if err != nil {
		return r.fail("edit %v", err)
	}
	r.secretStep = r.refersToSecret(e.texts()...)
	if r.settled[real] {
		r.ok(fmt.Sprintf("%s is already as the package leaves it", x.File))
		return nil
	}
	text, err := r.content(real)
	if err != nil {
		return r.fail("edit %s: %v", x.File, err)
	}
	out, what, err := applyEdit(text, x)
	if err != nil {
		return r.fail("edit %s: %v", x.File, err)
	}
	if bytes.Equal(out, text) {
		r.ok(fmt.Sprintf("%s: %s", x.File, what))
		return nil
	}
	if r.secretStep || r.mentionsSecret(string(out)) || r.mentionsSecret(string(text)) {
		r.secretPaths[real] = true
	}
	if r.p.DryRun {
		r.overlay[real] = &virtual{data: out, mode: r.overlay[real].modeOr()}
		if r.p.Diff != nil {
			r.diff(real, text, out, true)
		}
		r.changed(fmt.Sprintf("would edit %s: %s", x.File, what))
		return nil
	}
	fi, err := os.Stat(real)
	if err != nil {
		return r.fail("edit %s: %v", x.File, err)
	}
	if err := r.keep(real); err != nil {
		return err
	}
	if err := writeMeta(real, bytes.NewReader(out), metaOf(fi)); err != nil {
		return r.fail("edit %s: %v", x.File, err)
	}
	if err := r.afterChange(); err != nil {
		return err
	}
	r.changed(fmt.Sprintf("edited %s: %s", x.File, what))
	return nil
}

// rollback undoes the run's changes, newest first; false when some could
// not be undone.
func (r *run) rollback() bool {
	all := true
	ctx := context.WithoutCancel(r.ctx)
	run := func(argv []string, dir string) error {
		out, err := runCommand(ctx, argv, dir, r.env, r.p.StepTimeout, r.dir)
		r.logOutputOnly(out)
		return err
	}
	for i := len(r.undo) - 1; i >= 0; i-- {
		u := r.undo[i]
		if u.Op == "none" {
			r.logf("rollback: %s", u.What)
			continue
		}
		if err := applyUndo(u, run); err != nil {
			r.logf("rollback: %s FAILED: %v", u.What, err)
			all = false
			continue
		}
		r.logf("rollback: %s", u.What)
		r.res.RolledBack++
	}
	r.undo = nil
	return all
}

func (r *run) logOutputOnly(out []byte) {
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			r.logf("  | %s", l)
		}
	}
}

// diff writes a unified diff of a file a dry run would change, secrets
// masked.
func (r *run) diff(path string, old, nw []byte, existed bool) {
	oldName := path
	if !existed {
		oldName = "/dev/null"
	}
	d := diff.Diff(oldName, old, path, nw)
	var b strings.Builder
	for _, l := range strings.SplitAfter(string(d), "\n") {
		if l != "" {
			b.WriteString(r.redact(strings.TrimSuffix(l, "\n")) + "\n")
		}
	}
	io.WriteString(r.p.Diff, b.String())
}

// Detail is a failed run's account in one bounded text: where and why it
// failed, what was rolled back, and the last lines of the step's output
// (secrets already masked), for the zone.
func (res *Result) Detail(max int) string {
	if res == nil || res.Status != "failed" {
		return ""
	}
	s := fmt.Sprintf("%s: %s (%d change(s) rolled back)", res.Package, res.Reason, res.RolledBack)
	if len(res.Output) > 0 {
		s += "; output: " + strings.Join(res.Output, " | ")
	}
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return strings.ToValidUTF8(s, "")
}
