package content

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"

	"zonekit/internal/spk"
)

// Archive formats a package can carry.
const (
	FormatTarGz = "tar.gz"
	FormatZip   = "zip"
	// FormatCPK is a compiled server software package: a zstd stream.
	FormatCPK = "cpk"
)

// detectFormat is DetectFormat, for the build pipeline.
func detectFormat(head []byte) string { return DetectFormat(head) }

// DetectFormat tells zip, tar.gz and CPK apart by the first bytes of an
// archive ("" for none of them).
func DetectFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return FormatCPK
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatTarGz
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatZip
	}
	return ""
}

// tarCheck reads a tar.gz stream to its end in its own goroutine: every
// header, every byte of content, and gzip's CRC and length at the end, so
// that a damaged archive is refused before it is deployed. It records the
// regular files at the top level (for the launch check).
type tarCheck struct {
	pw   *io.PipeWriter
	done chan struct{}
	top  map[string]bool
	err  error
}

func newTarCheck() *tarCheck {
	pr, pw := io.Pipe()
	c := &tarCheck{pw: pw, done: make(chan struct{}), top: map[string]bool{}}
	go func() {
		defer close(c.done)
		c.err = c.read(pr)
		// Let the writer side finish whatever happened here.
		pr.CloseWithError(errCheckDone)
	}()
	return c
}

var errCheckDone = errors.New("archive check finished")

func (c *tarCheck) read(r io.Reader) error {
	top, err := ListTarGz(r)
	c.top = top
	return err
}

// ListTarGz reads a whole tar.gz archive, checking it, and returns the
// regular files at its top level.
func ListTarGz(r io.Reader) (map[string]bool, error) {
	top := map[string]bool{}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return top, invalid("the archive is not a valid tar.gz: %v", err)
	}
	tr := tar.NewReader(gz)
	entries := 0
	var mc MemberCheck
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return top, invalid("the archive is not a valid tar.gz (damaged after %d entries): %v", entries, err)
		}
		entries++
		if kind, skip := TarKind(h.Typeflag); !skip {
			if _, err := mc.Add(h.Name, kind, h.Linkname); err != nil {
				return top, invalid("agents would refuse this archive: %v", err)
			}
		}
		if h.Typeflag == tar.TypeReg {
			if name, ok := topLevel(h.Name); ok {
				top[name] = true
			}
		}
	}
	// Past the tar end marker: the rest of the gzip stream, then its CRC.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return top, invalid("the archive is not a valid tar.gz: %v", err)
	}
	if entries == 0 {
		return top, invalid("the archive is a gzip file without tar entries")
	}
	return top, nil
}

func (c *tarCheck) write(p []byte) error {
	if _, err := c.pw.Write(p); err != nil {
		<-c.done
		if c.err != nil {
			return c.err
		}
		return invalid("the tar.gz archive has data after its end")
	}
	return nil
}

func (c *tarCheck) finish() error {
	c.pw.Close()
	<-c.done
	return c.err
}

// checkZip opens the zip the fragments make up, reads every member (which
// checks its CRC) and returns the regular files at the top level. Zip's
// directory sits at the end of the file, so this runs after writing, from
// the page cache.
func checkZip(dir string, m *Manifest) (map[string]bool, error) {
	ra := &fragmentReaderAt{dir: dir, frags: m.Fragments, size: m.FragmentSize}
	defer ra.Close()
	top, err := ListZip(ra, m.Size)
	return top, err
}

// ListZip reads a whole zip archive of the given size, checking every
// member's CRC, and returns the regular files at its top level.
func ListZip(ra io.ReaderAt, size int64) (map[string]bool, error) {
	top := map[string]bool{}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return top, invalid("the archive is not a valid zip: %v", err)
	}
	var mc MemberCheck
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return top, invalid("the zip archive is damaged at %q: %v", f.Name, err)
		}
		// A link's target is its content (the first 4 KiB, as zac reads it).
		var target strings.Builder
		kind := ZipKind(f.Mode())
		w := io.Discard
		if kind == MemberSymlink {
			w = &limitWriter{w: &target, n: 4096}
		}
		_, err = io.Copy(w, rc)
		rc.Close()
		if err != nil {
			return top, invalid("the zip archive is damaged at %q: %v", f.Name, err)
		}
		if _, err := mc.Add(f.Name, kind, target.String()); err != nil {
			return top, invalid("agents would refuse this archive: %v", err)
		}
		if f.Mode().IsRegular() {
			if name, ok := topLevel(f.Name); ok {
				top[name] = true
			}
		}
	}
	return top, nil
}

// fragmentReaderAt reads the archive back across its fragment files,
// keeping one open at a time.
type fragmentReaderAt struct {
	dir   string
	frags []Fragment
	size  int64
	open  int
	f     *os.File
}

func (r *fragmentReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		i := int(off / r.size)
		if i >= len(r.frags) {
			return n, io.EOF
		}
		if r.f == nil || r.open != i {
			r.Close()
			f, err := os.Open(filepath.Join(r.dir, r.frags[i].Name))
			if err != nil {
				return n, err
			}
			r.f, r.open = f, i
		}
		k, err := r.f.ReadAt(p, off-int64(i)*r.size)
		n, off, p = n+k, off+int64(k), p[k:]
		if err != nil && err != io.EOF {
			return n, err
		}
		if k == 0 {
			return n, fmt.Errorf("fragment %s is short", r.frags[i].Name)
		}
	}
	return n, nil
}

func (r *fragmentReaderAt) Close() error {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	return nil
}

// checkCPK reads back the CPK the fragments make up and opens it as zac
// will: every digest, the manifest, and a signature by a zone CA (zac
// refuses unsigned CPKs, so the zone does too, before anyone assigns one).
func (r *Repo) checkCPK(dir string, m *Manifest) error {
	if r.CPKTrust == nil {
		return invalid("this repository takes no CPK packages")
	}
	ra := &fragmentReaderAt{dir: dir, frags: m.Fragments, size: m.FragmentSize}
	defer ra.Close()
	c, err := spk.Open(io.NewSectionReader(ra, 0, m.Size), spk.OpenOptions{TempDir: dir, Trusted: r.CPKTrust(), RequireSignature: true})
	if err != nil {
		return invalid("the CPK is refused: %v", err)
	}
	return c.Close()
}

// limitWriter keeps the first n bytes written and discards the rest.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if k := min(len(p), l.n); k > 0 {
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
