package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
)

// pullMark prefixes the directory a package is pulled into. Unlike
// staging directories it survives a restart, so that a cut pull resumes
// where it stopped.
const pullMark = ".pull-"

// pullWorkers fragments travel at once: enough to keep a link busy while
// one fragment's request is in its round trip, few enough not to crowd
// the peer's clients out.
const pullWorkers = 4

// maxManifest bounds a peer's manifest.json (a 1 GiB package of 1 MiB
// fragments has a 150 kB manifest).
const maxManifest = 64 << 20

// stallTimeout ends a transfer that has received nothing for this long.
const stallTimeout = time.Minute

var errStalled = fmt.Errorf("nothing received for %s", stallTimeout)

// ErrDigest marks a file whose bytes do not match the digest they should
// have; the damaged copy is discarded.
var ErrDigest = errors.New("SHA-256 mismatch")

// PullRequest describes a package to pull from a peer into the repository.
// Size, SHA256, MD5 and Frags come from the zone's record of the package:
// the peer's manifest must agree with them, and the peer's fragments with
// the manifest's digests.
type PullRequest struct {
	ID     string
	Size   int64
	SHA256 string
	MD5    string
	Frags  int
	// Info is the info file the package must have (content.InfoFor of the
	// record); nil accepts the peer's.
	Info []byte
	// Base is the peer's content URL (https://HOST:PORT/content) and
	// Client the HTTP client that reaches it.
	Base   string
	Client *http.Client
	// Done, when set, counts the package's bytes in place so far (linked,
	// resumed and received), for progress reports.
	Done *atomic.Int64
}

// PullStats tells what a pull did.
type PullStats struct {
	Received  int64 // bytes that travelled
	Fetched   int   // fragments received (whole or their rest)
	Resumed   int   // fragments continued from a partial file
	Reused    int   // fragments found locally by digest (another package, an older copy, an earlier pass)
	Refetched int   // fragments that arrived damaged and were fetched again
	Present   bool  // the package was already complete: nothing done
}

// Has reports whether the repository holds package id complete with the
// archive digest want (the record's SHA-256; "" for a package without
// archive, which then needs only its manifest).
func (r *Repo) Has(id, want string) bool {
	m, err := r.Manifest(id)
	return err == nil && m.SHA256 == want && fileExists(filepath.Join(r.PackageDir(id), InfoFile)) &&
		!fileExists(filepath.Join(r.PackageDir(id), damagedFile))
}

// Pull makes package req.ID complete in the repository, fetching from the
// peer only what it lacks: fragments whose digest some local package (or
// an earlier, interrupted pull) already holds are reused, a partial
// fragment is continued with a Range request, and each fragment is
// checked against the manifest's SHA-256 before it counts (a damaged one
// is discarded and fetched again, once). The package appears under its
// name only when complete and synced; an older copy under that name is
// swapped out in one step.
func (r *Repo) Pull(ctx context.Context, req PullRequest) (PullStats, error) {
	var st PullStats
	if !ValidID(req.ID) {
		return st, errkind.New(errkind.Usage, "package id %q: want digits", req.ID)
	}
	if r.Has(req.ID, req.SHA256) {
		st.Present = true
		if req.Done != nil {
			req.Done.Store(req.Size)
		}
		return st, nil
	}
	dir := filepath.Join(r.dir, pullMark+req.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, fmt.Errorf("pull package %s: %w", req.ID, err)
	}
	mj, err := fetchSmall(ctx, req.Client, req.Base+"/"+req.ID+"/"+ManifestFile)
	if err != nil {
		return st, fmt.Errorf("pull package %s: %w", req.ID, err)
	}
	var m Manifest
	if err := json.Unmarshal(mj, &m); err != nil {
		return st, errkind.New(errkind.Invalid, "pull package %s: the peer's manifest is corrupt: %v", req.ID, err)
	}
	if err := checkManifest(&m, req); err != nil {
		return st, fmt.Errorf("pull package %s: the peer's manifest: %w", req.ID, err)
	}
	info, err := fetchSmall(ctx, req.Client, req.Base+"/"+req.ID+"/"+InfoFile)
	if err != nil {
		return st, fmt.Errorf("pull package %s: %w", req.ID, err)
	}
	if req.Info != nil && string(info) != string(req.Info) {
		return st, errkind.New(errkind.Invalid, "pull package %s: the peer serves another info file than the zone's record describes", req.ID)
	}

	local := r.digestIndex()
	var (
		mu     sync.Mutex
		firstE error
		next   atomic.Int64
		wg     sync.WaitGroup
		done   = req.Done
	)
	if done == nil {
		done = new(atomic.Int64)
	}
	done.Store(0)
	fail := func(err error) {
		mu.Lock()
		if firstE == nil {
			firstE = err
		}
		mu.Unlock()
	}
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return firstE != nil }
	for range min(pullWorkers, max(1, len(m.Fragments))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed() && ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(m.Fragments) {
					return
				}
				fr := m.Fragments[i]
				res, err := r.pullFragment(ctx, req, dir, fr, local, done)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				st.Received += res.received
				switch {
				case res.reused:
					st.Reused++
				case res.kept:
				default:
					st.Fetched++
				}
				if res.resumed {
					st.Resumed++
				}
				if res.refetched {
					st.Refetched++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstE != nil {
		return st, fmt.Errorf("pull package %s: %w", req.ID, firstE)
	}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("pull package %s: %w", req.ID, err)
	}
	for name, data := range map[string][]byte{InfoFile: info, ManifestFile: mj} {
		p := filepath.Join(dir, name)
		os.Remove(p)
		if err := writeSynced(p, data); err != nil {
			return st, fmt.Errorf("pull package %s: %w", req.ID, err)
		}
	}
	names := make([]string, len(m.Fragments))
	for i, f := range m.Fragments {
		names[i] = f.Name
	}
	if err := syncFiles(dir, names); err != nil {
		return st, fmt.Errorf("pull package %s: %w", req.ID, err)
	}
	atomicfile.SyncDir(dir)
	if err := r.place(req.ID, dir); err != nil {
		return st, fmt.Errorf("pull package %s: %w", req.ID, err)
	}
	return st, nil
}

