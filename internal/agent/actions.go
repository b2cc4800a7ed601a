package agent

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/spk"
)

// FormatCPK is a compiled server software package carried as a package's
// archive (zstd magic); the engine runs it with the SPK processor.
const FormatCPK = "cpk"

// archiveFormat tells the formats apart by their first bytes.
func archiveFormat(head []byte) string {
	if bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		return FormatCPK
	}
	return content.DetectFormat(head)
}

// install runs a package whose fragments are all in: rebuild, digests,
// free space, safe extraction, the action, clean-up. It returns the
// package's result.
func (e *engine) install(ctx context.Context, p *LocalPackage) string {
	info, err := content.ParseInfo([]byte(p.Info))
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_BAD_PARAM"
	}
	dir := e.a.packageDir(p.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_BUILD"
	}
	var arch *fragments
	format := ""
	if info.Frags > 0 {
		if arch, err = openFragments(dir, p.ID, info.Frags); err != nil {
			e.logf("package %s: rebuild: %v", p.ID, err)
			return "ERR_BUILD"
		}
		defer arch.Close()
		if res := e.checkDigest(p, info, arch); res != "" {
			return res
		}
		head := make([]byte, 8)
		n, _ := arch.ReadAt(head, 0)
		if format = archiveFormat(head[:n]); format == "" {
			e.logf("package %s: the archive is neither tar.gz, zip nor CPK", p.ID)
			return "ERR_UNZIP"
		}
		e.logf("package %s: rebuilt and checked (%s, %d bytes)", p.ID, format, arch.size)
	}
	if format == FormatCPK {
		return e.runCPK(ctx, p, arch)
	}
	return e.act(ctx, p, info, arch, format)
}

// checkDigest checks the rebuilt archive. With a manifest, every fragment
// was checked against its SHA-256 as it arrived, and the manifest agrees
// with the info file's MD5 and the zone's SHA-256: the archive is those
// fragments, so their sizes are checked, not their bytes hashed again
// (for a 100 MiB package that is a second of CPU on a machine without
// SHA instructions). Without one (an OCS server), the whole archive's MD5
// must be the info file's.
func (e *engine) checkDigest(p *LocalPackage, info content.Info, arch *fragments) string {
	if m := p.Manifest; m != nil && m.MD5 == info.Digest && (p.SHA256 == "" || p.SHA256 == m.SHA256) && arch.size == m.Size {
		for i, f := range m.Fragments {
			end := f.Size
			if i > 0 {
				end += arch.ends[i-1]
			}
			if arch.ends[i] != end {
				e.logf("package %s: fragment %d on disk is not the one checked; nothing runs", p.ID, i+1)
				return "ERR_BAD_DIGEST"
			}
		}
		return ""
	}
	sh, m := sha256.New(), md5.New()
	w := io.Writer(m)
	if p.SHA256 != "" {
		w = io.MultiWriter(sh, m)
	}
	if _, err := io.Copy(w, io.NewSectionReader(arch, 0, arch.size)); err != nil {
		e.logf("package %s: rebuild: %v", p.ID, err)
		return "ERR_BUILD"
	}
	gotSHA, gotMD5 := hex.EncodeToString(sh.Sum(nil)), hex.EncodeToString(m.Sum(nil))
	if gotMD5 != info.Digest || (p.SHA256 != "" && gotSHA != p.SHA256) {
		e.logf("package %s: the archive's digest is not the package's (MD5 %s, want %s); nothing runs", p.ID, gotMD5, info.Digest)
		return "ERR_BAD_DIGEST"
	}
	return ""
}

