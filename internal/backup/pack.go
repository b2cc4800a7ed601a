package backup

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"
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
	pf := newPrefetcher(sources)
	defer pf.stop()
	for i, s := range sources {
		pf.reached(i)
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

// prefetchAhead is how many files ahead of the one being packed are
// prefetched, and prefetchMax the largest file prefetched: the disk gets
// many small reads at once instead of one at a time, and a large file is
// left to the kernel's own read-ahead.
const (
	prefetchAhead = 64
	prefetchMax   = 1 << 20
)

// prefetcher calls the sources' Prefetch from its own goroutine, up to
// prefetchAhead files ahead of the packing.
type prefetcher struct {
	sources []Source
	queue   chan int
	queued  int          // sources up to this index were considered
	at      atomic.Int64 // the index being packed
	done    chan struct{}
}

func newPrefetcher(sources []Source) *prefetcher {
	// The queue holds every index reached() can have queued and the
	// goroutine not yet taken: reached never blocks.
	pf := &prefetcher{sources: sources, queue: make(chan int, prefetchAhead+1), done: make(chan struct{})}
	go func() {
		defer close(pf.done)
		for i := range pf.queue {
			if int64(i) >= pf.at.Load() { // not already packed
				pf.sources[i].Prefetch()
			}
		}
	}()
	return pf
}

// reached says that source i is being packed.
func (pf *prefetcher) reached(i int) {
	pf.at.Store(int64(i))
	for ; pf.queued < len(pf.sources) && pf.queued <= i+prefetchAhead; pf.queued++ {
		if s := pf.sources[pf.queued]; s.Prefetch != nil && s.Mode.IsRegular() && s.Size <= prefetchMax {
			pf.queue <- pf.queued
		}
	}
}

// stop ends the goroutine and waits for it.
func (pf *prefetcher) stop() {
	pf.at.Store(int64(len(pf.sources)))
	close(pf.queue)
	<-pf.done
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
			if (s.Open == nil) == (s.WriteTo == nil) {
				return fmt.Errorf("source %s: a file needs either Open or WriteTo", s.Name)
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
	if s.WriteTo != nil {
		return packPushed(tw, hdr, s, e, progress)
	}
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

// packPushed packs a source that writes its content (Source.WriteTo).
func packPushed(tw *tar.Writer, hdr *tar.Header, s Source, e Entry, progress func(int64)) (Entry, error) {
	if err := tw.WriteHeader(hdr); err != nil {
		return Entry{}, err
	}
	h := newFileHasher(s.Size)
	defer h.Close()
	pw := &pushWriter{out: limitedWriter{w: tw, left: s.Size}, h: h, progress: progress}
	n, err := s.WriteTo(pw)
	if err == nil && (n != pw.out.written() || pw.out.over) {
		// The source miscounted what it wrote: believe neither.
		err = fmt.Errorf("reported %d bytes written, %d went through", n, pw.out.written())
	}
	switch {
	case pw.out.over:
		return Entry{}, fmt.Errorf("yields more than the %d bytes declared (did it change while being read?)", s.Size)
	case err != nil:
		return Entry{}, err
	case pw.out.left > 0:
		return Entry{}, fmt.Errorf("yielded %d bytes, %d declared (did it change while being read?)", pw.out.written(), s.Size)
	}
	e.Size = s.Size
	e.SHA256 = h.Sum()
	return e, nil
}

// limitedWriter passes at most left bytes to w; more is errTooMuch.
type limitedWriter struct {
	w    io.Writer
	left int64
	n    int64
	over bool
}

var errTooMuch = errors.New("more than the declared size")

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.over = true
		return 0, errTooMuch
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	l.n += int64(n)
	return n, err
}

func (l *limitedWriter) written() int64 { return l.n }

// pushWriter takes a pushed source's content into the tar stream and the
// file's hash.
type pushWriter struct {
	out      limitedWriter
	h        fileHasher
	progress func(int64)
}

func (p *pushWriter) Write(b []byte) (int, error) {
	n, err := p.out.Write(b)
	p.h.Write(b[:n])
	if n > 0 && p.progress != nil {
		p.progress(int64(n))
	}
	return n, err
}

// ReadFrom reads r in large blocks: into the hashing goroutine's own
// buffers when the file is large (they go to the hash once written, not
// copied), else through one buffer.
func (p *pushWriter) ReadFrom(r io.Reader) (int64, error) {
	r = &countingReader{r: r, progress: p.progress}
	if ph, ok := p.h.(*parallelHasher); ok {
		n, rerr, werr := ph.copyFrom(&p.out, r)
		if werr != nil {
			return n, werr
		}
		return n, rerr
	}
	pr := p.progress
	p.progress = nil // counted by the countingReader
	defer func() { p.progress = pr }()
	return io.CopyBuffer(onlyWriter{p}, r, make([]byte, 256<<10))
}

// onlyWriter hides a ReadFrom method from io.Copy.
type onlyWriter struct{ io.Writer }

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
