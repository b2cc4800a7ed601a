package backup

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"zonekit/internal/errkind"
)

// Unpack reads a Pack stream from r and writes its entries under staging,
// an existing empty directory, as they are in the server home: files,
// directories, permissions and mtimes, and owners when running as root.
// It returns the manifest once every entry is checked against it.
//
// Entries that could hurt are refused before anything is written for them:
// absolute paths, ".." elements, links, devices and anything else that is
// not a file or directory, duplicates, a path through a file or a symbolic
// link. The rest is checked by the end: every entry in the manifest and
// nothing else, sizes and SHA-256, info.json first and manifest.json last
// with nothing after it, and r read to its end (where Decrypt's reader
// authenticates the final chunk). All writes go through an os.Root, so
// nothing is ever written outside staging.
//
// Files are created 0600 and directories 0700 while they are written; the
// modes, owners and mtimes of the manifest are applied only when everything
// has been checked. On error, staging holds partial content: remove it.
// progress, if not nil, is called with the count of file bytes written.
func Unpack(r io.Reader, staging string, progress func(n int64)) (*Manifest, error) {
	root, err := os.OpenRoot(staging)
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	if err := checkEmpty(root, staging); err != nil {
		return nil, err
	}
	x := &extractor{root: root, progress: progress, small: newSmallFiles()}
	defer x.closeDirs()
	// Before the directories close and before the caller removes
	// staging: no file is written after Unpack returns.
	defer x.small.stop()
	m, err := x.run(r)
	if err != nil {
		return nil, err
	}
	if err := x.applyMetadata(m, os.Geteuid() == 0); err != nil {
		return nil, err
	}
	return m, nil
}

// Verify reads a Pack stream from r and makes every check that Unpack
// makes, writing nothing. progress, if not nil, is called with the count of
// file bytes checked.
func Verify(r io.Reader, progress func(n int64)) (*Manifest, error) {
	x := &extractor{progress: progress}
	return x.run(r)
}

// maxKept bounds each file VerifyKeep holds in memory.
const maxKept = 1 << 20

// VerifyKeep is Verify that also returns the content of the entries named
// in keep (small configuration files, up to 1 MiB each; a larger one is an
// error), so that a caller can check what a server would read of them.
func VerifyKeep(r io.Reader, progress func(n int64), keep []string) (*Manifest, map[string][]byte, error) {
	x := &extractor{progress: progress, keep: map[string]bool{}, kept: map[string][]byte{}}
	for _, k := range keep {
		x.keep[k] = true
	}
	m, err := x.run(r)
	if err != nil {
		return nil, nil, err
	}
	return m, x.kept, nil
}

func checkEmpty(root *os.Root, staging string) error {
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("unpack: %w", err)
	}
	if len(names) > 0 {
		return fmt.Errorf("unpack: staging directory %s is not empty", staging)
	}
	return nil
}

// extractor walks the tar stream; with a root it writes, without one it
// only checks.
type extractor struct {
	root     *os.Root
	progress func(int64)
	src      *recordingReader // the archive as given
	plain    *recordingReader // decompressed
	seen     map[string]*seen
	order    []string // entries in archive order, implicit directories left out
	buf      []byte   // one copy buffer, large so a big store takes few write calls
	keep     map[string]bool
	kept     map[string][]byte
	dirs     map[string]*os.Root // directories made by this unpack, open
	small    *smallFiles         // writes small files, for Unpack
}

type seen struct {
	dir      bool
	implicit bool // a parent directory made for an entry, not itself in the archive
	size     int64
	sum      string
}

func (x *extractor) run(r io.Reader) (*Manifest, error) {
	x.src = &recordingReader{r: r}
	x.seen = make(map[string]*seen)
	zr, err := newDecoder(x.src)
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	ra := newReadAhead(zr, zr.Close, aheadBuffers)
	defer ra.Close()
	x.plain = &recordingReader{r: ra}
	tr := tar.NewReader(x.plain)

	info, err := x.readInfo(tr)
	if err != nil {
		return nil, err
	}
	var m *Manifest
	for m == nil {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, x.readErr(damaged("manifest.json is missing (truncated archive?)"))
		}
		if err != nil {
			return nil, x.readErr(err)
		}
		if hdr.Name == manifestName {
			if m, err = x.readManifest(tr, hdr); err != nil {
				return nil, err
			}
			continue
		}
		if err := x.entry(tr, hdr); err != nil {
			return nil, err
		}
	}
	if hdr, err := tr.Next(); err == nil {
		return nil, damaged("%q follows manifest.json", hdr.Name)
	} else if !errors.Is(err, io.EOF) {
		return nil, x.readErr(err)
	}
	if err := x.end(x.plain); err != nil {
		return nil, err
	}
	if x.small != nil {
		if err := x.small.wait(); err != nil {
			return nil, err
		}
	}
	if err := x.checkManifest(m, info); err != nil {
		return nil, err
	}
	return m, nil
}

