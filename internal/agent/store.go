package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// store unpacks a STORE package into target without touching it until the
// whole archive is out and checked: it extracts into a staging directory
// inside target (the same file system, so the moves are renames), checks
// that every entry can take its place, then renames the entries in. A
// refused archive (ERR_UNZIP, ERR_OUT_OF_SPACE) leaves target as it was,
// byte for byte, as the OCS agent does (it copies only after unpacking).
// It returns a result status on failure, "" on success.
func (e *engine) store(p *LocalPackage, arch *fragments, format, target string) string {
	created, err := mkdirAllNew(target)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_BAD_PARAM"
	}
	// A target made for this package goes again when the package fails.
	undo := func() {
		if created != "" {
			os.RemoveAll(created)
		}
	}
	stage, err := os.MkdirTemp(target, ".zac-store-"+p.ID+"-")
	if err != nil {
		e.logf("package %s: staging directory: %v", p.ID, err)
		undo()
		return "ERR_BAD_PARAM"
	}
	defer os.RemoveAll(stage)
	if res := e.extract(p, arch, format, stage); res != "" {
		undo()
		return res
	}
	if err := placeStaged(stage, target); err != nil {
		e.logf("package %s: store into %s: %v", p.ID, target, err)
		undo()
		return "ERR_UNZIP"
	}
	return ""
}

// mkdirAllNew creates dir and its missing parents, and returns the
// topmost directory it created ("" when dir was there).
func mkdirAllNew(dir string) (string, error) {
	top := ""
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		top = d
		if d == filepath.Dir(d) {
			break
		}
	}
	return top, os.MkdirAll(dir, 0o755)
}

// placeStaged moves what stage holds into target: a check of every entry
// first (nothing moves if one cannot take its place), then renames. A
// directory already in target is kept and filled; a new one moves whole.
func placeStaged(stage, target string) error {
	var moves [][2]string
	err := filepath.WalkDir(stage, func(src string, d fs.DirEntry, err error) error {
		if err != nil || src == stage {
			return err
		}
		rel, err := filepath.Rel(stage, src)
		if err != nil {
			return err
		}
		dest := filepath.Join(target, rel)
		if err := underLink(target, dest); err != nil {
			return err
		}
		fi, err := os.Lstat(dest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			moves = append(moves, [2]string{src, dest})
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		case err != nil:
			return err
		case d.IsDir() && fi.IsDir():
			return nil // kept; its entries are checked next
		case d.IsDir() || fi.IsDir():
			return fmt.Errorf("%s is a directory on one side and not on the other", dest)
		}
		moves = append(moves, [2]string{src, dest})
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range moves {
		if err := os.Rename(m[0], m[1]); err != nil {
			return err
		}
	}
	return nil
}