// place puts the complete pull directory under the package's name.
func (r *Repo) place(id, dir string) error {
	final := r.PackageDir(id)
	if !r.Exists(id) {
		if err := os.Rename(dir, final); err != nil {
			return err
		}
		atomicfile.SyncDir(r.dir)
		return nil
	}
	// An older copy is served until the very moment the new one is.
	if err := exchange(dir, final); err != nil {
		return err
	}
	atomicfile.SyncDir(r.dir)
	aside := filepath.Join(r.dir, stagingMark+"rm-"+id+"-"+randomSuffix())
	if err := os.Rename(dir, aside); err != nil {
		return err
	}
	return os.RemoveAll(aside)
}

func checkManifest(m *Manifest, req PullRequest) error {
	if m.ID != req.ID || m.SHA256 != req.SHA256 || m.MD5 != req.MD5 || m.Size != req.Size || len(m.Fragments) != req.Frags {
		return errkind.New(errkind.Invalid, "it does not describe the package the zone records (id %s, %d bytes, %d fragments, SHA-256 %s)", req.ID, req.Size, req.Frags, req.SHA256)
	}
	var total int64
	for i, f := range m.Fragments {
		if f.Name != FragmentName(req.ID, i+1) || f.Size <= 0 || f.Size > req.Size || (m.FragmentSize > 0 && f.Size > m.FragmentSize) || !isLowerHex(f.SHA256, 64) {
			return errkind.New(errkind.Invalid, "fragment %d is described wrongly (%q, %d bytes)", i+1, f.Name, f.Size)
		}
		total += f.Size
	}
	if total != m.Size {
		return errkind.New(errkind.Invalid, "its fragments add up to %d bytes, not %d", total, m.Size)
	}
	return nil
}

// digestIndex maps the SHA-256 of every fragment of the local packages
// to a file holding it.
func (r *Repo) digestIndex() map[string]string {
	out := map[string]string{}
	ids, _ := r.IDs()
	for _, id := range ids {
		m, err := r.Manifest(id)
		if err != nil {
			continue
		}
		for _, f := range m.Fragments {
			if _, ok := out[f.SHA256]; !ok {
				out[f.SHA256] = filepath.Join(r.PackageDir(id), f.Name)
			}
		}
	}
	return out
}

type fragResult struct {
	received              int64
	reused, kept, resumed bool
	refetched             bool
}

func (r *Repo) pullFragment(ctx context.Context, req PullRequest, dir string, fr Fragment, local map[string]string, done *atomic.Int64) (fragResult, error) {
	var res fragResult
	dst := filepath.Join(dir, fr.Name)
	// Left by an earlier pass: it counts only once it proves itself.
	if fi, err := os.Stat(dst); err == nil {
		if fi.Size() == fr.Size && fileDigest(dst) == fr.SHA256 {
			res.kept = true
			done.Add(fr.Size)
			return res, nil
		}
		os.Remove(dst)
	}
	if src, ok := local[fr.SHA256]; ok {
		if err := linkOrCopy(src, dst, fr); err == nil {
			res.reused = true
			done.Add(fr.Size)
			return res, nil
		}
	}
	url := req.Base + "/" + req.ID + "/" + fr.Name
	for attempt := 0; ; attempt++ {
		n, resumed, err := FetchFile(ctx, req.Client, url, dst, fr.Size, fr.SHA256, done)
		res.received += n
		res.resumed = res.resumed || resumed
		if errors.Is(err, ErrDigest) && attempt == 0 {
			res.refetched = true
			continue
		}
		return res, err
	}
}

func linkOrCopy(src, dst string, fr Fragment) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst+".part", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != fr.Size || hex.EncodeToString(h.Sum(nil)) != fr.SHA256 {
		os.Remove(dst + ".part")
		return fmt.Errorf("copy %s: %v", src, cmpErr(err, ErrDigest))
	}
	return os.Rename(dst+".part", dst)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// pullBlock is the size and file-offset alignment of FetchFile's writes.
const pullBlock = 1 << 20

