//go:build unix

package spk

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// freeSpace is the space available to unprivileged users under path (or
// its nearest existing parent: the directory may be created by the package).
func freeSpace(path string) (uint64, error) {
	p := filepath.Clean(path)
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(p, &st)
		if err == nil {
			return uint64(st.Bavail) * uint64(st.Bsize), nil
		}
		if !errors.Is(err, os.ErrNotExist) || p == filepath.Dir(p) {
			return 0, err
		}
		p = filepath.Dir(p)
	}
}
