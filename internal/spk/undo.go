package spk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"zonekit/internal/atomicfile"
)

// undoRec is how to reverse one change. It is data, not a closure, so
// that the journal can hold it and a later run can apply it after a crash.
type undoRec struct {
	Op   string    `json:"op"`             // restore, remove, rmdir, unmove, mkdir, relink, exec, none
	Path string    `json:"path,omitempty"` // the file changed (never a symlink: its target)
	Kept string    `json:"kept,omitempty"` // restore: the copy of the original
	From string    `json:"from,omitempty"` // unmove: where the file came from
	Meta *fileMeta `json:"meta,omitempty"` // restore: the original's mode and owner
	Argv []string  `json:"argv,omitempty"` // exec
	Dir  string    `json:"dir,omitempty"`  // exec
	What string    `json:"what"`
}

// fileMeta is what a file keeps through every change and rollback.
type fileMeta struct {
	Mode     os.FileMode `json:"mode"`
	UID      int         `json:"uid"`
	GID      int         `json:"gid"`
	HasOwner bool        `json:"has_owner,omitempty"`
}

func metaOf(fi os.FileInfo) *fileMeta {
	m := &fileMeta{Mode: fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)}
	m.UID, m.GID, m.HasOwner = ownerOf(fi)
	return m
}

// realPath follows a symbolic link at p to the file it names, so that
// copies and edits change the target and the link stays a link. A path
// that does not exist is its own real path.
func realPath(p string) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return p, nil
	}
	t, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("%s is a symbolic link to a file that does not exist", p)
	}
	return t, nil
}

// writeMeta writes r's content to path atomically with the given mode
// and (when known) owner. Owner before mode: chown clears set-id bits.
func writeMeta(path string, r io.Reader, m *fileMeta) error {
	out, err := atomicfile.New(path, m.Mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Abort()
		return err
	}
	if m.HasOwner {
		if fi, err := out.Stat(); err == nil {
			if uid, gid, ok := ownerOf(fi); !ok || uid != m.UID || gid != m.GID {
				if err := out.Chown(m.UID, m.GID); err != nil {
					out.Abort()
					return fmt.Errorf("keep the owner %d:%d of %s: %w", m.UID, m.GID, path, err)
				}
			}
		}
	}
	if err := out.Chmod(m.Mode); err != nil {
		out.Abort()
		return err
	}
	// Durability comes from one sync at the end of the run (see Run).
	return out.CommitUnsynced()
}

// copyMeta copies the file src to dst with meta m.
func copyMeta(src, dst string, m *fileMeta) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeMeta(dst, in, m)
}

// applyUndo reverses one change. Each kind tolerates a change that never
// happened (the journal records the intent before the change), so that
// recovery after a crash at any point ends in the original state.
func applyUndo(u undoRec, runCmd func(argv []string, dir string) error) error {
	switch u.Op {
	case "restore":
		// The snapshot is the original file itself (a hard link) or a
		// copy: renamed back, then given its owner and mode; a snapshot
		// already renamed back by an interrupted rollback is done.
		if _, err := os.Lstat(u.Kept); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err := os.Rename(u.Kept, u.Path); err != nil {
			return copyMeta(u.Kept, u.Path, u.Meta)
		}
		if u.Meta.HasOwner {
			if err := os.Lchown(u.Path, u.Meta.UID, u.Meta.GID); err != nil {
				return err
			}
		}
		return os.Chmod(u.Path, u.Meta.Mode)
	case "remove":
		if err := os.Remove(u.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	case "rmdir":
		if err := os.Remove(u.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	case "unmove":
		if _, err := os.Lstat(u.Path); errors.Is(err, os.ErrNotExist) {
			return nil // the move never happened
		}
		if err := os.Rename(u.Path, u.From); err != nil {
			fi, serr := os.Stat(u.Path)
			if serr != nil {
				return err
			}
			if err := copyMeta(u.Path, u.From, metaOf(fi)); err != nil {
				return err
			}
			return os.Remove(u.Path)
		}
	case "mkdir":
		if err := os.Mkdir(u.Path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if u.Meta.HasOwner {
			if err := os.Lchown(u.Path, u.Meta.UID, u.Meta.GID); err != nil {
				return err
			}
		}
		return os.Chmod(u.Path, u.Meta.Mode)
	case "relink":
		if cur, err := os.Readlink(u.Path); err == nil && cur == u.From {
			return nil
		}
		if err := os.Symlink(u.From, u.Path); err != nil {
			return err
		}
		if u.Meta.HasOwner {
			return os.Lchown(u.Path, u.Meta.UID, u.Meta.GID)
		}
	case "exec":
		if runCmd == nil {
			return errors.New("cannot run commands here")
		}
		return runCmd(u.Argv, u.Dir)
	case "none":
		return nil
	default:
		return fmt.Errorf("unknown undo %q", u.Op)
	}
	return nil
}
