package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/content"
	"zonekit/internal/failpoint"
)

// DefaultFragmentCacheMax bounds the fragment cache when Agent.FragmentCacheMax
// is 0; the cache also never takes more than a quarter of the disk space it
// and the free space make together.
const DefaultFragmentCacheMax = 1 << 30

// fragCache keeps the fragments of finished packages by SHA-256
// (fragment-cache/<sha256> in the agent's home), as content satellites do,
// so that a package sharing fragments with one this device already had
// (a new version, the same archive under another package, a package
// assigned again after a failure) fetches only what it lacks.
//
// Entries are made whole under a dot name and renamed into place, so a
// killed zac leaves at worst a dot file, which the next engine sweeps
// away (one engine runs per home: lockEngine). Entries are not fsynced:
// every reuse checks the entry against the manifest's SHA-256 and size
// first, and a damaged one is removed, never used. The least recently
// used entries (by modification time, touched on every use) go first when
// the cache is over its bound.
type fragCache struct {
	dir string
	max int64
	now func() time.Time
	// hook is called after each step of put (failpoint.Crash in zac; tests
	// pass one that stops there, as a kill would).
	hook failpoint.Hook
	// link places files by hard link (falling back to a copy); tests turn
	// it off to take the copy path.
	noLink bool
}

// isSum reports whether s is a SHA-256 digest in lower-case hex, the
// only names the cache holds.
func isSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (a *Agent) fragmentCache() *fragCache {
	max := a.FragmentCacheMax
	if max == 0 {
		max = DefaultFragmentCacheMax
	}
	return &fragCache{dir: filepath.Join(a.Home, "fragment-cache"), max: max, now: a.Now, hook: failpoint.Crash}
}

func (c *fragCache) path(sum string) string { return filepath.Join(c.dir, sum) }

// open makes the directory and removes what killed writers left.
func (c *fragCache) open() error {
	if c.max < 0 {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("fragment cache: %w", err)
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("fragment cache: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			os.Remove(filepath.Join(c.dir, e.Name()))
		}
	}
	return nil
}

// errDamaged says a cache entry failed its digest and was removed.
var errDamaged = errors.New("damaged cache entry discarded")

// get places a checked copy of the fragment want at dst from the cache:
// found is false when the cache has no entry (or a damaged one, then
// removed, with errDamaged).
func (c *fragCache) get(want content.Fragment, dst string) (found bool, err error) {
	if c.max < 0 || !isSum(want.SHA256) {
		return false, nil
	}
	src := c.path(want.SHA256)
	if _, err := os.Stat(src); err != nil {
		return false, nil
	}
	ok, err := c.place(src, dst, want)
	if err != nil {
		return false, err
	}
	if !ok {
		os.Remove(src)
		return false, errDamaged
	}
	t := c.now()
	os.Chtimes(src, t, t) // the least recently used go first
	return true, nil
}

