// Package regfile opens files that the preboot services hand to clients:
// regular files only, opened without blocking, so that a FIFO or a device
// placed in a served directory can never stall a transfer or the daemon.
package regfile

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is returned for anything but a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Open opens name under root for reading. The type is checked before the
// open (opening some devices has side effects) and again on the open file
// (the name may have been replaced in between). O_NONBLOCK keeps the open
// of a FIFO from waiting for a writer; it changes nothing for a regular
// file's reads.
func Open(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	fi, err := root.Lstat(name)
	if err == nil && fi.Mode()&fs.ModeSymlink == 0 && !fi.Mode().IsRegular() {
		return nil, nil, ErrNotRegular
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	return checked(f)
}

// OpenPath is Open for a path outside any root.
func OpenPath(path string) (*os.File, fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err == nil && !fi.Mode().IsRegular() {
		return nil, nil, ErrNotRegular
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	return checked(f)
}

func checked(f *os.File) (*os.File, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, ErrNotRegular
	}
	return f, fi, nil
}