// act unpacks the checked archive and runs the package's action.
func (e *engine) act(ctx context.Context, p *LocalPackage, info content.Info, arch *fragments, format string) string {
	dir := e.a.packageDir(p.ID)
	work := filepath.Join(dir, "work")
	target := work
	switch info.Action {
	case "STORE":
		target = os.ExpandEnv(info.Path)
		pkgOS := content.OSLinux
		if runtime.GOOS == "windows" {
			pkgOS = content.OSWindows
		}
		// The rule zman's build applies, then the same once expanded.
		if !content.StorePathOK(info.Path, pkgOS) || !filepath.IsAbs(target) {
			e.logf("package %s: store path %q is not absolute", p.ID, info.Path)
			return "ERR_BAD_PARAM"
		}
		if arch == nil {
			e.logf("package %s: store without files", p.ID)
			return "ERR_BAD_PARAM"
		}
	case "LAUNCH":
		if strings.TrimSpace(info.Name) == "" {
			return "ERR_EXECUTE_PACK"
		}
	case "EXECUTE":
		if strings.TrimSpace(info.Command) == "" {
			return "ERR_EXECUTE_PACK"
		}
	}
	if info.Action == "STORE" {
		if res := e.store(p, arch, format, target); res != "" {
			return res
		}
	} else {
		if err := os.MkdirAll(target, 0o755); err != nil {
			e.logf("package %s: %v", p.ID, err)
			return "ERR_BAD_PARAM"
		}
		if arch != nil {
			if res := e.extract(p, arch, format, target); res != "" {
				return res
			}
		}
	}
	if info.NotifyUser {
		e.notify(ctx, p.ID, info)
	}

	// From here the action counts as run: an engine that dies now must not
	// run it again (ERR_DONE_FAILED on the next start).
	p.Phase = PhaseRunning
	if err := e.a.savePackage(p); err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_EXECUTE"
	}
	var res string
	switch info.Action {
	case "LAUNCH":
		exe := content.LaunchFile(info.Name)
		fi, err := os.Lstat(filepath.Join(work, exe))
		if err != nil || !fi.Mode().IsRegular() || !filepath.IsLocal(exe) {
			e.logf("package %s: the package has no file %s to launch", p.ID, exe)
			res = "ERR_EXECUTE_PACK"
			break
		}
		os.Chmod(filepath.Join(work, exe), fi.Mode().Perm()|0o700)
		res = e.command(p, work, launchLine(strings.TrimSpace(info.Name)))
	case "EXECUTE":
		// The exit code is logged (and goes home with the output); the
		// status is the OCS agent's: SUCCESS or ERR_EXECUTE.
		if res = e.command(p, work, info.Command); strings.HasPrefix(res, "ERR_EXIT_CODE_") {
			res = "ERR_EXECUTE"
		}
	case "STORE":
		e.logf("package %s: files stored in %s", p.ID, target)
		res = "SUCCESS"
	}
	if err := e.release(p); err != nil {
		e.logf("package %s: clean up: %v", p.ID, err)
		if strings.HasPrefix(res, "SUCCESS") {
			res = "ERR_CLEAN"
		}
	}
	if info.NeedDoneAction && strings.HasPrefix(res, "SUCCESS") {
		e.tellUser(p.ID, "action needed: "+info.DoneActionText)
	}
	return res
}

// command runs a package's command line with the shell in dir (which
// expands environment variables), output to logs/package-ID.log, killed
// with its children after the execution timeout. The exit code is the
// result: SUCCESS or ERR_EXIT_CODE_n.
func (e *engine) command(p *LocalPackage, dir, line string) string {
	lf, err := os.OpenFile(filepath.Join(e.a.logDir(), "package-"+p.ID+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_EXECUTE"
	}
	defer lf.Close()
	// This run's output starts here: its tail goes home with the result.
	start, _ := lf.Seek(0, io.SeekEnd)
	defer func() { p.Output = outputTail(lf.Name(), start, api.MaxStatusOutput) }()
	limit := time.Duration(e.cfg.ExecutionTimeout) * time.Minute
	if limit <= 0 {
		limit = 120 * time.Minute
	}
	// Stopping the agent does not stop an action half way: only the
	// execution timeout does.
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := shellCommand(ctx, line)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.Stdin = dir, lf, lf, nil
	cmd.Env = append(os.Environ(), "ZONEKIT_PACKAGE_ID="+p.ID)
	ownGroup(cmd)
	e.logf("package %s: running %q", p.ID, line)
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.logf("package %s: killed after the execution timeout of %s", p.ID, limit)
		return "ERR_EXECUTE"
	case err == nil:
		code := 0
		p.ExitCode = &code
		return "SUCCESS"
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		code := ee.ExitCode()
		p.ExitCode = &code
		e.logf("package %s: exit code %d", p.ID, ee.ExitCode())
		return "ERR_EXIT_CODE_" + strconv.Itoa(ee.ExitCode())
	default:
		e.logf("package %s: %v", p.ID, err)
		return "ERR_EXECUTE"
	}
}

