//go:build linux

package spk

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// syncPaths flushes each file system holding one of dirs (syncfs), not
// every file system of the machine: a busy database elsewhere does not
// make a package run wait.
func syncPaths(dirs []string) {
	done := map[uint64]bool{}
	for _, d := range dirs {
		for {
			if _, err := os.Stat(d); err == nil || !errors.Is(err, os.ErrNotExist) || d == filepath.Dir(d) {
				break
			}
			d = filepath.Dir(d) // removed by a rollback: its parent's file system
		}
		var st syscall.Stat_t
		if syscall.Stat(d, &st) != nil || done[uint64(st.Dev)] {
			continue
		}
		done[uint64(st.Dev)] = true
		f, err := os.Open(d)
		if err != nil {
			syscall.Sync()
			return
		}
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			syscall.Sync()
			return
		}
	}
}
