package restore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
	"zonekit/internal/failpoint"
)

// Names under the server home. Staging and set-aside folders hold
// decrypted keys: whatever a crash leaves of them, the next start removes.
const (
	journalName   = ".restore-journal"
	StagingPrefix = ".restore-staging-"
	asidePrefix   = ".pre-restore-"
)

// The steps of a swap, in order; each is a failpoint ("restore-" + step).
var Steps = []string{"journal", "conf-aside", "conf-in", "store-aside", "store-in", "raft-aside", "commit", "cleanup"}

// journal is the intent record of a swap: while it says "swapping", the
// next start puts the previous state back; once it says "committed", the
// next start only removes what is left over.
type journal struct {
	State   string    `json:"state"` // swapping, committed
	Staging string    `json:"staging"`
	Aside   string    `json:"aside"`
	Started time.Time `json:"started"`
	Marker  bool      `json:"marker,omitempty"` // the swap brings a recovery marker
}

// Swap replaces the configuration (conf/), the zone store and the
// replication log (data/raft, set aside: it describes the store replaced)
// by the ones unpacked and checked in staging, a folder of the home. After
// a crash at any instant, Recover at the next start leaves exactly the
// previous state or exactly the new one. hook, if not nil, is called
// after each step (failpoint.Crash in a real server). A Swap that fails
// without crashing puts the previous state back itself. A Swap that
// succeeds is committed; Cleanup then removes what it set aside.
func Swap(p config.Paths, staging string, hook failpoint.Hook) (err error) {
	if hook == nil {
		hook = func(string) error { return nil }
	}
	if filepath.Dir(staging) != filepath.Clean(p.Home) || !strings.HasPrefix(filepath.Base(staging), StagingPrefix) {
		return fmt.Errorf("restore: staging %s is not a staging folder of %s", staging, p.Home)
	}
	// The staged files were written without an fsync each; one syncfs makes
	// them all durable before anything refers to them.
	if err := syncFS(staging); err != nil {
		return fmt.Errorf("restore: flush the staged files: %w", err)
	}
	aside, err := os.MkdirTemp(p.Home, asidePrefix)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// A staged recovery marker (the restore of a zone's only server) comes
	// in with the store: the restarted server then leads alone.
	marker := exists(filepath.Join(staging, "data", filepath.Base(p.RecoverMarker())))
	j := journal{State: "swapping", Staging: filepath.Base(staging), Aside: filepath.Base(aside), Started: time.Now().UTC(), Marker: marker}
	if err := writeJournal(p, j); err != nil {
		os.RemoveAll(aside)
		return err
	}
	crashed := false
	step := func(name string, fn func() error) error {
		if err := fn(); err != nil {
			return err
		}
		if err := hook("restore-" + name); err != nil {
			crashed = true
			return err
		}
		return nil
	}
	defer func() {
		if err != nil && !crashed {
			if _, rerr := Recover(p); rerr != nil {
				err = fmt.Errorf("%w; putting the previous state back failed too: %v", err, rerr)
			} else {
				err = fmt.Errorf("%w (the previous state was put back)", err)
			}
		}
	}()
	if err := step("journal", func() error { return nil }); err != nil {
		return err
	}
	if err := step("conf-aside", func() error {
		return wrap("set the current configuration aside", os.Rename(p.Conf(), filepath.Join(aside, "conf")))
	}); err != nil {
		return err
	}
	if err := step("conf-in", func() error {
		return wrap("restore the configuration", os.Rename(filepath.Join(staging, "conf"), p.Conf()))
	}); err != nil {
		return err
	}
	// A hard link keeps the current store whole while the new one is
	// renamed over its name; the running server holds it open until it
	// restarts.
	if err := step("store-aside", func() error {
		return wrap("keep the current zone store", os.Link(p.Store(), filepath.Join(aside, "zone.db")))
	}); err != nil {
		return err
	}
	if err := step("store-in", func() error {
		return wrap("restore the zone store", os.Rename(filepath.Join(staging, filepath.FromSlash(StoreEntry)), p.Store()))
	}); err != nil {
		return err
	}
	if err := step("raft-aside", func() error {
		err := os.Rename(p.Raft(), filepath.Join(aside, "raft"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap("set the replication log aside", err)
		}
		if marker {
			return wrap("order a new replication cluster", os.Rename(filepath.Join(staging, "data", filepath.Base(p.RecoverMarker())), p.RecoverMarker()))
		}
		return nil
	}); err != nil {
		return err
	}
	// Every rename must be on disk before the journal says it is done.
	for _, dir := range []string{p.Home, p.Data(), aside, staging} {
		if err := atomicfile.SyncDir(dir); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	j.State = "committed"
	if err := step("commit", func() error { return writeJournal(p, j) }); err != nil {
		return err
	}
	return nil
}

// Cleanup removes what a committed swap left: the previous state set
// aside and the emptied staging folder, then the journal. It may run
// after the restore was answered (removing a large configuration tree
// takes a while): until it is done, the journal says committed and a
// start finishes the work (Recover). hook is called after the removal
// (the "cleanup" step).
func Cleanup(p config.Paths, hook failpoint.Hook) error {
	data, err := os.ReadFile(filepath.Join(p.Home, journalName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore journal: %w", err)
	}
	j, err := parseJournal(p, data)
	if err != nil {
		return err
	}
	if j.State != "committed" {
		return fmt.Errorf("restore: the swap is not committed: its cleanup is left to the next start")
	}
	os.RemoveAll(filepath.Join(p.Home, j.Aside))
	os.RemoveAll(filepath.Join(p.Home, j.Staging))
	if hook != nil {
		if err := hook("restore-cleanup"); err != nil {
			return err
		}
	}
	return removeJournal(p)
}

// Recover finishes or undoes a swap that a crash interrupted, and removes
// staging and set-aside folders left by crashes (they hold decrypted
// keys). It runs at every start, before the store is opened, and returns
// what it did for the log ("" when there was nothing to do).
func Recover(p config.Paths) (string, error) {
	data, err := os.ReadFile(filepath.Join(p.Home, journalName))
	if errors.Is(err, fs.ErrNotExist) {
		n, err := sweep(p)
		if n > 0 && err == nil {
			return fmt.Sprintf("removed %d folder(s) of an interrupted restore", n), nil
		}
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("restore journal: %w", err)
	}
	j, err := parseJournal(p, data)
	if err != nil {
		return "", err
	}
	aside := filepath.Join(p.Home, j.Aside)
	did := "finished a restore interrupted after its swap"
	if j.State == "swapping" {
		did = "undid a restore interrupted during its swap: the previous state is back"
		if err := rollBack(p, aside, j.Marker); err != nil {
			return "", err
		}
	}
	if _, err := sweep(p); err != nil {
		return "", err
	}
	if err := removeJournal(p); err != nil {
		return "", err
	}
	return did, nil
}

func parseJournal(p config.Paths, data []byte) (journal, error) {
	var j journal
	if err := json.Unmarshal(data, &j); err != nil || (j.State != "swapping" && j.State != "committed") ||
		!strings.HasPrefix(j.Aside, asidePrefix) || !strings.HasPrefix(j.Staging, StagingPrefix) ||
		j.Aside != filepath.Base(j.Aside) || j.Staging != filepath.Base(j.Staging) {
		return journal{}, fmt.Errorf("restore journal %s is damaged: look at it, put conf/ and data/zone.db right by hand, then remove it", filepath.Join(p.Home, journalName))
	}
	return j, nil
}

// rollBack puts back whatever the swap set aside.
func rollBack(p config.Paths, aside string, marker bool) error {
	if marker {
		if err := os.Remove(p.RecoverMarker()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore rollback: %w", err)
		}
	}
	// Whatever stands in their place goes first; a crash in between is
	// undone again by the next start, as the journal still says swapping.
	for _, it := range []struct{ name, live string }{{"conf", p.Conf()}, {"zone.db", p.Store()}, {"raft", p.Raft()}} {
		if !exists(filepath.Join(aside, it.name)) {
			continue
		}
		if err := os.RemoveAll(it.live); err != nil {
			return fmt.Errorf("restore rollback: %w", err)
		}
		if err := os.Rename(filepath.Join(aside, it.name), it.live); err != nil {
			return fmt.Errorf("restore rollback: put back %s: %w", it.name, err)
		}
	}
	for _, dir := range []string{p.Home, p.Data()} {
		if err := atomicfile.SyncDir(dir); err != nil {
			return fmt.Errorf("restore rollback: %w", err)
		}
	}
	return nil
}

// sweep removes staging and set-aside folders; it returns how many.
func sweep(p config.Paths) (int, error) {
	entries, err := os.ReadDir(p.Home)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // no zone here: the start says so
	}
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	n := 0
	for _, e := range entries {
		if name := e.Name(); e.IsDir() && (strings.HasPrefix(name, StagingPrefix) || strings.HasPrefix(name, asidePrefix)) {
			if err := os.RemoveAll(filepath.Join(p.Home, name)); err != nil {
				return n, fmt.Errorf("restore: remove %s: %w", name, err)
			}
			n++
		}
	}
	return n, nil
}

func writeJournal(p config.Paths, j journal) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(p.Home, journalName), data, 0o600); err != nil {
		return fmt.Errorf("restore journal: %w", err)
	}
	return nil
}

func removeJournal(p config.Paths) error {
	if err := os.Remove(filepath.Join(p.Home, journalName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore journal: %w", err)
	}
	return atomicfile.SyncDir(p.Home)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("restore: %s: %w", what, err)
}

// syncFS flushes the whole filesystem holding dir (the staged files).
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