// notify warns the user before the action where a user session can be
// reached (a desktop notification, then the countdown), and logs the
// message otherwise. No one can answer from here, so abort and delay are
// logged, never waited for.
func (e *engine) notify(ctx context.Context, id string, info content.Info) {
	if !e.tellUser(id, info.NotifyText) {
		return
	}
	if n, err := strconv.Atoi(info.NotifyCount); err == nil && n > 0 {
		e.logf("package %s: waiting the %d s countdown", id, n)
		sleepCtx(ctx, time.Duration(n)*time.Second)
	}
}

// tellUser shows text in the user's session; false when none is reachable.
func (e *engine) tellUser(id, text string) bool {
	bin, err := exec.LookPath("notify-send")
	if err != nil || (os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "") {
		e.logf("package %s: no user session reachable; message for the user: %q", id, text)
		return false
	}
	if err := exec.Command(bin, "--app-name=zonekit", "Software deployment", text).Run(); err != nil {
		e.logf("package %s: notify the user: %v; message: %q", id, err, text)
		return false
	}
	e.logf("package %s: user notified: %q", id, text)
	return true
}

// runCPK runs a compiled server software package: it must be signed by a
// CA of the agent's trust store; its variables take the zone's values for
// this device (zone, groups, device: most specific wins).
func (e *engine) runCPK(ctx context.Context, p *LocalPackage, arch *fragments) string {
	p.Detail = ""
	cas, err := e.a.TrustedCAs()
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_EXECUTE"
	}
	dir := e.a.packageDir(p.ID)
	c, err := spk.Open(io.NewSectionReader(arch, 0, arch.size), spk.OpenOptions{TempDir: dir, Trusted: cas, RequireSignature: true})
	if err != nil {
		e.logf("package %s: CPK refused: %v", p.ID, err)
		p.Detail = truncDetail("CPK refused: " + err.Error())
		return "ERR_BAD_DIGEST"
	}
	defer c.Close()
	zoneVals, zoneSecret, err := e.a.SPKValues(ctx)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_BAD_PARAM"
	}
	mine := spk.Values{}
	for _, d := range c.Package.Declared() {
		if v, ok := zoneVals[d.Name]; ok {
			mine[d.Name] = v
		}
	}
	vals, err := spk.Resolve(c.Package, mine)
	if err != nil {
		e.logf("package %s: values: %v", p.ID, err)
		p.Detail = truncDetail("values: " + err.Error())
		return "ERR_BAD_PARAM"
	}
	p.Phase = PhaseRunning
	if err := e.a.savePackage(p); err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_EXECUTE"
	}
	lf, err := os.OpenFile(filepath.Join(e.a.logDir(), "spk-process.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_EXECUTE"
	}
	defer lf.Close()
	proc := e.cpkProcessor(lf, zoneSecret)
	runCtx := context.WithoutCancel(ctx)
	unlock, err := spk.Lock(ctx, proc.StateDir, func(holder string) {
		e.logf("package %s: waiting for %s to end", p.ID, holder)
	})
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_EXECUTE"
	}
	defer unlock()
	if rec, err := proc.Recover(runCtx); err != nil {
		e.logf("package %s: recovering an interrupted CPK run: %v", p.ID, err)
	} else {
		for _, r := range rec {
			e.logf("recovery: %s", r)
		}
	}
	res := "SUCCESS"
	r, err := proc.Run(runCtx, c, vals)
	if err != nil {
		e.logf("package %s: CPK failed: %v", p.ID, err)
		for _, l := range r.Output {
			e.logf("package %s:   | %s", p.ID, l)
		}
		p.Detail = r.Detail(api.MaxStatusDetail)
		res = "ERR_EXECUTE"
	} else {
		e.logf("package %s: CPK %s %s (ok=%d changed=%d)", p.ID, r.Package, r.Status, r.OK, r.Changes)
	}
	c.Close()
	arch.Close()
	if err := e.release(p); err != nil && res == "SUCCESS" {
		res = "ERR_CLEAN"
	}
	return res
}