// FetchFile makes dst a copy of the size bytes at url whose SHA-256 is
// sum (hex). The bytes gather in dst.part: one left by a cut transfer is
// continued with a Range request (its bytes are hashed, not fetched
// again), and dst appears, by rename, only once size and digest match; a
// damaged copy is removed and ErrDigest returned. done (optional) counts
// the bytes in place as they grow. The rename is not synced: the caller
// syncs what it placed in one go.
func FetchFile(ctx context.Context, c *http.Client, url, dst string, size int64, sum string, done *atomic.Int64) (received int64, resumed bool, err error) {
	part := dst + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, false, err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	h := sha256.New()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, false, err
	}
	if off > size {
		if err := f.Truncate(0); err != nil {
			return 0, false, err
		}
		off = 0
	}
	if off > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, off)); err != nil {
			return 0, false, err
		}
		resumed = true
	}
	if done != nil {
		done.Add(off)
	}
	if off < size {
		// A peer that stops sending without closing would hold the pull
		// for ever: nothing for stallTimeout ends the transfer (the
		// partial file stays).
		tctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		stall := time.AfterFunc(stallTimeout, func() { cancel(errStalled) })
		defer stall.Stop()
		rq, err := http.NewRequestWithContext(tctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, resumed, err
		}
		if off > 0 {
			rq.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
		}
		resp, err := c.Do(rq)
		if err != nil {
			return 0, resumed, errkind.New(errkind.Unavailable, "%s: %v", url, unwrapURLError(err))
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && off > 0 && strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(off, 10)+"-"):
		case resp.StatusCode == http.StatusOK:
			// The peer ignored the range: start over.
			if off > 0 {
				if done != nil {
					done.Add(-off)
				}
				if err := f.Truncate(0); err != nil {
					return 0, resumed, err
				}
				h.Reset()
				off, resumed = 0, false
			}
		default:
			return 0, resumed, errkind.New(errkind.Unavailable, "%s: %s", url, resp.Status)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return 0, resumed, err
		}
		// Whole blocks ending on 1 MiB boundaries of the file: a TLS read
		// gives one 16 kB record at a time, and the kernel sizes the page
		// cache's folios by the write, so 1 MiB writes leave the fragment in
		// large folios, which the content port's sendfile serves for about
		// two thirds of the CPU per byte of small ones (scripts/bench).
		buf := make([]byte, pullBlock)
		want := size - off
		for received < want {
			n, rerr := io.ReadFull(resp.Body, buf[:min(pullBlock-(off+received)%pullBlock, want-received)])
			if rerr == io.ErrUnexpectedEOF {
				rerr = io.EOF
			}
			stall.Reset(stallTimeout)
			if n > 0 {
				if _, err := f.Write(buf[:n]); err != nil {
					return received, resumed, fmt.Errorf("write %s: %w", part, err)
				}
				h.Write(buf[:n])
				received += int64(n)
				if done != nil {
					done.Add(int64(n))
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				// The partial file stays for the next attempt to continue.
				if c := context.Cause(tctx); c != nil && ctx.Err() == nil {
					rerr = c
				}
				return received, resumed, errkind.New(errkind.Unavailable, "%s: cut after %d of %d bytes: %v", url, off+received, size, rerr)
			}
		}
		if received < want {
			return received, resumed, errkind.New(errkind.Unavailable, "%s: cut after %d of %d bytes", url, off+received, size)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		f.Close()
		f = nil
		os.Remove(part)
		if done != nil {
			done.Add(-size)
		}
		return received, resumed, fmt.Errorf("%s: %w (got %s, the manifest says %s): discarded", url, ErrDigest, got, sum)
	}
	startWriteback(f)
	err = f.Close()
	f = nil
	if err != nil {
		return received, resumed, fmt.Errorf("write %s: %w", part, err)
	}
	return received, resumed, os.Rename(part, dst)
}

func fetchSmall(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	rq, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(rq)
	if err != nil {
		return nil, errkind.New(errkind.Unavailable, "%s: %v", url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errkind.New(errkind.NotFound, "%s: the peer does not hold it", url)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errkind.New(errkind.Unavailable, "%s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return nil, errkind.New(errkind.Unavailable, "%s: %v", url, err)
	}
	if len(data) > maxManifest {
		return nil, errkind.New(errkind.Invalid, "%s: larger than %d bytes", url, maxManifest)
	}
	return data, nil
}

func unwrapURLError(err error) error {
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		if inner := uerr.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

func fileDigest(path string) string {
	sum, _, _ := FileSHA256(context.Background(), path)
	return sum
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Pulls lists the packages with an unfinished pull.
func (r *Repo) Pulls() ([]string, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("content repository: %w", err)
	}
	var out []string
	for _, e := range entries {
		if id, ok := strings.CutPrefix(e.Name(), pullMark); ok && e.IsDir() && ValidID(id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// DropPull removes what an unfinished pull of package id holds.
func (r *Repo) DropPull(id string) error {
	if !ValidID(id) {
		return nil
	}
	return os.RemoveAll(filepath.Join(r.dir, pullMark+id))
}
