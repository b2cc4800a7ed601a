//go:build windows

package config_test

import "testing"

// setUmask skips: the test checks POSIX file modes, which Windows does
// not keep (ACLs decide there).
func setUmask(t *testing.T, mask int) {
	t.Skip("POSIX file modes: not on Windows")
}
