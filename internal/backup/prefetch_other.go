//go:build !linux

package backup

import "os"

// willNeed has no portable equivalent: the reads happen when Pack reads.
func willNeed(f *os.File) {}

// PrefetchArchive has no portable equivalent: the archive is read as it
// is decrypted.
func PrefetchArchive(f *os.File) {}
