//go:build !linux || !(amd64 || arm64)

package fileserve

import "os"

// fileID says which file a path named and in which state.
type fileID struct{ fi os.FileInfo }

func sameFile(a, b fileID) bool {
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}

func idOf(fi os.FileInfo) fileID { return fileID{fi} }

type statPath string

func newStatPath(p string) statPath { return statPath(p) }

func (p statPath) stat() (fileID, bool) {
	fi, err := os.Stat(string(p))
	if err != nil {
		return fileID{}, false
	}
	return fileID{fi}, true
}
