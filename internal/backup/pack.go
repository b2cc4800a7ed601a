package backup

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Pack writes a backup's content to w: a zstd stream of a tar archive that
// holds info.json, then each source in the order given, then manifest.json,
// the returned Manifest. Files are hashed as they stream, so memory stays
// constant whatever their size; only the manifest grows with their number.
//
// Each file's Open is called in turn and must yield exactly Size bytes, or
// Pack fails naming it (a file that changed while being read). progress, if
// not nil, is called with the count of source bytes read each time some
// are read. Pack does not close w. On error what was written is unusable.
func Pack(w io.Writer, info Info, sources []Source, progress func(n int64)) (*Manifest, error) {
	if err := checkSources(sources); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	zw, err := newFrameWriter(w)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	defer zw.abandon()
	tw := tar.NewWriter(zw)
	if err := writeJSON(tw, infoName, infoFile{Format: ManifestFormat, Info: info}, info.Created); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	m := &Manifest{Format: ManifestFormat, Info: info, Entries: make([]Entry, 0, len(sources))}
	for _, s := range sources {
		e, err := packSource(tw, s, progress)
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", s.Name, err)
		}
		m.Entries = append(m.Entries, e)
	}
	if err := writeJSON(tw, manifestName, m, info.Created); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	return m, nil
}

// checkSources refuses, before anything is written, what Unpack would
// refuse: bad or reserved names, duplicates, a file with entries inside it.
func checkSources(sources []Source) error {
	isDir := make(map[string]bool, len(sources))
	for _, s := range sources {
		if err := checkName(s.Name); err != nil {
			return fmt.Errorf("source %q: %v", s.Name, err)
		}
		switch {
		case s.Mode.IsDir():
		case s.Mode.IsRegular():
			if s.Open == nil {
				return fmt.Errorf("source %s: a file without Open", s.Name)
			}
			if s.Size < 0 {
				return fmt.Errorf("source %s: negative size %d", s.Name, s.Size)
			}
		default:
			return fmt.Errorf("source %s: mode %v is neither a regular file nor a directory", s.Name, s.Mode)
		}
		if s.UID < 0 || s.GID < 0 {
			return fmt.Errorf("source %s: negative owner %d:%d", s.Name, s.UID, s.GID)
		}
		if _, dup := isDir[s.Name]; dup {
			return fmt.Errorf("source %s is listed twice", s.Name)
		}
		isDir[s.Name] = s.Mode.IsDir()
	}
	for _, s := range sources {
		for _, p := range parents(s.Name) {
			if dir, ok := isDir[p]; ok && !dir {
				return fmt.Errorf("source %s is inside %s, which is a file", s.Name, p)
			}
		}
	}
	return nil
}

func packSource(tw *tar.Writer, s Source, progress func(int64)) (Entry, error) {
	mtime := s.ModTime.UTC()
	e := Entry{Path: s.Name, Mode: s.Mode & (fs.ModeDir | fs.ModePerm), UID: s.UID, GID: s.GID, ModTime: mtime}
	// PAX keeps sub-second mtimes and large ids; the manifest is what
	// Unpack applies, the tar header says what follows.
	hdr := &tar.Header{
		Name: s.Name, Mode: int64(s.Mode.Perm()), Uid: s.UID, Gid: s.GID,
		ModTime: mtime, Format: tar.FormatPAX,
	}
	if s.Mode.IsDir() {
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return e, tw.WriteHeader(hdr)
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = s.Size
	rc, err := s.Open()
	if err != nil {
		return Entry{}, err
	}
	defer rc.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return Entry{}, err
	}
	h := newFileHasher(s.Size)
	defer h.Close()
	src := &countingReader{r: rc, progress: progress}
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(src, s.Size))
	if err != nil {
		return Entry{}, err
	}
	if n < s.Size {
		return Entry{}, fmt.Errorf("yielded %d bytes, %d declared (did it change while being read?)", n, s.Size)
	}
	var one [1]byte
	if k, err := io.ReadFull(src, one[:]); k > 0 {
		return Entry{}, fmt.Errorf("yields more than the %d bytes declared (did it change while being read?)", s.Size)
	} else if !errors.Is(err, io.EOF) {
		return Entry{}, err
	}
	if err := rc.Close(); err != nil {
		return Entry{}, err
	}
	e.Size = s.Size
	e.SHA256 = h.Sum()
	return e, nil
}

func writeJSON(tw *tar.Writer, name string, v any, mtime time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: int64(len(b)),
		ModTime: mtime.UTC(), Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = tw.Write(b)
	return err
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r        io.Reader
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.progress != nil {
		c.progress(int64(n))
	}
	return n, err
}
