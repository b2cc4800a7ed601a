//go:build windows

package spk

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// syncPaths does nothing: Windows has no call that flushes a volume
// without administrator rights; each file was renamed into place whole.
func syncPaths([]string) {}

// freeSpace is the space available to the caller under path (or its
// nearest existing parent).
func freeSpace(path string) (uint64, error) {
	p := filepath.Clean(path)
	for {
		var avail, total, free uint64
		ptr, err := windows.UTF16PtrFromString(p)
		if err != nil {
			return 0, err
		}
		err = windows.GetDiskFreeSpaceEx(ptr, &avail, &total, &free)
		if err == nil {
			return avail, nil
		}
		if _, serr := os.Stat(p); !errors.Is(serr, os.ErrNotExist) || p == filepath.Dir(p) {
			return 0, err
		}
		p = filepath.Dir(p)
	}
}
