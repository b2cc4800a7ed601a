//go:build windows

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/windows"

	"zonekit/internal/errkind"
)

// lockEngine takes the home's engine lock: LockFileEx on deploy.lock,
// which Windows releases when the process ends however it ends (a killed
// service leaves no lock behind), as flock does on Unix.
func (a *Agent) lockEngine() (func(), error) {
	f, err := a.openLockFile()
	if err != nil {
		return nil, err
	}
	ol := new(windows.Overlapped)
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if err != nil {
		f.Close()
		if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
			return nil, errkind.New(errkind.Busy, "another zac is deploying packages on this device; it will take this work too")
		}
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	// The pid is for people; the lock is on the first byte, past which it
	// is written so that it stays readable.
	f.WriteAt([]byte(" "+strconv.Itoa(os.Getpid())+"\r\n"), 1)
	return func() {
		windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, ol)
		f.Close()
	}, nil
}

// freeSpace is what the caller can write where dir is (or would be).
func freeSpace(dir string) (uint64, error) {
	return freeSpaceUp(dir, func(dir string) (uint64, error) {
		p, err := windows.UTF16PtrFromString(dir)
		if err != nil {
			return 0, err
		}
		var avail, total, free uint64
		if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
			return 0, err
		}
		return avail, nil
	})
}

// ownGroup starts a command in its own process group, and kills it at
// the execution timeout.
func ownGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_NEW_PROCESS_GROUP
}

// shellCommand runs a package's command line with cmd.exe, the line given
// as is (/S /C "line"): Go's argument quoting would change what the
// administrator wrote, and cmd.exe expands %VARIABLES% itself.
func shellCommand(ctx context.Context, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "cmd.exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{CmdLine: `cmd.exe /S /C "` + line + `"`}
	return cmd
}

// launchLine runs the launched file from the extraction directory.
func launchLine(nameAndArgs string) string { return `.\` + nameAndArgs }