// readErr explains a failure to read the archive: the source's own error
// if it failed (a damaged chunk, a broken connection), else damage to the
// compressed or tar stream.
func (x *extractor) readErr(err error) error {
	if x.src.err != nil {
		return x.src.err
	}
	if errors.Is(err, ErrDamaged) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged("truncated archive")
	}
	if x.plain.err != nil {
		return damaged("compressed stream: %v", x.plain.err)
	}
	return damaged("tar stream: %v", err)
}

func (x *extractor) readInfo(tr *tar.Reader) (Info, error) {
	hdr, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return Info{}, x.readErr(damaged("empty archive"))
	}
	if err != nil {
		return Info{}, x.readErr(err)
	}
	if hdr.Name != infoName || hdr.Typeflag != tar.TypeReg {
		return Info{}, damaged("the archive does not start with info.json")
	}
	b, err := x.readSmall(tr, hdr, maxInfoSize)
	if err != nil {
		return Info{}, err
	}
	var f infoFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Info{}, damaged("info.json: %v", err)
	}
	if err := checkFormat(f.Format); err != nil {
		return Info{}, err
	}
	return f.Info, nil
}

func (x *extractor) readManifest(tr *tar.Reader, hdr *tar.Header) (*Manifest, error) {
	if hdr.Typeflag != tar.TypeReg {
		return nil, damaged("manifest.json is not a file")
	}
	b, err := x.readSmall(tr, hdr, maxManifestSize)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, damaged("manifest.json: %v", err)
	}
	return &m, nil
}

func (x *extractor) readSmall(tr *tar.Reader, hdr *tar.Header, limit int64) ([]byte, error) {
	if hdr.Size > limit {
		return nil, damaged("%s is %d bytes, over the limit of %d", hdr.Name, hdr.Size, limit)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, x.readErr(err)
	}
	return b, nil
}

func checkFormat(format int) error {
	switch {
	case format == ManifestFormat:
		return nil
	case format > ManifestFormat:
		return errkind.New(errkind.Failure, "backup content format %d is newer than this zonekit reads (%d): use a newer zonekit", format, ManifestFormat)
	default:
		return damaged("unknown content format %d", format)
	}
}

// entry checks one tar entry and, for Unpack, writes it.
func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	name := hdr.Name
	var dir bool
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeDir:
		dir = true
		if len(name) > 1 && name[len(name)-1] == '/' {
			name = name[:len(name)-1]
		}
		if hdr.Size != 0 {
			return damaged("directory %q has a size", name)
		}
	case tar.TypeSymlink, tar.TypeLink:
		return damaged("%q is a link (%q); a backup holds only files and directories", name, hdr.Linkname)
	default:
		return damaged("%q is of tar type %q; a backup holds only files and directories", name, hdr.Typeflag)
	}
	if err := checkName(name); err != nil {
		return damaged("entry %q: %v", name, err)
	}
	for k := range hdr.PAXRecords {
		// A sparse file's holes cost the archive nothing but the disk all
		// their length; Pack never makes one.
		if strings.HasPrefix(k, "GNU.sparse.") {
			return damaged("%q is a sparse file; a backup holds only plain files and directories", name)
		}
	}
	for _, p := range parents(name) {
		switch s := x.seen[p]; {
		case s == nil:
			if err := x.mkdir(p); err != nil {
				return err
			}
			x.seen[p] = &seen{dir: true, implicit: true}
		case !s.dir:
			return damaged("%q is inside %q, which is a file", name, p)
		}
	}
	if s := x.seen[name]; s != nil {
		if !(dir && s.implicit) {
			return damaged("%q appears twice", name)
		}
		s.implicit = false
		x.order = append(x.order, name)
		return nil
	}
	x.order = append(x.order, name)
	if dir {
		x.seen[name] = &seen{dir: true}
		return x.mkdir(name)
	}
	if x.small != nil && hdr.Size <= smallFileMax {
		return x.writeSmall(name, tr, hdr.Size)
	}
	size, sum, err := x.writeFile(name, tr, hdr.Size)
	if err != nil {
		return err
	}
	x.seen[name] = &seen{size: size, sum: sum}
	return nil
}

