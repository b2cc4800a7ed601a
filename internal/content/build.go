package content

import (
	"cmp"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
)

// The archive streams through a small ring of blocks; each block is
// handed to every stage (MD5, SHA-256, fragment writer, format check) and
// reused once all of them are done with it, so memory stays at
// blockCount*blockSize whatever the archive's size, and the stages run
// on as many cores as there are.
const (
	blockSize  = 1 << 20
	blockCount = 8
)

type block struct {
	buf []byte
	n   int
	wg  sync.WaitGroup
}

// stage consumes the archive block by block. finish is called once after
// the last block (also after a failure elsewhere, to release resources).
type stage struct {
	write  func([]byte) error
	finish func() error
	err    error
	in     chan *block
}

// Build writes package id, described by s, into the repository, reading
// the archive (nil for a package without files) to its end. It checks the
// archive as it goes (zip or tar.gz, intact, holding the file a launch
// command names) and computes the MD5 and SHA-256 of the archive and the
// SHA-256 of every fragment. The package appears in the repository, under
// its final name, only when everything is written and synced; on any
// failure nothing is left behind.
func (r *Repo) Build(id string, s Spec, archive io.Reader, created time.Time) (*Manifest, error) {
	s.Normalize()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !ValidID(id) {
		return nil, errkind.New(errkind.Usage, "package id %q: want digits", id)
	}
	if archive == nil && s.NeedsArchive() {
		return nil, errkind.New(errkind.Usage, "action %s needs an archive or a directory (--file)", s.Action)
	}
	if r.Exists(id) {
		return nil, errkind.New(errkind.Exists, "package %s already exists in %s", id, r.dir)
	}
	stageDir, err := os.MkdirTemp(r.dir, stagingMark+id+"-")
	if err != nil {
		return nil, fmt.Errorf("build package %s: %w", id, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(stageDir)
		}
	}()
	if err := os.Chmod(stageDir, 0o755); err != nil {
		return nil, err
	}
	m := &Manifest{ID: id, Name: s.Name, OS: s.OS, FragmentSize: s.FragmentSize, Fragments: []Fragment{}, Created: created.UTC()}
	if archive != nil {
		if err := r.buildArchive(stageDir, id, s, archive, m); err != nil {
			return nil, err
		}
	}
	info := InfoFor(id, s, m.MD5, len(m.Fragments))
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{InfoFile: info.Marshal(), ManifestFile: append(mj, '\n')} {
		if err := writeSynced(filepath.Join(stageDir, name), data); err != nil {
			return nil, fmt.Errorf("build package %s: %w", id, err)
		}
	}
	atomicfile.SyncDir(stageDir)
	if err := os.Rename(stageDir, r.PackageDir(id)); err != nil {
		return nil, fmt.Errorf("build package %s: %w", id, err)
	}
	done = true
	atomicfile.SyncDir(r.dir)
	return m, nil
}

