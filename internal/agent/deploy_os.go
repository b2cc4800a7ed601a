package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// openLockFile opens (creating it and the home) the home's deploy.lock,
// on which the OS-specific lockEngine takes its lock.
func (a *Agent) openLockFile() (*os.File, error) {
	if err := os.MkdirAll(a.Home, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(a.Home, "deploy.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	return f, nil
}

// freeSpaceUp asks avail about dir, or about its nearest existing parent
// when dir is not there yet (a download directory made on first use).
func freeSpaceUp(dir string, avail func(string) (uint64, error)) (uint64, error) {
	for {
		n, err := avail(dir)
		if err == nil {
			return n, nil
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, os.ErrNotExist) || parent == dir {
			return 0, err
		}
		dir = parent
	}
}