// place puts src at dst (a hard link, else a copy) if, once there, it has
// want's size and SHA-256: what is checked is what stays. ok is false
// (and dst untouched) when it does not.
func (c *fragCache) place(src, dst string, want content.Fragment) (ok bool, err error) {
	tmp := dst + ".reuse"
	os.Remove(tmp)
	if c.noLink || os.Link(src, tmp) != nil {
		if err := copyFile(src, tmp); err != nil {
			os.Remove(tmp)
			return false, err
		}
	}
	if !fragmentOK(tmp, want) {
		os.Remove(tmp)
		return false, nil
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// put keeps the fragment file src (checked when it came in) under its
// digest. An entry already there is only marked used.
func (c *fragCache) put(src string, f content.Fragment) error {
	if c.max < 0 || !isSum(f.SHA256) || f.Size > c.max {
		return nil
	}
	fi, err := os.Stat(src)
	if err != nil || fi.Size() != f.Size || !fi.Mode().IsRegular() {
		return nil // not whole: nothing to keep
	}
	dst := c.path(f.SHA256)
	t := c.now()
	if _, err := os.Stat(dst); err == nil {
		return os.Chtimes(dst, t, t)
	}
	// A hard link to the package's file (it is removed next) costs no
	// copy; the dot name keeps it out of the cache until it is whole.
	tmp := filepath.Join(c.dir, ".link-"+f.SHA256+"-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	if c.noLink || os.Link(src, tmp) != nil {
		af, err := atomicfile.New(dst, 0o600)
		if err != nil {
			return err
		}
		defer af.Abort()
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		if _, err := io.Copy(af, io.LimitReader(in, f.Size)); err != nil {
			return fmt.Errorf("fragment cache: %w", err)
		}
		if err := c.hook("fragcache-written"); err != nil {
			return err
		}
		// Not synced: every reuse checks the digest first.
		if err := af.CommitUnsynced(); err != nil {
			return err
		}
	} else {
		if err := c.hook("fragcache-written"); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("fragment cache: %w", err)
		}
	}
	return os.Chtimes(dst, t, t)
}

// evict removes the least recently used entries until the cache is within
// its bound; it returns how many went.
func (c *fragCache) evict() (int, error) {
	if c.max < 0 {
		return 0, nil
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("fragment cache: %w", err)
	}
	type entry struct {
		name string
		size int64
		used time.Time
	}
	var list []entry
	var total int64
	for _, e := range ents {
		if !isSum(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		list = append(list, entry{e.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	limit := c.max
	if free, err := freeSpace(c.dir); err == nil {
		limit = min(limit, (int64(min(free, 1<<62))+total)/4)
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].used.Equal(list[j].used) {
			return list[i].used.Before(list[j].used)
		}
		return list[i].name < list[j].name
	})
	n := 0
	for _, e := range list {
		if total <= limit {
			break
		}
		if err := os.Remove(filepath.Join(c.dir, e.name)); err != nil && !os.IsNotExist(err) {
			return n, fmt.Errorf("fragment cache: %w", err)
		}
		total -= e.size
		n++
	}
	return n, nil
}

// reuse places fragment n of p from the cache or from another package
// this device holds, checked by digest; false when none has it.
func (e *engine) reuse(p *LocalPackage, n int) bool {
	if p.Manifest == nil || e.fc == nil || n > len(p.Manifest.Fragments) {
		return false
	}
	want := p.Manifest.Fragments[n-1]
	dir := e.a.packageDir(p.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false
	}
	dst := filepath.Join(dir, content.FragmentName(p.ID, n))
	found, err := e.fc.get(want, dst)
	switch {
	case errors.Is(err, errDamaged):
		e.logf("package %s: fragment %d/%d: the cached copy fails its SHA-256; discarded", p.ID, n, p.Fragments)
	case err != nil:
		e.logf("package %s: fragment %d/%d: fragment cache: %v", p.ID, n, p.Fragments, err)
	case found:
		e.logf("package %s: fragment %d/%d reused from the fragment cache", p.ID, n, p.Fragments)
		return true
	}
	// Another package held here, or an earlier fragment of this one.
	for _, q := range e.cache {
		if q.Manifest == nil || (q.Phase != PhaseDownload && q.Phase != PhaseReady) {
			continue
		}
		for i, f := range q.Manifest.Fragments {
			if f.SHA256 != want.SHA256 || f.Size != want.Size || (q.ID == p.ID && i+1 >= n) {
				continue
			}
			src := filepath.Join(e.a.packageDir(q.ID), content.FragmentName(q.ID, i+1))
			if _, err := os.Stat(src); err != nil {
				continue
			}
			if ok, _ := e.fc.place(src, dst, want); ok {
				e.logf("package %s: fragment %d/%d reused from package %s", p.ID, n, p.Fragments, q.ID)
				return true
			}
		}
	}
	return false
}

// release removes a package's directory, keeping its whole fragments in
// the fragment cache first (within the cache's bound).
func (e *engine) release(p *LocalPackage) error {
	dir := e.a.packageDir(p.ID)
	if e.fc != nil && p.Manifest != nil {
		kept := 0
		for i, f := range p.Manifest.Fragments {
			src := filepath.Join(dir, content.FragmentName(p.ID, i+1))
			if _, err := os.Stat(src); err != nil {
				continue
			}
			if err := e.fc.put(src, f); err != nil {
				e.logf("package %s: fragment cache: %v", p.ID, err)
				break
			}
			kept++
		}
		if kept > 0 {
			n, err := e.fc.evict()
			if err != nil {
				e.logf("fragment cache: %v", err)
			}
			if n > 0 {
				e.logf("fragment cache: %d least recently used fragment(s) removed to stay within its bound", n)
			}
		}
	}
	return os.RemoveAll(dir)
}
