package content

import (
	"archive/tar"
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	kflate "github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// PackDir writes the tree under dir to w as an archive of the given
// format (FormatTarGz or FormatZip), members named relative to dir, so
// that a directory becomes a package without a separate archiving step.
// It streams: nothing is held in memory but the current file's buffer.
func PackDir(dir, format string, w io.Writer) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pack %s: not a directory", dir)
	}
	switch format {
	case FormatTarGz:
		return packTarGz(dir, w)
	case FormatZip:
		return packZip(dir, w)
	}
	return fmt.Errorf("pack %s: unknown format %q", dir, format)
}

func packTarGz(dir string, w io.Writer) error {
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		} else if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil // devices, sockets and pipes have no place in a package
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname, h.Uid, h.Gid = "", "", 0, 0
		// Access and change times (PAX records) change with every read of
		// the tree: without them, packing the same files twice gives the
		// same archive, so packages share fragments agents already hold.
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.Format = tar.FormatUnknown
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			return copyFile(tw, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func packZip(dir string, w io.Writer) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return kflate.NewWriter(out, kflate.DefaultCompression)
	})
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil // zip has no portable symlinks; Windows agents extract plain files
		}
		h, err := zip.FileInfoHeader(fi)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
			h.Method = zip.Store
		} else {
			h.Method = zip.Deflate
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			return copyFile(fw, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return zw.Close()
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
