package spk

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// A run's journal is a file of JSON lines in its run directory (under
// Processor.StateDir): "begin", then one "undo" line written before each
// change is made, then "end". A run killed before its end leaves a
// journal without one; Recover rolls it back, newest change first.
//
// Lines are written, not synced: a killed process loses nothing the
// kernel has taken. A power cut between a change and the end of the run
// may lose lines, like the unsynced changes themselves (one sync at the
// end of the run makes both durable).
const journalName = "journal"

type journalLine struct {
	Begin   *journalBegin `json:"begin,omitempty"`
	Undo    *undoRec      `json:"undo,omitempty"`
	End     string        `json:"end,omitempty"` // installed, rolled-back, rollback-incomplete, recovered
	Secrets []string      `json:"secret_paths,omitempty"`
}

type journalBegin struct {
	Package string    `json:"package"`
	Version string    `json:"version,omitempty"`
	Digest  string    `json:"sha256"`
	Started time.Time `json:"started"`
	PID     int       `json:"pid"`
}

type journal struct {
	f *os.File
}

func createJournal(dir string, b journalBegin) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{f: f}
	if err := j.write(journalLine{Begin: &b}); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

func (j *journal) write(l journalLine) error {
	if j == nil {
		return nil
	}
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (j *journal) close() {
	if j != nil {
		j.f.Close()
	}
}

// Recovered describes an interrupted run that Recover finished off.
type Recovered struct {
	Package    string    `json:"package"`
	Digest     string    `json:"sha256"`
	Started    time.Time `json:"started"`
	Action     string    `json:"action"` // rolled-back, rollback-incomplete
	RolledBack int       `json:"rolled_back"`
	Failed     []string  `json:"failed,omitempty"`
}

func (r Recovered) String() string {
	s := fmt.Sprintf("package %s (run started %s) was interrupted: %d change(s) rolled back", r.Package, r.Started.UTC().Format(time.RFC3339), r.RolledBack)
	if len(r.Failed) > 0 {
		s += fmt.Sprintf("; %d could not be: %s", len(r.Failed), strings.Join(r.Failed, "; "))
	}
	return s
}

// readJournal reads a run's journal; a torn last line (a crash while it
// was written) is ignored: its change was not made yet.
func readJournal(path string) (begin *journalBegin, undo []undoRec, end string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l journalLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch {
		case l.Begin != nil:
			begin = l.Begin
		case l.Undo != nil:
			undo = append(undo, *l.Undo)
		case l.End != "":
			end = l.End
		}
	}
	if begin == nil {
		return nil, nil, "", fmt.Errorf("%s: no begin record", path)
	}
	return begin, undo, end, sc.Err()
}

// Recover rolls back every run under StateDir that was interrupted (a
// journal without an end), newest change first, and removes its
// directory when the rollback is complete. Call it holding Lock, before
// a new run. Undo commands run with the step timeout.
func (p *Processor) Recover(ctx context.Context) ([]Recovered, error) {
	p.defaults()
	entries, err := os.ReadDir(p.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Recovered
	touched := []string{p.StateDir}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(p.StateDir, e.Name())
		jpath := filepath.Join(dir, journalName)
		begin, undo, end, err := readJournal(jpath)
		if errors.Is(err, os.ErrNotExist) {
			// Snapshots of runs of an earlier zac (an index, no journal)
			// were kept after success, secrets included: they go.
			if _, kerr := os.Stat(filepath.Join(dir, "kept.txt")); kerr == nil {
				if os.RemoveAll(dir) == nil {
					p.logLine("removed " + dir + ": snapshots an earlier version kept after a run (they may hold secrets)")
				}
			}
			continue
		}
		if err != nil && begin == nil {
			continue // a run whose begin never reached the disk
		}
		if err != nil {
			return out, err
		}
		if end != "" {
			continue
		}
		rec := Recovered{Package: begin.Package, Digest: begin.Digest, Started: begin.Started}
		for _, u := range undo {
			if u.Path != "" {
				touched = append(touched, filepath.Dir(u.Path))
			}
		}
		run := func(argv []string, d string) error {
			if _, err := os.Stat(d); err != nil {
				d = dir // the unpacked package it ran in is gone with the killed run
			}
			_, err := runCommand(context.WithoutCancel(ctx), argv, d, os.Environ(), p.StepTimeout, dir)
			return err
		}
		for i := len(undo) - 1; i >= 0; i-- {
			u := undo[i]
			if u.Op == "none" {
				continue
			}
			if err := applyUndo(u, run); err != nil {
				rec.Failed = append(rec.Failed, fmt.Sprintf("%s: %v", u.What, err))
				continue
			}
			rec.RolledBack++
		}
		rec.Action = "rolled-back"
		if len(rec.Failed) > 0 {
			rec.Action = "rollback-incomplete"
		}
		p.logLine("recovery: " + rec.String())
		if f, err := os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			j := &journal{f: f}
			j.write(journalLine{End: rec.Action})
			j.close()
		}
		if len(rec.Failed) == 0 {
			os.RemoveAll(dir)
		}
		out = append(out, rec)
	}
	if len(out) > 0 {
		syncPaths(touched)
	}
	return out, nil
}

// Interrupted lists the runs under StateDir that were interrupted and
// await Recover, changing nothing (for a dry run).
func (p *Processor) Interrupted() ([]Recovered, error) {
	p.defaults()
	entries, err := os.ReadDir(p.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Recovered
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		begin, undo, end, err := readJournal(filepath.Join(p.StateDir, e.Name(), journalName))
		if err != nil || end != "" {
			continue
		}
		n := 0
		for _, u := range undo {
			if u.Op != "none" {
				n++
			}
		}
		out = append(out, Recovered{Package: begin.Package, Digest: begin.Digest, Started: begin.Started, Action: "pending", RolledBack: n})
	}
	return out, nil
}

// pruneHistory keeps the snapshots of the newest keep successful runs
// (their secret-bearing files already removed) and deletes older ones.
func pruneHistory(stateDir string, keep int) {
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return
	}
	type done struct {
		dir     string
		started time.Time
	}
	var runs []done
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(stateDir, e.Name())
		b, _, end, err := readJournal(filepath.Join(dir, journalName))
		if err == nil && end == "installed" {
			runs = append(runs, done{dir, b.Started})
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].started.After(runs[j].started) })
	for i, r := range runs {
		if i >= keep {
			os.RemoveAll(r.dir)
		}
	}
}
