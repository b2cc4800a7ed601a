//go:build unix

package spk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ownerOf is a file's owner and group.
func ownerOf(fi os.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// linkCount is a file's number of hard links (0 when unknown).
func linkCount(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}

// ownGroup puts a step's command in its own process group, killed whole
// on timeout or cancel: an installer's children go with it.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// Lock takes the host's SPK lock in dir (a flock, so a killed run never
// leaves it behind): one run at a time per machine, so that recovering
// an interrupted run never touches a live one. It waits for the holder
// until ctx ends, calling waiting (if not nil) once with who holds it.
func Lock(ctx context.Context, dir string, waiting func(holder string)) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("SPK lock: %w", err)
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("SPK lock: %w", err)
		}
		if !said {
			said = true
			data, _ := os.ReadFile(path)
			holder := "another package run"
			if pid := strings.TrimSpace(string(data)); pid != "" {
				holder = fmt.Sprintf("another package run (pid %s)", pid)
			}
			err = fmt.Errorf("%s holds %s", holder, path)
			if waiting != nil {
				waiting(holder)
			}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the SPK lock: %w (%v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
