//go:build linux

package fileserve

import (
	"os"
	"syscall"
	"unsafe"
)

// populateMax bounds the files populate reads whole: a larger one is left
// to readahead, or a Range request for a piece of it would read it all.
const populateMax = 16 << 20

const madvPopulateRead = 22 // MADV_POPULATE_READ, Linux 5.14

// populate brings a file that is not wholly in the page cache into it in
// large folios. Readahead, for read and sendfile alike, fills the cache
// of a file read for the first time mostly with single pages; a read-only
// mapping marked MADV_HUGEPAGE makes the kernel's fault readahead allocate
// folios as large as the file and its alignment allow (up to 2 MiB on
// x86-64). sendfile serves the pages of large folios for about half the
// CPU per byte (scripts/bench/README.md: a fragment read back from disk
// cost 0.17-0.22 CPU s/GiB, populated so 0.10-0.11, as when just
// written). Files already cached, empty or over populateMax are left
// alone, and any failure (an older kernel, no THP) leaves the file to
// readahead: this only makes serving cheaper. Nothing is read through the
// mapping, so a file cut short meanwhile makes the madvise fail, never a
// SIGBUS.
func populate(f *os.File, size int64) {
	if size <= 0 || size > populateMax {
		return
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return
	}
	defer syscall.Munmap(m)
	if resident(m) {
		return
	}
	if syscall.Madvise(m, syscall.MADV_HUGEPAGE) != nil {
		return
	}
	syscall.Madvise(m, madvPopulateRead)
}

// resident reports whether every page of the mapping m is in the page
// cache.
func resident(m []byte) bool {
	ps := os.Getpagesize()
	vec := make([]byte, (len(m)+ps-1)/ps)
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return true // unknown: leave it
	}
	for _, v := range vec {
		if v&1 == 0 {
			return false
		}
	}
	return true
}
