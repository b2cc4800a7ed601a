package spk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"zonekit/internal/atomicfile"
)

// A package's install record (StateDir/installed/NAME/) is what Uninstall
// reverses: how to undo every change its successful runs made, oldest
// first, with the original of each file it replaced or edited as it was
// before the package first touched it (a hard link). Later runs add only
// paths not recorded yet, so the record always leads back to the machine
// before the package. An original holding a secret value is not kept:
// uninstall leaves that file as it is and says so.
type installRecord struct {
	Package      string    `json:"package"`
	Version      string    `json:"version,omitempty"`
	Digest       string    `json:"sha256"`
	Installed    time.Time `json:"installed"`
	Updated      time.Time `json:"updated"`
	Undo         []undoRec `json:"undo"`
	Unrestorable []string  `json:"unrestorable,omitempty"` // originals not kept (they held secrets)
}

const installedDir = "installed"

func (p *Processor) recordDir(name string) string {
	return filepath.Join(p.StateDir, installedDir, name)
}

func readRecord(dir string) (*installRecord, error) {
	data, err := os.ReadFile(filepath.Join(dir, "record.json"))
	if err != nil {
		return nil, err
	}
	var rec installRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("install record %s: %w", dir, err)
	}
	return &rec, nil
}

func writeRecord(dir string, rec *installRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "record.json"), data, 0o600)
}

// record adds a successful run's changes to its package's install record.
func (r *run) recordInstall() error {
	dir := r.p.recordDir(r.cpk.Package.Name)
	if len(r.undo) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) {
		rec, err = &installRecord{Package: r.cpk.Package.Name, Installed: r.p.Now().UTC()}, nil
	}
	if err != nil {
		return err
	}
	rec.Version, rec.Digest, rec.Updated = r.cpk.Package.Version, r.cpk.Digest, r.p.Now().UTC()
	known := map[string]bool{}
	for _, u := range rec.Undo {
		known[u.Op+"\x00"+u.Path+"\x00"+strings.Join(u.Argv, "\x00")] = true
		if u.Path != "" {
			known[u.Path] = true
		}
	}
	for _, p := range rec.Unrestorable {
		known[p] = true
	}
	seen := map[string]bool{} // paths this run already met (later restores are intermediate versions)
	for _, u := range r.undo {
		switch u.Op {
		case "none":
			continue
		case "exec":
			key := u.Op + "\x00" + u.Path + "\x00" + strings.Join(u.Argv, "\x00")
			if known[key] || r.mentionsSecret(strings.Join(u.Argv, "\x00")) {
				continue
			}
			known[key] = true
			rec.Undo = append(rec.Undo, u)
			continue
		}
		if known[u.Path] || seen[u.Path] {
			seen[u.Path] = true
			continue
		}
		seen[u.Path] = true
		if u.Op == "restore" {
			if r.secretPaths[u.Path] || r.holdsSecret(u.Kept) {
				rec.Unrestorable = append(rec.Unrestorable, u.Path)
				continue
			}
			kept := filepath.Join(dir, fmt.Sprintf("%05d-%s", len(rec.Undo)+1, filepath.Base(u.Path)))
			if err := os.Link(u.Kept, kept); err != nil {
				fi, serr := os.Stat(u.Kept)
				if serr != nil {
					return serr
				}
				if err := copyMeta(u.Kept, kept, &fileMeta{Mode: fi.Mode().Perm() & 0o700}); err != nil {
					return err
				}
			}
			u.Kept = kept
		}
		rec.Undo = append(rec.Undo, u)
	}
	return writeRecord(dir, rec)
}

// Installed lists the packages with an install record.
func (p *Processor) Installed() ([]string, error) {
	p.defaults()
	entries, err := os.ReadDir(filepath.Join(p.StateDir, installedDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// UninstallResult is what Uninstall did.
type UninstallResult struct {
	Package      string   `json:"package"`
	Reversed     int      `json:"reversed"`
	Failed       []string `json:"failed,omitempty"`
	Unrestorable []string `json:"unrestorable,omitempty"`
	DryRun       bool     `json:"dry_run,omitempty"`
	touched      []string
}

// Uninstall reverses a package's recorded changes, newest first: files it
// created go, files it replaced, edited or deleted come back as they were
// (owner, mode and links included), directories it made go when empty,
// undo commands run. Changes made since by others to those files are
// lost. Each step tolerates being done already, so an interrupted
// uninstall can be run again. Callers hold Lock.
func (p *Processor) Uninstall(ctx context.Context, name string) (*UninstallResult, error) {
	p.defaults()
	dir := p.recordDir(filepath.Base(name))
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) {
		names, _ := p.Installed()
		if len(names) == 0 {
			return nil, fmt.Errorf("package %s has no install record (no package has one here)", name)
		}
		return nil, fmt.Errorf("package %s has no install record (these have: %s)", name, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, err
	}
	res := &UninstallResult{Package: rec.Package, Unrestorable: rec.Unrestorable, DryRun: p.DryRun}
	run := func(argv []string, d string) error {
		if _, err := os.Stat(d); err != nil {
			d = dir
		}
		out, err := runCommand(context.WithoutCancel(ctx), argv, d, os.Environ(), p.StepTimeout, dir)
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			if l != "" {
				p.logLine("  | " + l)
			}
		}
		return err
	}
	for i := len(rec.Undo) - 1; i >= 0; i-- {
		u := rec.Undo[i]
		if p.DryRun {
			p.logLine("uninstall " + rec.Package + ": would " + u.What)
			res.Reversed++
			continue
		}
		if err := applyUndo(u, run); err != nil {
			if u.Op == "rmdir" && !errors.Is(err, os.ErrNotExist) {
				// A directory the package made that now holds other files stays.
				p.logLine(fmt.Sprintf("uninstall %s: %s: kept (%v)", rec.Package, u.What, err))
				continue
			}
			p.logLine(fmt.Sprintf("uninstall %s: %s FAILED: %v", rec.Package, u.What, err))
			res.Failed = append(res.Failed, u.What+": "+err.Error())
			continue
		}
		p.logLine(fmt.Sprintf("uninstall %s: %s", rec.Package, u.What))
		res.Reversed++
		if u.Path != "" {
			res.touched = append(res.touched, filepath.Dir(u.Path))
		}
	}
	for _, path := range rec.Unrestorable {
		p.logLine(fmt.Sprintf("uninstall %s: %s left as it is: its original held a secret value and was not kept", rec.Package, path))
	}
	if p.DryRun {
		return res, nil
	}
	syncPaths(res.touched)
	if len(res.Failed) > 0 {
		return res, fmt.Errorf("package %s: %d change(s) could not be reversed (the record is kept: run the uninstall again once fixed)", rec.Package, len(res.Failed))
	}
	return res, os.RemoveAll(dir)
}
