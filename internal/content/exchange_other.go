//go:build !linux

package content

import "os"

// exchange swaps two directories. Without an atomic exchange, b is
// missing for the moment between the renames.
func exchange(a, b string) error {
	tmp := b + ".exchange"
	if err := os.Rename(b, tmp); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		os.Rename(tmp, b)
		return err
	}
	return os.Rename(tmp, a)
}
