//go:build unix

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"zonekit/internal/errkind"
)

// lockEngine takes the home's engine lock (a flock, so a killed engine
// never leaves it behind): one engine at a time per endpoint.
func (a *Agent) lockEngine() (func(), error) {
	f, err := a.openLockFile()
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		data, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errkind.New(errkind.Busy, "another zac (pid %s) is deploying packages on this device; it will take this work too", strings.TrimSpace(string(data)))
		}
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// freeSpace is what an unprivileged write can use where dir is (or would be).
func freeSpace(dir string) (uint64, error) {
	return freeSpaceUp(dir, func(dir string) (uint64, error) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return st.Bavail * uint64(st.Bsize), nil
	})
}

// ownGroup puts a command in its own process group, killed whole on
// timeout (an installer's children go with it).
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// shellCommand runs a package's command line with /bin/sh, which expands
// environment variables as the OCS agent's system() does.
func shellCommand(ctx context.Context, line string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", "-c", line)
}

// launchLine runs the launched file from the extraction directory.
func launchLine(nameAndArgs string) string { return "./" + nameAndArgs }
