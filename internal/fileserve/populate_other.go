//go:build !linux

package fileserve

import "os"

// populate is Linux's way to cache a file in large folios; elsewhere
// readahead does what it does.
func populate(*os.File, int64) {}
