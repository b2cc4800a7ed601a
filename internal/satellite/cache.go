// Package satellite is the content satellite: a cache of package fragments
// for a site. It serves the content layout of docs/content-repo.md over
// plain HTTP (fragments only, as a zone server's content port does) and
// pulls what it lacks from its parent (the zone server's content port or
// another satellite), checking every fragment against the SHA-256 in the
// package's manifest, which it reads from the zone over HTTPS.
//
// Fragments are kept by digest (cas/SHA256), so a fragment shared by two
// packages, or unchanged between two versions of one, travels once; an
// interrupted pull is continued where it stopped (Range on the .part file).
package satellite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/content"
	"zonekit/internal/fileserve"
)

// ManifestSource fetches a package's manifest from the zone over a channel
// the satellite trusts (HTTPS verified against the zone CA).
type ManifestSource func(ctx context.Context, id string) ([]byte, error)

// Cache is a content satellite's store and its upstreams.
type Cache struct {
	Dir       string
	Parents   []string // base URLs of the parent's content, e.g. http://zone:8080/content, tried in order
	Manifests ManifestSource
	// Infos fetches a package's info file from the zone over HTTPS; set on
	// an authentication satellite, which serves info files to agents too.
	Infos ManifestSource
	HTTP  *http.Client
	Log   *slog.Logger

	mu        sync.Mutex
	inflight  map[string]*sync.Mutex // one pull per digest at a time
	manifests map[string]*content.Manifest
}

