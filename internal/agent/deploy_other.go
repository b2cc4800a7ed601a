//go:build !unix && !windows

package agent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"

	"zonekit/internal/errkind"
)

// lockEngine takes the home's engine lock: a file created exclusively
// (a killed engine leaves it behind; remove deploy.lock by hand then).
func (a *Agent) lockEngine() (func(), error) {
	path := filepath.Join(a.Home, "deploy.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, errkind.New(errkind.Busy, "another zac is deploying packages on this device (%s)", path)
	}
	if err != nil {
		return nil, err
	}
	f.Close()
	return func() { os.Remove(path) }, nil
}

func freeSpace(string) (uint64, error) { return 0, errors.New("free space unknown") }

func ownGroup(*exec.Cmd) {}

func shellCommand(ctx context.Context, line string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", "-c", line)
}

func launchLine(nameAndArgs string) string { return "./" + nameAndArgs }