func (r *Repo) buildArchive(dir, id string, s Spec, archive io.Reader, m *Manifest) error {
	blocks := make([]*block, blockCount)
	for i := range blocks {
		blocks[i] = &block{buf: make([]byte, blockSize)}
	}
	first := blocks[0]
	n, err := io.ReadFull(archive, first.buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("read archive: %w", err)
	}
	first.n = n
	format := detectFormat(first.buf[:n])
	switch {
	case format == "":
		return invalid("the archive is neither zip, tar.gz nor a CPK")
	case s.Action == ActionCPK && format != FormatCPK:
		return invalid("action cpk needs a compiled server software package (.cpk, zman spk-compile), not a %s archive", format)
	case s.Action != ActionCPK && format == FormatCPK:
		return invalid("a CPK archive is deployed with --action cpk")
	}
	m.Format = format

	md5h, shah := md5.New(), sha256.New()
	fw := &fragmentWriter{dir: dir, id: id, size: s.FragmentSize, max: MaxFragments}
	stages := []*stage{hashStage(md5h), hashStage(shah), {write: fw.write, finish: fw.finish}}
	var check *tarCheck
	if format == FormatTarGz {
		check = newTarCheck()
		stages = append(stages, &stage{write: check.write, finish: check.finish})
	}
	var failed atomic.Bool
	var wg sync.WaitGroup
	for _, st := range stages {
		st.in = make(chan *block, blockCount)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range st.in {
				if st.err == nil {
					if st.err = st.write(b.buf[:b.n]); st.err != nil {
						failed.Store(true)
					}
				}
				b.wg.Done()
			}
			if err := st.finish(); st.err == nil {
				st.err = err
			}
		}()
	}
	var readErr error
	var total int64
	for i := 0; ; i++ {
		b := blocks[i%blockCount]
		eof := false
		if i > 0 {
			b.wg.Wait()
			b.n, err = io.ReadFull(archive, b.buf)
		} else {
			eof = n < blockSize
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			eof, err = true, nil
		}
		if err != nil {
			readErr = fmt.Errorf("read archive: %w", err)
			break
		}
		if b.n > 0 {
			total += int64(b.n)
			b.wg.Add(len(stages))
			for _, st := range stages {
				st.in <- b
			}
		}
		if eof || failed.Load() {
			break
		}
	}
	for _, st := range stages {
		close(st.in)
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	// A damaged archive is the likelier story than a disk error, and the
	// one worth telling: report the format check first.
	if check != nil && check.err != nil {
		return check.err
	}
	for _, st := range stages {
		if st.err != nil {
			return st.err
		}
	}
	m.Size = total
	m.MD5 = hex.EncodeToString(md5h.Sum(nil))
	m.SHA256 = hex.EncodeToString(shah.Sum(nil))
	m.Fragments = fw.frags

	var names map[string]bool
	switch {
	case format == FormatCPK:
		return r.checkCPK(dir, m)
	case check != nil:
		names = check.top
	default:
		if names, err = checkZip(dir, m); err != nil {
			return err
		}
	}
	if s.Action == ActionLaunch {
		exe := LaunchFile(s.Command)
		if !names[exe] {
			return invalid("--command %q: the package has no file %s at its top level", s.Command, exe)
		}
	}
	return nil
}

func hashStage(h hash.Hash) *stage {
	return &stage{write: func(p []byte) error { h.Write(p); return nil }, finish: func() error { return nil }}
}

// fragmentWriter cuts the archive into <id>-1..N, hashing each. A second
// goroutine starts each finished fragment's writeback and closes it (the
// kernel may block that call while the disk queue is full, which must not
// stall the hashing); the build syncs everything in one go at the end.
type fragmentWriter struct {
	dir  string
	id   string
	size int64
	max  int // fragments at most

	cur    *os.File
	left   int64
	h      hash.Hash
	frags  []Fragment
	done   chan *os.File
	closer sync.WaitGroup
	errMu  sync.Mutex
	err    error
}

func (w *fragmentWriter) write(p []byte) error {
	if w.done == nil {
		w.done = make(chan *os.File, 64)
		w.closer.Add(1)
		go func() {
			defer w.closer.Done()
			for f := range w.done {
				startWriteback(f)
				if err := f.Close(); err != nil {
					w.errMu.Lock()
					w.err = cmp.Or(w.err, fmt.Errorf("write %s: %w", f.Name(), err))
					w.errMu.Unlock()
				}
			}
		}()
	}
	for len(p) > 0 {
		if w.cur == nil {
			if len(w.frags) >= w.max {
				return invalid("the archive makes more than %d fragments of %d bytes: give a larger --fragment-size", w.max, w.size)
			}
			name := FragmentName(w.id, len(w.frags)+1)
			f, err := os.OpenFile(filepath.Join(w.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("write fragment: %w", err)
			}
			w.cur, w.left = f, w.size
			w.h = sha256.New()
			w.frags = append(w.frags, Fragment{Name: name})
		}
		k := int64(len(p))
		if k > w.left {
			k = w.left
		}
		if _, err := w.cur.Write(p[:k]); err != nil {
			return fmt.Errorf("write %s: %w", w.cur.Name(), err)
		}
		w.h.Write(p[:k])
		w.left -= k
		w.frags[len(w.frags)-1].Size += k
		p = p[k:]
		if w.left == 0 {
			if err := w.close(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *fragmentWriter) close() error {
	w.frags[len(w.frags)-1].SHA256 = hex.EncodeToString(w.h.Sum(nil))
	w.done <- w.cur
	w.cur = nil
	return nil
}

func (w *fragmentWriter) finish() error {
	if w.cur != nil {
		w.close()
	}
	if w.done != nil {
		close(w.done)
		w.closer.Wait()
	}
	if w.err != nil {
		return w.err
	}
	names := make([]string, len(w.frags))
	for i, f := range w.frags {
		names[i] = f.Name
	}
	return syncFiles(w.dir, names)
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
