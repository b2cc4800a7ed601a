package agent

import (
	"archive/tar"
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/gzip"

	"zonekit/internal/content"
)

// Extraction limits: an archive is untrusted until it is out, digest or not
// (the digest says who made it, not that it is sane).
const (
	// spaceMargin is kept free on the target's file system.
	spaceMargin = 16 << 20
)

// extract checks for room and unpacks the archive into target. It returns
// a result status on failure, "" on success.
func (e *engine) extract(p *LocalPackage, arch *fragments, format, target string) string {
	need, err := unpackedSize(arch, format)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_UNZIP"
	}
	avail, err := freeSpace(target)
	if err == nil && avail < uint64(need)+spaceMargin {
		e.logf("package %s: %d bytes to unpack, %d free in %s", p.ID, need, avail, target)
		return "ERR_OUT_OF_SPACE"
	}
	limit := int64(1 << 62)
	if err == nil {
		limit = int64(avail) - spaceMargin
	}
	switch format {
	case content.FormatTarGz:
		err = extractTarGz(io.NewSectionReader(arch, 0, arch.size), target, limit)
	case content.FormatZip:
		err = extractZip(arch, arch.size, target, limit)
	default:
		err = fmt.Errorf("format %s cannot be unpacked", format)
	}
	switch {
	case errors.Is(err, errNoSpace) || errors.Is(err, syscall.ENOSPC):
		e.logf("package %s: unpack: %v", p.ID, err)
		return "ERR_OUT_OF_SPACE"
	case err != nil:
		e.logf("package %s: unpack: %v", p.ID, err)
		return "ERR_UNZIP"
	}
	e.logf("package %s: unpacked into %s", p.ID, target)
	return ""
}

// unpackedSize estimates the room an archive needs: the sum of a zip's
// sizes, or the length of a tar.gz's tar stream (gzip's trailer, modulo 4
// GiB: never less than the archive itself).
func unpackedSize(arch *fragments, format string) (int64, error) {
	switch format {
	case content.FormatZip:
		zr, err := zip.NewReader(arch, arch.size)
		if err != nil {
			return 0, err
		}
		var n int64
		for _, f := range zr.File {
			n += int64(f.UncompressedSize64)
		}
		return n, nil
	case content.FormatTarGz:
		if arch.size < 18 {
			return 0, errors.New("tar.gz archive too short")
		}
		var t [4]byte
		if _, err := arch.ReadAt(t[:], arch.size-4); err != nil {
			return 0, err
		}
		return max(int64(binary.LittleEndian.Uint32(t[:])), arch.size), nil
	}
	return 0, fmt.Errorf("format %s cannot be unpacked", format)
}

// safePath joins a clean member name (content.MemberCheck) to dir.
func safePath(dir, name string) (string, error) {
	clean, err := content.CleanMember(name)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.FromSlash(clean)), nil
}

// underLink refuses to write through a link already in place: an earlier
// member may have made a directory a link (to a place that is inside,
// checked, but a second link could chain out).
func underLink(dir, p string) error {
	rel, err := filepath.Rel(dir, filepath.Dir(p))
	if err != nil || rel == "." {
		return err
	}
	cur := dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		if fi, err := os.Lstat(cur); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("member %s would be written through the link %s", p, cur)
		}
	}
	return nil
}

type limitedWriter struct {
	w    io.Writer
	left *int64
}

func (l limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > *l.left {
		return 0, errNoSpace
	}
	n, err := l.w.Write(p)
	*l.left -= int64(n)
	return n, err
}

func writeFile(dest string, mode fs.FileMode, r io.Reader, left *int64) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	// Replace, never write through: dest may be a link from the archive.
	if fi, err := os.Lstat(dest); err == nil && !fi.Mode().IsRegular() {
		if err := os.Remove(dest); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm()&0o777|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(limitedWriter{f, left}, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func extractTarGz(r io.Reader, dir string, limit int64) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	left := limit
	// The rules zman's build applies too: what passes there passes here.
	var mc content.MemberCheck
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		kind, skip := content.TarKind(h.Typeflag)
		if skip {
			continue
		}
		clean, err := mc.Add(h.Name, kind, h.Linkname)
		if err != nil {
			return err
		}
		dest := filepath.Join(dir, filepath.FromSlash(clean))
		if err := underLink(dir, dest); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dest, 0o755); err != nil {
				return err
			}
		case tar.TypeReg: // tar.Reader reports the legacy TypeRegA as TypeReg
			if err := writeFile(dest, fs.FileMode(h.Mode), tr, &left); err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.Remove(dest)
			if err := os.Symlink(h.Linkname, dest); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := safePath(dir, h.Linkname)
			if err != nil {
				return err
			}
			if fi, err := os.Lstat(src); err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("hard link %s to %s: not a file of the archive", h.Name, h.Linkname)
			}
			os.Remove(dest)
			if err := os.Link(src, dest); err != nil {
				return err
			}
		default:
			return fmt.Errorf("member %s: type %q is not unpacked (devices, fifos)", h.Name, h.Typeflag)
		}
	}
}

func extractZip(ra io.ReaderAt, size int64, dir string, limit int64) error {
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return err
	}
	if len(zr.File) > content.MaxMembers {
		return fmt.Errorf("more than %d members", content.MaxMembers)
	}
	left := limit
	var mc content.MemberCheck
	for _, f := range zr.File {
		kind := content.ZipKind(f.Mode())
		if kind != content.MemberSymlink {
			if _, err := mc.Add(f.Name, kind, ""); err != nil {
				return err
			}
		}
		dest, err := safePath(dir, f.Name)
		if err != nil {
			return err
		}
		if err := underLink(dir, dest); err != nil {
			return err
		}
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(dest, 0o755); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			rc, err := f.Open()
			if err != nil {
				return err
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return err
			}
			if _, err := mc.Add(f.Name, kind, string(target)); err != nil {
				return err
			}
			os.Remove(dest)
			if err := os.Symlink(string(target), dest); err != nil {
				return err
			}
		case mode.IsRegular():
			rc, err := f.Open()
			if err != nil {
				return err
			}
			if mode.Perm() == 0 {
				mode = 0o644 // zips from Windows carry no Unix mode
			}
			err = writeFile(dest, mode, rc, &left)
			rc.Close()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("member %s: not a file, directory or link", f.Name)
		}
	}
	return nil
}