// writeSmall reads a small file from the archive and hands it to a
// worker, which creates, writes and hashes it.
func (x *extractor) writeSmall(name string, tr *tar.Reader, size int64) error {
	if err := x.small.Err(); err != nil {
		return err
	}
	d, err := x.dir(path.Dir(name))
	if err != nil {
		return err
	}
	buf := x.small.buffer()
	data := buf[:size]
	if _, err := io.ReadFull(&countingReader{r: tr, progress: x.progress}, data); err != nil {
		x.small.release(buf)
		return x.readErr(err)
	}
	s := &seen{size: size}
	x.seen[name] = s
	x.small.submit(smallFile{dir: d, base: path.Base(name), name: name, data: data, buf: buf, seen: s})
	return nil
}

func (x *extractor) mkdir(name string) error {
	if x.root == nil {
		return nil
	}
	parent, err := x.dir(path.Dir(name))
	if err != nil {
		return err
	}
	if err := parent.Mkdir(path.Base(name), 0o700); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	return nil
}

// maxOpenDirs bounds the directories kept open, whatever the archive holds.
const maxOpenDirs = 128

// dir returns the directory name of staging, open. Every file operation
// then takes one system call on its last element instead of a walk from
// staging (a restore of thousands of files spent most of its system time
// on those walks). A directory is opened only after an Lstat through its
// open parent shows a directory that this unpack made, not a symbolic
// link put there by someone else: the os.Root would keep such a link from
// leading outside staging; this keeps it from leading anywhere.
func (x *extractor) dir(name string) (*os.Root, error) {
	if name == "." {
		return x.root, nil
	}
	if d := x.dirs[name]; d != nil {
		return d, nil
	}
	parent, err := x.dir(path.Dir(name))
	if err != nil {
		return nil, err
	}
	base := path.Base(name)
	fi, err := parent.Lstat(base)
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("unpack: %s in the staging directory is no longer a directory", name)
	}
	d, err := parent.OpenRoot(base)
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	if len(x.dirs) >= maxOpenDirs {
		// Archives are written a directory at a time: starting afresh
		// costs a few opens, and parent stays valid (it is closed here
		// but only used above). Files being written use these
		// directories: they finish first.
		if x.small != nil {
			if err := x.small.wait(); err != nil {
				d.Close()
				return nil, err
			}
		}
		x.closeDirs()
	}
	if x.dirs == nil {
		x.dirs = make(map[string]*os.Root)
	}
	x.dirs[name] = d
	return d, nil
}

func (x *extractor) closeDirs() {
	for _, d := range x.dirs {
		d.Close()
	}
	x.dirs = nil
}