// isID reports whether s is a package id: a decimal number without
// leading zeros, at most 19 digits (it fits an int64).
func isID(s string) bool {
	if len(s) == 0 || len(s) > 19 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (c *Cache) casPath(sum string) string { return filepath.Join(c.Dir, "cas", sum) }
func (c *Cache) manifestPath(id string) string {
	return filepath.Join(c.Dir, "manifests", id+".json")
}
func (c *Cache) infoPath(id string) string { return filepath.Join(c.Dir, "infos", id) }

// Info returns a package's info file: the zone's, fresh (the info file
// says what agents run, so the zone's word wins), else the copy kept from
// the last time while the zone cannot be reached.
func (c *Cache) Info(ctx context.Context, id string) ([]byte, error) {
	if !isID(id) || c.Infos == nil {
		return nil, ErrNotFound
	}
	data, err := c.Infos(ctx, id)
	if err != nil {
		if kept, kerr := os.ReadFile(c.infoPath(id)); kerr == nil {
			c.log().Warn("info", "package", id, "err", err, "served", "the copy kept")
			return kept, nil
		}
		return nil, fmt.Errorf("info of package %s: %w", id, err)
	}
	if _, err := content.ParseInfo(data); err != nil {
		return nil, fmt.Errorf("info of package %s: %w", id, err)
	}
	if kept, err := os.ReadFile(c.infoPath(id)); err != nil || !bytes.Equal(kept, data) {
		if err := os.MkdirAll(filepath.Dir(c.infoPath(id)), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(c.infoPath(id), data, 0o644); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// PrefetchResult counts what a prefetch round did.
type PrefetchResult struct {
	Packages int `json:"packages"`
	Pulled   int `json:"pulled"` // fragments fetched from a parent
	Held     int `json:"held"`   // fragments already here
	Failed   int `json:"failed"`
}

// Prefetch pulls every fragment of the packages ids that is not here yet,
// so that agents find the content even when the parents are down by then.
// A failed fragment is counted and retried at the next round.
func (c *Cache) Prefetch(ctx context.Context, ids []string) (PrefetchResult, error) {
	var res PrefetchResult
	var errs []error
	for _, id := range ids {
		m, err := c.Manifest(ctx, id)
		if err != nil {
			res.Failed++
			errs = append(errs, err)
			continue
		}
		res.Packages++
		for _, f := range m.Fragments {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if _, err := os.Stat(c.casPath(f.SHA256)); err == nil {
				res.Held++
				continue
			}
			if _, err := c.Fragment(ctx, id, f.Name); err != nil {
				res.Failed++
				errs = append(errs, err)
				continue
			}
			res.Pulled++
		}
	}
	return res, errors.Join(errs...)
}

func (c *Cache) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// Manifest returns the package's manifest: from memory, else the copy
// kept on disk, else the zone's (then kept for when the zone cannot be
// reached). A package's manifest never changes under its id.
func (c *Cache) Manifest(ctx context.Context, id string) (*content.Manifest, error) {
	if !isID(id) {
		return nil, ErrNotFound
	}
	c.mu.Lock()
	m := c.manifests[id]
	c.mu.Unlock()
	if m != nil {
		return m, nil
	}
	fetched := false
	data, err := os.ReadFile(c.manifestPath(id))
	if err != nil {
		if data, err = c.Manifests(ctx, id); err != nil {
			return nil, fmt.Errorf("manifest of package %s: %w", id, err)
		}
		fetched = true
	}
	m = new(content.Manifest)
	if err := json.Unmarshal(data, m); err != nil || m.ID != id {
		return nil, fmt.Errorf("manifest of package %s: not a manifest for it", id)
	}
	for _, f := range m.Fragments {
		if len(f.SHA256) != 64 || strings.Trim(f.SHA256, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("manifest of package %s: bad digest for %s", id, f.Name)
		}
	}
	if fetched {
		if err := os.MkdirAll(filepath.Dir(c.manifestPath(id)), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(c.manifestPath(id), data, 0o644); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	if c.manifests == nil {
		c.manifests = map[string]*content.Manifest{}
	}
	c.manifests[id] = m
	c.mu.Unlock()
	return m, nil
}

// ErrNotFound says a package or file does not exist (a source returns it
// for the zone's 404; the satellite answers 404 in turn).
var ErrNotFound = errors.New("not found")

// Fragment returns the path of a verified copy of fragment name of package
// id, pulling it from a parent when it is not here yet.
func (c *Cache) Fragment(ctx context.Context, id, name string) (string, error) {
	m, err := c.Manifest(ctx, id)
	if err != nil {
		return "", err
	}
	var frag *content.Fragment
	for i := range m.Fragments {
		if m.Fragments[i].Name == name {
			frag = &m.Fragments[i]
		}
	}
	if frag == nil {
		return "", ErrNotFound
	}
	path := c.casPath(frag.SHA256)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	lock := c.lockFor(frag.SHA256)
	lock.Lock()
	defer lock.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	var errs []error
	for _, parent := range c.Parents {
		err := c.pull(ctx, strings.TrimRight(parent, "/")+"/"+id+"/"+name, *frag)
		if err == nil {
			c.log().Info("pulled", "fragment", name, "parent", parent)
			return path, nil
		}
		errs = append(errs, err)
		c.log().Warn("pull", "fragment", name, "parent", parent, "err", err)
	}
	if len(errs) == 0 {
		return "", errors.New("no parent to pull from")
	}
	return "", errors.Join(errs...)
}

func (c *Cache) lockFor(sum string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight == nil {
		c.inflight = map[string]*sync.Mutex{}
	}
	l := c.inflight[sum]
	if l == nil {
		l = &sync.Mutex{}
		c.inflight[sum] = l
	}
	return l
}

// pull fetches url into cas/SUM.part, continuing a part left by an
// interrupted pull (the reference's checkpoint restart), and moves it into
// place only when its SHA-256 matches.
func (c *Cache) pull(ctx context.Context, url string, f content.Fragment) error {
	final := c.casPath(f.SHA256)
	part := final + ".part"
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	have, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > f.Size {
		if err := out.Truncate(0); err != nil {
			return err
		}
		have, _ = out.Seek(0, io.SeekStart)
	}
	if have < f.Size {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if have > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		}
		resp, err := c.client().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && have > 0:
		case resp.StatusCode == http.StatusOK:
			// The parent ignored the range: start over.
			if err := out.Truncate(0); err != nil {
				return err
			}
			if _, err := out.Seek(0, io.SeekStart); err != nil {
				return err
			}
		default:
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if _, err := writeBlocks(out, io.LimitReader(resp.Body, f.Size), have); err != nil {
			return fmt.Errorf("GET %s: %w (the %s kept so far is continued next time)", url, err, filepath.Base(part))
		}
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, out)
	if err != nil {
		return err
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		out.Close()
		os.Remove(part)
		return fmt.Errorf("GET %s: the fragment does not match its SHA-256 (fetched again next time)", url)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return os.Rename(part, final)
}

// writeBlock is the size, and the file-offset alignment, of the writes
// of a pulled fragment.
const writeBlock = 1 << 20

// blocks holds the block buffers: at most maxBlocks pulls at a time write
// whole blocks (a cold satellite's many agents each missing a different
// fragment would otherwise hold a MiB each); the others write the same
// aligned blocks in pieces of smallBlock.
var blocks = make(chan []byte, maxBlocks)

const (
	maxBlocks  = 8
	smallBlock = 64 << 10
)

var blocksMade atomic.Int32

func getBlock() (buf []byte, put func()) {
	select {
	case b := <-blocks:
		return b, func() { blocks <- b }
	default:
	}
	if blocksMade.Add(1) <= maxBlocks {
		b := make([]byte, writeBlock)
		return b, func() { blocks <- b }
	}
	blocksMade.Add(-1)
	return make([]byte, smallBlock), func() {}
}

// writeBlocks copies r to out, whose offset is off, in writes that end on
// writeBlock boundaries of the file (the last one excepted; in smaller
// pieces when maxBlocks pulls already hold a block), and returns
// the bytes written; what was read before an error is written too, for
// the next pull to continue from. Why not io.Copy: the kernel sizes the
// page-cache folios a write creates by the write (ext4 on Linux 6.x), and
// sendfile serves the pages of large folios far cheaper. A fragment
// written in io.Copy's pieces (32 KiB at most, often less from a socket)
// cost the satellite 1.4x the CPU per byte served that the zone server
// spends on its fragments, written in 1 MiB blocks (scripts/bench).
func writeBlocks(out io.Writer, r io.Reader, off int64) (int64, error) {
	buf, put := getBlock()
	defer put()
	var n int64
	for {
		// Not io.ReadFull: it reports a body cut short (io.ErrUnexpectedEOF
		// from net/http) as it reports its own short read.
		k := min(writeBlock-int((off+n)%writeBlock), len(buf))
		m := 0
		var err error
		for m < k && err == nil {
			var i int
			i, err = r.Read(buf[m:k])
			m += i
		}
		if m > 0 {
			w, werr := out.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (c *Cache) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

// FragmentPattern is Handler's route of fragments, for the metrics of
// the fast path (FileServer), which answers most of them.
const FragmentPattern = "GET /content/{id}/{file}"

// FileServer serves what Handler serves on internal/fileserve's fast path
// (open files kept, header and body in one send), with Handler behind it
// for every request the fast path leaves.
func (c *Cache) FileServer() *fileserve.Server {
	return &fileserve.Server{
		Resolve:           c.resolve,
		Fallback:          c.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ShutdownTimeout:   10 * time.Second,
	}
}

// resolve maps /content/ID/ID-n to the verified copy of the fragment,
// pulling it on a miss; the answers are Handler's.
func (c *Cache) resolve(ctx context.Context, path string) (fileserve.Target, error) {
	rest, ok := strings.CutPrefix(path, "/content/")
	if !ok {
		return fileserve.Target{}, fileserve.ErrNotHandled
	}
	id, file, ok := strings.Cut(rest, "/")
	if !ok || !isID(id) || !strings.HasPrefix(file, id+"-") {
		return fileserve.Target{}, fileserve.ErrNotHandled
	}
	p, err := c.Fragment(ctx, id, file)
	if errors.Is(err, ErrNotFound) {
		return fileserve.Target{}, &fileserve.StatusError{Code: http.StatusNotFound, Text: "not found"}
	}
	if err != nil {
		c.log().Error("fragment", "package", id, "file", file, "err", err)
		return fileserve.Target{}, &fileserve.StatusError{Code: http.StatusBadGateway, Text: "upstream unavailable"}
	}
	return fileserve.Target{Path: p, ContentType: "application/octet-stream", CacheControl: "max-age=86400",
		ETag: `"` + filepath.Base(p)[:32] + `"`}, nil
}

// Handler serves GET /content/ID/ID-n from the cache, pulling on a miss
// (the plain-HTTP side: fragments only).
func (c *Cache) Handler() http.Handler { return c.handler(false) }

// SecureHandler serves over HTTPS what Handler serves and, beside each
// package's fragments, its info file and manifest: an authentication
// satellite is then an info location for the agents near it.
func (c *Cache) SecureHandler() http.Handler { return c.handler(true) }

func (c *Cache) handler(secure bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(FragmentPattern, func(w http.ResponseWriter, r *http.Request) {
		id, file := r.PathValue("id"), r.PathValue("file")
		if secure && (file == content.InfoFile || file == content.ManifestFile) {
			c.serveSmall(w, r, id, file)
			return
		}
		if !isID(id) || !strings.HasPrefix(file, id+"-") {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		path, err := c.Fragment(r.Context(), id, file)
		if errors.Is(err, ErrNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if err != nil {
			c.log().Error("fragment", "package", id, "file", file, "err", err)
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
			return
		}
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "max-age=86400")
		w.Header().Set("ETag", `"`+filepath.Base(path)[:32]+`"`)
		http.ServeContent(w, r, "", fi.ModTime(), f)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "not found", http.StatusNotFound) })
	return mux
}

// serveSmall serves a package's info file or manifest.
func (c *Cache) serveSmall(w http.ResponseWriter, r *http.Request, id, file string) {
	var data []byte
	var err error
	if file == content.InfoFile {
		data, err = c.Info(r.Context(), id)
	} else if _, err = c.Manifest(r.Context(), id); err == nil {
		data, err = os.ReadFile(c.manifestPath(id))
	}
	switch {
	case errors.Is(err, ErrNotFound) || errors.Is(err, os.ErrNotExist):
		http.Error(w, "not found", http.StatusNotFound)
		return
	case err != nil:
		c.log().Error(file, "package", id, "err", err)
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return
	}
	if file == content.ManifestFile {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "application/xml")
	}
	w.Write(data)
}
