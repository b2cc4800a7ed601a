package restore

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"

	"zonekit/internal/api"
	"zonekit/internal/backup"
	"zonekit/internal/content"
)

// LiveScan reads the live configuration while a backup is being unpacked,
// so that telling what a restore changes does not add a read of every
// configuration file after the unpack (on a cold cache, thousands of small
// reads took as long as unpacking a gigabyte).
type LiveScan struct {
	cancel  context.CancelFunc
	done    chan struct{}
	entries map[string]*liveEntry
	err     error // of the walk itself
}

type liveEntry struct {
	mode fs.FileMode // from Lstat
	sum  string      // SHA-256 of the content (links followed), for non-directories
	err  error       // reading it
}

// scanWorkers read files in parallel: on a cold cache the disk answers
// several small reads at once.
const scanWorkers = 4

// ScanLive starts reading the trees includes (relative to home), leaving
// out what excluded names; Changes waits for it, Stop abandons it.
func ScanLive(ctx context.Context, home string, includes []string, excluded func(rel string) bool) *LiveScan {
	ctx, cancel := context.WithCancel(ctx)
	l := &LiveScan{cancel: cancel, done: make(chan struct{}), entries: map[string]*liveEntry{}}
	go func() {
		defer close(l.done)
		l.err = l.scan(ctx, home, includes, excluded)
	}()
	return l
}

func (l *LiveScan) scan(ctx context.Context, home string, includes []string, excluded func(rel string) bool) error {
	type job struct {
		path string
		e    *liveEntry
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.e.sum, _, j.e.err = content.FileSHA256(ctx, j.path)
			}
		}()
	}
	defer wg.Wait()
	defer close(jobs)
	for _, inc := range includes {
		err := filepath.WalkDir(filepath.Join(home, inc), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(home, path)
			rel = filepath.ToSlash(rel)
			if excluded(rel) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			e := &liveEntry{mode: info.Mode()}
			l.entries[rel] = e
			if d.IsDir() {
				return nil
			}
			select {
			case jobs <- job{path, e}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Stop abandons the scan and waits for its goroutines.
func (l *LiveScan) Stop() {
	l.cancel()
	<-l.done
}

// Changes waits for the scan and compares the backup's manifest with the
// live trees: what the restore adds, changes, replaces (the store) and
// removes, sorted by path.
func (l *LiveScan) Changes(m *backup.Manifest) ([]api.RestoreChange, error) {
	<-l.done
	if l.err != nil {
		return nil, l.err
	}
	var out []api.RestoreChange
	inBackup := map[string]bool{}
	for _, e := range m.Entries {
		inBackup[e.Path] = true
		if e.Path == StoreEntry {
			out = append(out, api.RestoreChange{Path: e.Path, Action: "replace"})
			continue
		}
		live := l.entries[e.Path]
		switch {
		case live == nil:
			out = append(out, api.RestoreChange{Path: e.Path, Action: "add"})
		case e.Mode.IsDir() || live.mode.IsDir():
			if live.mode.Perm() != e.Mode.Perm() || live.mode.IsDir() != e.Mode.IsDir() {
				out = append(out, api.RestoreChange{Path: e.Path, Action: "change"})
			}
		case live.err != nil:
			return nil, live.err
		case live.sum != e.SHA256 || live.mode.Perm() != e.Mode.Perm():
			out = append(out, api.RestoreChange{Path: e.Path, Action: "change"})
		}
	}
	for rel := range l.entries {
		if !inBackup[rel] {
			out = append(out, api.RestoreChange{Path: rel, Action: "remove"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
