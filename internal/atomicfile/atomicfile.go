// Package atomicfile writes files so that readers see either the old content
// or the new, never a torn file: temp file in the same directory, fsync,
// rename, fsync of the directory.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, created with perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	// The rename is durable only once the directory entry is on disk.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// File is a file being written in place of path: readers see the old file
// (or none) until Commit, and an abandoned File leaves nothing behind.
type File struct {
	*os.File
	path string
	done bool
}

// New starts writing a replacement for path with mode perm.
func New(path string, perm os.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{File: f, path: path}, nil
}

// Commit makes the written content durable and puts it at path.
func (f *File) Commit() error { return f.commit(false) }

// CommitNew is Commit that never replaces a file already at path: it
// fails with an error matching fs.ErrExist instead, and writes nothing
// (for exports and backups written only with --force over an old one).
func (f *File) CommitNew() error { return f.commit(true) }

func (f *File) commit(noReplace bool) error {
	if f.done {
		return fmt.Errorf("write %s: already finished", f.path)
	}
	f.done = true
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	var err error
	if noReplace {
		// A hard link fails if path exists, where a rename would replace it.
		if err = os.Link(tmp, f.path); err == nil {
			os.Remove(tmp)
		}
	} else {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	SyncDir(filepath.Dir(f.path))
	return nil
}

// CommitUnsynced puts the content at path by rename, without waiting for
// the disk: readers still see the old file or the new, never a torn one,
// but a crash may lose the change. For callers that write many files and
// then make them durable together (one sync instead of one per file).
func (f *File) CommitUnsynced() error {
	if f.done {
		return fmt.Errorf("write %s: already finished", f.path)
	}
	f.done = true
	tmp := f.Name()
	if err := f.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// Abort discards the content; after Commit it does nothing, so it can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
}

// SyncDir makes the entries of dir durable: files created, renamed or
// removed in it.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
