//go:build unix

package config_test

import (
	"syscall"
	"testing"
)

// setUmask sets the process umask for the test and restores it after.
func setUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}