// fragments reads a package's fragment files as one archive, without
// writing it out again.
type fragments struct {
	files []*os.File
	ends  []int64 // cumulative end offset of each file
	size  int64
}

func openFragments(dir, id string, n int) (*fragments, error) {
	f := &fragments{}
	for i := 1; i <= n; i++ {
		file, err := os.Open(filepath.Join(dir, content.FragmentName(id, i)))
		if err != nil {
			f.Close()
			return nil, err
		}
		fi, err := file.Stat()
		if err != nil {
			file.Close()
			f.Close()
			return nil, err
		}
		f.files = append(f.files, file)
		f.size += fi.Size()
		f.ends = append(f.ends, f.size)
	}
	return f, nil
}

func (f *fragments) ReadAt(p []byte, off int64) (int, error) {
	total := 0
	for i, end := range f.ends {
		if len(p) == 0 {
			break
		}
		start := end
		if i > 0 {
			start = f.ends[i-1]
		} else {
			start = 0
		}
		if off >= end {
			continue
		}
		n, err := f.files[i].ReadAt(p[:min(int64(len(p)), end-off)], off-start)
		total += n
		off += int64(n)
		p = p[n:]
		if err != nil && err != io.EOF {
			return total, err
		}
	}
	if len(p) > 0 {
		return total, io.EOF
	}
	return total, nil
}

func (f *fragments) Close() error {
	for _, file := range f.files {
		file.Close()
	}
	f.files = nil
	return nil
}

// errNoSpace marks an extraction that ran out of room.
var errNoSpace = fmt.Errorf("not enough free space")

// cpkProcessor is the SPK processor of a CPK deployment: each step is
// bounded by the zone's execution timeout (stopping the agent does not
// stop a run half way, as for other actions), and values the zone holds
// as secret are masked whatever the package declares.
func (e *engine) cpkProcessor(log io.Writer, zoneSecret []string) *spk.Processor {
	limit := time.Duration(e.cfg.ExecutionTimeout) * time.Minute
	if limit <= 0 {
		limit = 120 * time.Minute
	}
	return &spk.Processor{Log: log, StateDir: e.a.SPKStateDir(), Host: spk.LocalHost(), StepTimeout: limit, SecretNames: zoneSecret}
}

func truncDetail(s string) string {
	if len(s) > api.MaxStatusDetail {
		s = s[:api.MaxStatusDetail]
	}
	return strings.ToValidUTF8(s, "")
}

// SPKStateDir holds the journals and snapshots of CPK runs.
func (a *Agent) SPKStateDir() string { return filepath.Join(a.Home, "spk-backup") }

// RecoverSPK rolls back a CPK run that was interrupted (killed, or the
// machine went down) and removes its leftovers; the agent calls it when
// it starts, as every CPK run does first. log receives the step log;
// waiting, if not nil, hears who holds the lock when a run is under way
// (ctx bounds the wait; undo commands are bounded by their own timeout).
func (a *Agent) RecoverSPK(ctx context.Context, log io.Writer, waiting func(holder string)) ([]spk.Recovered, error) {
	proc := &spk.Processor{Log: log, StateDir: a.SPKStateDir()}
	unlock, err := spk.Lock(ctx, proc.StateDir, waiting)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := proc.Recover(ctx)
	// Unpacked CPKs of killed runs: nothing uses them once the lock is ours.
	old, _ := filepath.Glob(filepath.Join(a.Home, "spk-work", "cpk-*"))
	for _, d := range old {
		os.RemoveAll(d)
	}
	return rec, err
}
