package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

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

// dirRef is an open directory that files are read relative to; the last
// of the walk and the reads of its files closes it.
type dirRef struct {
	f    *os.File
	refs atomic.Int32
}

func (d *dirRef) release() {
	if d.refs.Add(-1) == 0 {
		d.f.Close()
	}
}

type scanJob struct {
	dir  *dirRef
	name string
	e    *liveEntry
}

// scan walks the trees through directory descriptors and reads every file
// relative to its directory with plain system calls, its mode taken from
// the open descriptor: on a cold cache that costs a third less CPU than
// Lstat, os.Open and reads to the end per file (0.22 s against 0.34 s for
// 5,000 files on the bench server), CPU that the unpack needs meanwhile.
func (l *LiveScan) scan(ctx context.Context, home string, includes []string, excluded func(rel string) bool) error {
	jobs := make(chan scanJob, 64)
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for j := range jobs {
				j.e.mode, j.e.sum, j.e.err = hashAt(ctx, int(j.dir.f.Fd()), j.name, buf)
				j.dir.release()
			}
		}()
	}
	defer wg.Wait()
	defer close(jobs)
	for _, inc := range includes {
		root := filepath.Join(home, inc)
		fi, err := os.Lstat(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(inc)
		if !fi.IsDir() {
			// As filepath.WalkDir: a root that is not a directory (a
			// symbolic link too) is an entry of its own.
			if !excluded(rel) {
				e := &liveEntry{mode: fi.Mode()}
				e.sum, _, e.err = content.FileSHA256(ctx, root)
				l.entries[rel] = e
			}
			continue
		}
		f, err := os.Open(root)
		if err != nil {
			return err
		}
		if err := l.walk(ctx, jobs, f, rel, fi.Mode(), excluded); err != nil {
			return err
		}
	}
	return nil
}

// walk lists the open directory f (rel, of mode) and hands its files to the
// workers; it takes f over.
func (l *LiveScan) walk(ctx context.Context, jobs chan<- scanJob, f *os.File, rel string, mode fs.FileMode, excluded func(string) bool) error {
	d := &dirRef{f: f}
	d.refs.Store(1)
	defer d.release()
	if !excluded(rel) {
		l.entries[rel] = &liveEntry{mode: mode}
	}
	list, err := f.ReadDir(-1)
	if err != nil {
		return err
	}
	dirfd := int(f.Fd())
	for _, de := range list {
		child := rel + "/" + de.Name()
		if !de.IsDir() {
			if excluded(child) {
				continue
			}
			e := &liveEntry{}
			l.entries[child] = e
			d.refs.Add(1)
			select {
			case jobs <- scanJob{dir: d, name: de.Name(), e: e}:
			case <-ctx.Done():
				d.release()
				return ctx.Err()
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, de.Name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "lstat", Path: filepath.Join(f.Name(), de.Name()), Err: err}
		}
		fd, err := unix.Openat(dirfd, de.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: filepath.Join(f.Name(), de.Name()), Err: err}
		}
		sub := os.NewFile(uintptr(fd), filepath.Join(f.Name(), de.Name()))
		if err := l.walk(ctx, jobs, sub, child, fileMode(&st), excluded); err != nil {
			return err
		}
	}
	return nil
}

// hashAt reads the file name in directory dirfd: its mode (of a symbolic
// link itself, as Lstat) and the SHA-256 of its content (links followed).
// A FIFO or device has a mode and no content: nothing waits on it.
func hashAt(ctx context.Context, dirfd int, name string, buf []byte) (fs.FileMode, string, error) {
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	var mode fs.FileMode
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW, 0)
	if err == unix.ELOOP {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return 0, "", &fs.PathError{Op: "lstat", Path: name, Err: err}
		}
		mode = fileMode(&st)
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	if err != nil {
		return mode, "", &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return mode, "", &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if mode == 0 {
		mode = fileMode(&st)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return mode, "", nil
	}
	h := sha256.New()
	for {
		if err := ctx.Err(); err != nil {
			return mode, "", err
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return mode, "", &fs.PathError{Op: "read", Path: name, Err: err}
		}
		h.Write(buf[:n])
		// A short read of a regular file is its end.
		if n < len(buf) {
			return mode, hex.EncodeToString(h.Sum(nil)), nil
		}
	}
}

// fileMode is what os.Lstat would say of st, as far as Changes looks:
// the permission bits and the type.
func fileMode(st *unix.Stat_t) fs.FileMode {
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	default:
		m |= fs.ModeIrregular
	}
	return m
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