// writeFile streams one file's content to staging (or nowhere, for
// Verify), hashing it.
func (x *extractor) writeFile(name string, tr *tar.Reader, size int64) (int64, string, error) {
	h := newFileHasher(size)
	defer h.Close()
	out := &recordingWriter{w: h}
	fileOut := io.Discard // where the content goes, unhashed
	var f *os.File
	stopWriteback := func() {}
	if x.root != nil {
		d, err := x.dir(path.Dir(name))
		if err != nil {
			return 0, "", err
		}
		// O_EXCL: never write through whatever might already be there.
		f, err = d.OpenFile(path.Base(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, "", fmt.Errorf("unpack: %w", err)
		}
		defer f.Close()
		var fw io.Writer = f
		if size >= parallelMin {
			wb := newWriteback(f)
			defer wb.stop()
			stopWriteback = wb.stop
			fw = wb
		}
		fileOut = fw
		out.w = io.MultiWriter(fw, h)
	}
	var kept *bytes.Buffer
	if x.keep[name] {
		if size > maxKept {
			return 0, "", damaged("%q: %d bytes is too large for a configuration file", name, size)
		}
		kept = &bytes.Buffer{}
		out.w = io.MultiWriter(out.w, kept)
	}
	src := &countingReader{r: tr, progress: x.progress}
	var n int64
	var err error
	if ph, ok := h.(*parallelHasher); ok && kept == nil {
		n, err, out.err = ph.copyFrom(fileOut, src)
	} else {
		if x.buf == nil {
			x.buf = make([]byte, 512<<10)
		}
		n, err = io.CopyBuffer(out, src, x.buf)
	}
	if out.err != nil {
		return 0, "", fmt.Errorf("unpack %s: %w", name, out.err)
	}
	if err != nil {
		return 0, "", x.readErr(err)
	}
	if f != nil {
		stopWriteback()
		if err := f.Close(); err != nil {
			return 0, "", fmt.Errorf("unpack %s: %w", name, err)
		}
	}
	if kept != nil {
		x.kept[name] = kept.Bytes()
	}
	return n, h.Sum(), nil
}

// end reads what is left after the tar archive: zero padding at most, then
// the end of the compressed stream and of r itself.
func (x *extractor) end(zr io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := zr.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return damaged("data after the end of the tar archive")
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return x.readErr(err)
		}
	}
	// The decompressor stops at the end of its last frame; for Decrypt's
	// reader only the read that returns io.EOF proves nothing was cut off.
	n, err := io.Copy(io.Discard, x.src)
	if err != nil {
		return err
	}
	if n > 0 {
		return damaged("data after the compressed stream")
	}
	return nil
}

// checkManifest matches the manifest with info.json and with what the
// archive held, entry by entry.
func (x *extractor) checkManifest(m *Manifest, info Info) error {
	if err := checkFormat(m.Format); err != nil {
		return err
	}
	if !m.Info.equal(info) {
		return damaged("manifest.json and info.json describe different servers")
	}
	listed := make(map[string]bool, len(m.Entries))
	for _, e := range m.Entries {
		if err := checkName(e.Path); err != nil {
			return damaged("manifest.json: entry %q: %v", e.Path, err)
		}
		if listed[e.Path] {
			return damaged("manifest.json lists %q twice", e.Path)
		}
		listed[e.Path] = true
		if e.UID < 0 || e.GID < 0 {
			return damaged("manifest.json: entry %q: negative owner", e.Path)
		}
		s := x.seen[e.Path]
		switch {
		case s == nil || s.implicit:
			return damaged("%q is in manifest.json but not in the archive", e.Path)
		case s.dir != e.Mode.IsDir():
			return damaged("%q is a %s in the archive but a %s in manifest.json", e.Path, kind(s.dir), kind(e.Mode.IsDir()))
		case s.dir && (e.Size != 0 || e.SHA256 != ""):
			return damaged("manifest.json: directory %q has a size or a hash", e.Path)
		case !s.dir && e.Size != s.size:
			return damaged("%q: %d bytes in the archive, %d in manifest.json", e.Path, s.size, e.Size)
		case !s.dir && e.SHA256 != s.sum:
			return damaged("%q: SHA-256 differs from manifest.json", e.Path)
		}
	}
	for _, name := range x.order {
		if !listed[name] {
			return damaged("%q is in the archive but not in manifest.json", name)
		}
	}
	return nil
}

func kind(dir bool) string {
	if dir {
		return "directory"
	}
	return "file"
}

// applyMetadata gives every entry its owner, mode and mtime. Children come
// before their parents (reverse path order), so a read-only directory and a
// directory's mtime are set after everything inside it.
func (x *extractor) applyMetadata(m *Manifest, chown bool) error {
	if err := x.small.wait(); err != nil {
		return err
	}
	entries := append([]Entry(nil), m.Entries...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path > entries[j].Path })
	for _, e := range entries {
		d, err := x.dir(path.Dir(e.Path))
		if err != nil {
			return err
		}
		base := path.Base(e.Path)
		if chown {
			if err := d.Lchown(base, e.UID, e.GID); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		}
		if err := d.Chmod(base, e.Mode.Perm()); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		if err := d.Chtimes(base, time.Time{}, e.ModTime); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
	}
	return nil
}

// recordingReader keeps the first error of the source, which the
// decompressor or tar reader might otherwise reword or hide.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}

// recordingWriter tells write errors (the disk) from read errors (the
// archive) in io.Copy.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
