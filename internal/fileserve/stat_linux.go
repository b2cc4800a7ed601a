//go:build linux && (amd64 || arm64)

package fileserve

import (
	"os"
	"syscall"
	"unsafe"
)

// fileID says which file a path named and in which state: a rename over
// the path changes the inode, a write in place the size or the times.
type fileID struct {
	dev, ino         uint64
	size             int64
	mtime, mtimeNsec int64
	ctime, ctimeNsec int64
}

func sameFile(a, b fileID) bool { return a == b }

func idOf(fi os.FileInfo) fileID { return idOfStat(fi.Sys().(*syscall.Stat_t)) }

func idOfStat(st *syscall.Stat_t) fileID {
	return fileID{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		mtime: int64(st.Mtim.Sec), mtimeNsec: int64(st.Mtim.Nsec),
		ctime: int64(st.Ctim.Sec), ctimeNsec: int64(st.Ctim.Nsec),
	}
}

// statPath is a path NUL-terminated once, so that the check before each
// use is one fstatat without allocating (syscall.Stat copies the path).
type statPath []byte

func newStatPath(p string) statPath { return append([]byte(p), 0) }

func (p statPath) stat() (fileID, bool) {
	var st syscall.Stat_t
	for {
		_, _, errno := syscall.Syscall6(sysFstatat, atFdcwd, uintptr(unsafe.Pointer(&p[0])), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return fileID{}, false
		}
		return idOfStat(&st), true
	}
}

const atFdcwd = ^uintptr(99) // AT_FDCWD, -100
