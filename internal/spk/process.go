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
	"strings"
	"time"

	"zonekit/internal/atomicfile"
)

// Processor runs CPKs on this machine.
type Processor struct {
	Log    io.Writer // one line per step; secrets are masked
	DryRun bool      // say what would change, change nothing
	// BackupDir keeps the files a run replaces (for rollback, and kept
	// afterwards so an administrator can restore them by hand).
	BackupDir string
	Host      Host
	Now       func() time.Time
	// Systemctl is the service manager command ("systemctl").
	Systemctl string
}

// Result is what a run did.
type Result struct {
	Package    string   `json:"package"`
	Digest     string   `json:"sha256"`
	Status     string   `json:"status"` // installed, skipped, would-install, failed
	Components []string `json:"components"`
	Skipped    []string `json:"skipped_components,omitempty"`
	Changes    int      `json:"changes"`
	RolledBack int      `json:"rolled_back,omitempty"`
	BackupDir  string   `json:"backup_dir,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// run is the state of one package run.
type run struct {
	p         *Processor
	cpk       *Opened
	vals      Values
	secrets   []string
	undo      []undoStep
	overlay   map[string]*virtual // dry run: files as they would be
	backup    string
	comp      string
	step      string
	res       *Result
	ctx       context.Context
	nbackups  int
	indexFile *os.File
	dirs      map[string]bool // directories known to exist
}

type undoStep struct {
	what string
	fn   func() error
}

// virtual is a dry run's view of a file: its content, where to read it,
// or gone.
type virtual struct {
	data    []byte
	src     string
	removed bool
}

// Run applies an opened CPK with the given values (already resolved with
// Resolve). On failure everything it changed is put back, in reverse
// order, and the error names the component and step.
func (p *Processor) Run(ctx context.Context, cpk *Opened, vals Values) (*Result, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	if p.Host.LookupEnv == nil {
		p.Host = LocalHost()
	}
	if p.Systemctl == "" {
		p.Systemctl = "systemctl"
	}
	r := &run{p: p, cpk: cpk, vals: vals, secrets: Secrets(cpk.Package, vals), ctx: ctx,
		res: &Result{Package: cpk.Package.Name, Digest: cpk.Digest}}
	if p.DryRun {
		r.overlay = map[string]*virtual{}
	} else if p.BackupDir != "" {
		r.backup = filepath.Join(p.BackupDir, fmt.Sprintf("%s-%s", cpk.Package.Name, now().UTC().Format("20060102T150405.000")))
	}
	r.logf("package %s %s (CPK SHA-256 %s)%s", cpk.Package.Name, cpk.Package.Version, cpk.Digest, map[bool]string{true: ", dry run", false: ""}[p.DryRun])
	err := r.all()
	switch {
	case err == nil && r.res.Status == "":
		r.res.Status = "installed"
		if p.DryRun {
			r.res.Status = "would-install"
		}
	case err != nil:
		r.res.Status = "failed"
		r.res.Reason = r.redact(err.Error())
		r.logf("FAILED: %s", r.res.Reason)
		r.rollback()
	}
	if r.nbackups > 0 {
		r.res.BackupDir = r.backup
	}
	if r.indexFile != nil {
		r.indexFile.Close()
	}
	if !p.DryRun {
		// Files are renamed into place unsynced, one per step; a single
		// sync here makes the whole run (or its rollback) durable: a
		// thousand fsyncs would cost seconds.
		syncAll()
	}
	r.logf("package %s: %s (%d change(s))", cpk.Package.Name, r.res.Status, r.res.Changes)
	if err != nil {
		return r.res, fmt.Errorf("package %s: %w (%d change(s) rolled back)", cpk.Package.Name, errors.New(r.res.Reason), r.res.RolledBack)
	}
	return r.res, nil
}

func (r *run) all() error {
	comps := r.cpk.Package.All()
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
		if err := r.component(c); err != nil {
			return err
		}
		r.res.Components = append(r.res.Components, c.CompName)
	}
	return nil
}

func (r *run) fail(format string, a ...any) error {
	return &StepError{Component: r.comp, Step: r.step, Err: fmt.Errorf(format, a...)}
}

func (r *run) expand(s string) (string, error) {
	x, err := r.vals.Expand(s)
	if err != nil {
		return "", r.fail("%v", err)
	}
	return x, nil
}

func (r *run) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "********")
	}
	return s
}

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
	fmt.Fprintf(r.p.Log, "%s %s%s\n", time.Now().UTC().Format("2006-01-02T15:04:05Z"), where, r.redact(fmt.Sprintf(format, a...)))
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
	if q.Setting != nil {
		s := *q.Setting
		ex(&s.File)
		q.Setting = &s
	}
	return q, err
}

func (r *run) component(c *Component) error {
	r.logf("component %s", c.CompName)
	for i, a := range c.PreInstall {
		r.step = fmt.Sprintf("pre_install step %d", i+1)
		if err := r.action(a); err != nil {
			return err
		}
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

func (r *run) action(a Action) error {
	var argv []string
	var err error
	expandAll := func(ss []string) ([]string, error) {
		out := make([]string, len(ss))
		for i, s := range ss {
			if out[i], err = r.expand(s); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var undo []string
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
		script, err := r.expand(a.Script)
		if err != nil {
			return err
		}
		argv = []string{"/bin/sh", "-e", "-c", script}
	case len(a.Run) > 0:
		if argv, err = expandAll(a.Run); err != nil {
			return err
		}
	case len(a.Dpkg) > 0:
		rest, err := expandAll(a.Dpkg)
		if err != nil {
			return err
		}
		argv = append([]string{"dpkg"}, rest...)
	case len(a.RPM) > 0:
		rest, err := expandAll(a.RPM)
		if err != nil {
			return err
		}
		argv = append([]string{"rpm"}, rest...)
	}
	if len(a.Undo) > 0 {
		if undo, err = expandAll(a.Undo); err != nil {
			return err
		}
	}
	dir := r.cpk.ContentPath(".")
	if a.Dir != "" {
		if dir, err = r.expand(a.Dir); err != nil {
			return err
		}
	}
	shown := strings.Join(argv, " ")
	if a.Script != "" {
		shown = "script: " + firstLine(argv[3])
	}
	if r.p.DryRun {
		r.logf("would run %s", shown)
		r.res.Changes++
		return nil
	}
	r.logf("run %s", shown)
	if err := r.exec(argv, dir); err != nil {
		return r.fail("%s: %v", shown, err)
	}
	r.res.Changes++
	if undo != nil {
		r.undo = append(r.undo, undoStep{what: "run " + strings.Join(undo, " "), fn: func() error { return r.exec(undo, dir) }})
	} else {
		r.undo = append(r.undo, undoStep{what: "(cannot undo: " + shown + ")"})
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func (r *run) exec(argv []string, dir string) error {
	cmd := exec.CommandContext(r.ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = os.Environ()
	err := cmd.Run()
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if l != "" {
			r.logf("  | %s", l)
		}
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("exit status %d", ee.ExitCode())
		}
		return err
	}
	return nil
}

// ---- files ----

func (r *run) file(f FileStep) error {
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

// place copies (or moves) src to dst, keeping any file it replaces.
func (r *run) place(src, dst string, mode os.FileMode, move bool) error {
	verb := "copy"
	if move {
		verb = "move"
	}
	if !r.exists(src) {
		return r.fail("cannot %s %s: it does not exist", verb, src)
	}
	replacing := r.exists(dst)
	note := ""
	if replacing {
		note = " (replacing it; the old file is kept for rollback)"
	}
	if r.p.DryRun {
		r.logf("would %s %s to %s%s", verb, src, dst, note)
		v := &virtual{src: src}
		if old, ok := r.overlay[src]; ok {
			v = &virtual{data: old.data, src: old.src}
		}
		r.overlay[dst] = v
		if move {
			r.overlay[src] = &virtual{removed: true}
		}
		r.res.Changes++
		return nil
	}
	if mode == 0 {
		if fi, err := os.Stat(src); err == nil {
			mode = fi.Mode().Perm()
		} else {
			mode = 0o644
		}
	}
	if err := r.mkdirs(filepath.Dir(dst)); err != nil {
		return r.fail("%v", err)
	}
	restore, err := r.keep(dst)
	if err != nil {
		return r.fail("%v", err)
	}
	if move {
		if err := os.Rename(src, dst); err != nil {
			if err := copyFile(src, dst, mode); err != nil {
				restore()
				return r.fail("move %s to %s: %v", src, dst, err)
			}
			if err := os.Remove(src); err != nil {
				return r.fail("move %s: %v", src, err)
			}
		}
		os.Chmod(dst, mode)
	} else if err := copyFile(src, dst, mode); err != nil {
		restore()
		return r.fail("copy %s to %s: %v", src, dst, err)
	}
	r.logf("%s %s to %s%s", map[bool]string{false: "copied", true: "moved"}[move], src, dst, note)
	r.res.Changes++
	r.undo = append(r.undo, undoStep{what: fmt.Sprintf("undo %s of %s", verb, dst), fn: func() error {
		if move {
			if err := os.Rename(dst, src); err != nil {
				return err
			}
		} else if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return restore()
	}})
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
	r.dirs[dir] = true
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing { // deepest first, so undo (reversed) removes deepest first too
		d := d
		r.undo = append(r.undo, undoStep{what: "remove directory " + d, fn: func() error { return os.Remove(d) }})
	}
	// The directories were appended deepest first; undo runs in reverse,
	// which would try the shallowest first: reorder.
	n := len(r.undo)
	seg := r.undo[n-len(missing):]
	for i, j := 0, len(seg)-1; i < j; i, j = i+1, j-1 {
		seg[i], seg[j] = seg[j], seg[i]
	}
	return nil
}

// keep moves an existing dst into the backup directory and returns how to
// put it back.
func (r *run) keep(dst string) (func() error, error) {
	fi, err := os.Lstat(dst)
	if errors.Is(err, os.ErrNotExist) {
		return func() error { return nil }, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", dst)
	}
	r.nbackups++
	// Numbered, because one run may replace the same file several times
	// (a copy, then edits): each version is kept, and rollback restores
	// them newest first, ending with the original.
	// Flat names and an index (kept.txt) rather than the original tree:
	// one directory, however many files a package replaces.
	kept := filepath.Join(r.backup, fmt.Sprintf("%05d-%s", r.nbackups, filepath.Base(dst)))
	if r.backup == "" {
		kept = fmt.Sprintf("%s.spk-orig.%d", dst, r.nbackups)
	} else {
		if r.nbackups == 1 {
			if err := os.MkdirAll(r.backup, 0o700); err != nil {
				return nil, err
			}
		}
		if err := r.index(fmt.Sprintf("%s\t%s\n", filepath.Base(kept), dst)); err != nil {
			return nil, err
		}
	}
	if err := copyFile(dst, kept, fi.Mode().Perm()); err != nil {
		return nil, fmt.Errorf("keep %s for rollback: %w", dst, err)
	}
	return func() error { return copyFile(kept, dst, fi.Mode().Perm()) }, nil
}

// index records which original each kept file was.
func (r *run) index(line string) error {
	if r.indexFile == nil {
		f, err := os.OpenFile(filepath.Join(r.backup, "kept.txt"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		r.indexFile = f
	}
	_, err := r.indexFile.WriteString(line)
	return err
}

// copyFile writes src's content to dst atomically.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := atomicfile.New(dst, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Abort()
		return err
	}
	// Durability comes from one sync at the end of the run (see Run).
	return out.CommitUnsynced()
}

func writeUnsynced(path string, data []byte, mode os.FileMode) error {
	out, err := atomicfile.New(path, mode)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Abort()
		return err
	}
	return out.CommitUnsynced()
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
	if e.Append != nil {
		c := *e.Append
		ex(&c)
		x.Append = &c
	}
	if e.Prepend != nil {
		c := *e.Prepend
		ex(&c)
		x.Prepend = &c
	}
	if e.InsertBefore != nil {
		c := *e.InsertBefore
		ex(&c.Match)
		ex(&c.Lines)
		x.InsertBefore = &c
	}
	if e.InsertAfter != nil {
		c := *e.InsertAfter
		ex(&c.Match)
		ex(&c.Lines)
		x.InsertAfter = &c
	}
	if e.Set != nil {
		c := *e.Set
		ex(&c.Section)
		ex(&c.Key)
		ex(&c.Value)
		x.Set = &c
	}
	if err != nil {
		return err
	}
	text, mode, err := r.read(x.File)
	if err != nil {
		return r.fail("edit %s: %v", x.File, err)
	}
	out, what, err := applyEdit(text, x)
	if err != nil {
		return r.fail("edit %s: %v", x.File, err)
	}
	if r.p.DryRun {
		r.overlay[x.File] = &virtual{data: out}
		r.logf("would edit %s: %s", x.File, what)
		r.res.Changes++
		return nil
	}
	restore, err := r.keep(x.File)
	if err != nil {
		return r.fail("%v", err)
	}
	if err := writeUnsynced(x.File, out, mode); err != nil {
		return r.fail("edit %s: %v", x.File, err)
	}
	r.logf("edited %s: %s", x.File, what)
	r.res.Changes++
	r.undo = append(r.undo, undoStep{what: "restore " + x.File, fn: restore})
	return nil
}

func (r *run) read(p string) ([]byte, os.FileMode, error) {
	if v, ok := r.overlay[p]; ok {
		switch {
		case v.removed:
			return nil, 0, fmt.Errorf("it would have been moved away")
		case v.data != nil:
			return v.data, 0o644, nil
		default:
			p = v.src
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, 0, err
	}
	if fi.Size() > 64<<20 {
		return nil, 0, fmt.Errorf("%d bytes is too large for a text edit", fi.Size())
	}
	data, err := os.ReadFile(p)
	return data, fi.Mode().Perm(), err
}

// rollback undoes the run's changes, newest first.
func (r *run) rollback() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		u := r.undo[i]
		if u.fn == nil {
			r.logf("rollback: %s", u.what)
			continue
		}
		if err := u.fn(); err != nil {
			r.logf("rollback: %s FAILED: %v", u.what, err)
			continue
		}
		r.logf("rollback: %s", u.what)
		r.res.RolledBack++
	}
	r.undo = nil
}
