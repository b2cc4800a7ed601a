package satellite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"zonekit/internal/content"
)

// origin is a parent: a content port serving packages with Range, that
// counts the bytes it sends and can cut a response half way.
type origin struct {
	mu        sync.Mutex
	files     map[string][]byte // "ID/ID-n"
	manifests map[string][]byte
	sent      int64
	ranges    []string
	cutAfter  int // >0: the next response stops after this many bytes
}

func newOrigin() *origin { return &origin{files: map[string][]byte{}, manifests: map[string][]byte{}} }

func (o *origin) add(id string, frags ...[]byte) {
	m := content.Manifest{ID: id, Name: "p" + id}
	for i, f := range frags {
		name := fmt.Sprintf("%s-%d", id, i+1)
		sum := sha256.Sum256(f)
		m.Fragments = append(m.Fragments, content.Fragment{Name: name, Size: int64(len(f)), SHA256: hex.EncodeToString(sum[:])})
		o.files[id+"/"+name] = f
	}
	o.manifests[id], _ = json.Marshal(m)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	data, ok := o.files[strings.TrimPrefix(r.URL.Path, "/content/")]
	cut := o.cutAfter
	o.cutAfter = 0
	o.ranges = append(o.ranges, r.Header.Get("Range"))
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	cw := &countingWriter{ResponseWriter: w, o: o, limit: cut}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(data))
	if cut > 0 {
		// Drop the connection mid-body, as a failing WAN link would.
		panic(http.ErrAbortHandler)
	}
}

type countingWriter struct {
	http.ResponseWriter
	o     *origin
	limit int
	n     int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.limit > 0 && c.n+len(p) > c.limit {
		p = p[:c.limit-c.n]
	}
	c.n += len(p)
	c.o.mu.Lock()
	c.o.sent += int64(len(p))
	c.o.mu.Unlock()
	return c.ResponseWriter.Write(p)
}

func (o *origin) source(ctx context.Context, id string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m, ok := o.manifests[id]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("package %s: 404", id)
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestServesWhileParentStopped(t *testing.T) {
	o := newOrigin()
	o.add("100", fill(5000, 'a'), fill(300, 'b'))
	parent := httptest.NewServer(o)
	c := &Cache{Dir: t.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source}
	sat := httptest.NewServer(c.Handler())
	defer sat.Close()
	if st, b := get(t, sat.URL+"/content/100/100-1"); st != 200 || !bytes.Equal(b, fill(5000, 'a')) {
		t.Fatalf("first get: %d %d bytes", st, len(b))
	}
	parent.Close()
	o.manifests = nil // the zone is gone too
	if st, b := get(t, sat.URL+"/content/100/100-1"); st != 200 || len(b) != 5000 {
		t.Fatalf("with the parent stopped: %d", st)
	}
	if st, _ := get(t, sat.URL+"/content/100/100-2"); st != http.StatusBadGateway {
		t.Errorf("an uncached fragment with the parent stopped: %d, want 502", st)
	}
	for _, p := range []string{"/content/100/100-9", "/content/100/info", "/content/abc/abc-1", "/content/100/../x", "/other"} {
		if st, _ := get(t, sat.URL+p); st != 404 {
			t.Errorf("%s: %d, want 404", p, st)
		}
	}
}

func TestResumesCutTransfer(t *testing.T) {
	o := newOrigin()
	frag := make([]byte, 200_000)
	for i := range frag {
		frag[i] = byte(i * 7)
	}
	o.add("200", frag)
	parent := httptest.NewServer(o)
	defer parent.Close()
	c := &Cache{Dir: t.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source}
	o.cutAfter = 120_000
	if _, err := c.Fragment(context.Background(), "200", "200-1"); err == nil {
		t.Fatal("a cut transfer succeeded")
	}
	part := c.casPath(sha(frag)) + ".part"
	fi, err := os.Stat(part)
	if err != nil || fi.Size() == 0 || fi.Size() > 120_000 {
		t.Fatalf("part after the cut: %v %v", fi, err)
	}
	kept := fi.Size()
	path, err := c.Fragment(context.Background(), "200", "200-1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, frag) {
		t.Fatal("resumed fragment differs")
	}
	if want := fmt.Sprintf("bytes=%d-", kept); o.ranges[len(o.ranges)-1] != want {
		t.Errorf("second request Range %q, want %q", o.ranges[len(o.ranges)-1], want)
	}
	if o.sent > 200_000+1000 {
		t.Errorf("sent %d bytes for a 200000-byte fragment cut once", o.sent)
	}
}

func TestOnlyChangedFragmentsTravel(t *testing.T) {
	o := newOrigin()
	same := fill(4096, 's')
	o.add("300", same, fill(4096, 'x'))
	o.add("301", same, fill(4096, 'y')) // a new version: first fragment unchanged
	parent := httptest.NewServer(o)
	defer parent.Close()
	c := &Cache{Dir: t.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source}
	for _, f := range []string{"300/300-1", "300/300-2"} {
		id, name, _ := strings.Cut(f, "/")
		if _, err := c.Fragment(context.Background(), id, name); err != nil {
			t.Fatal(err)
		}
	}
	before := o.sent
	for _, name := range []string{"301-1", "301-2"} {
		if _, err := c.Fragment(context.Background(), "301", name); err != nil {
			t.Fatal(err)
		}
	}
	if d := o.sent - before; d != 4096 {
		t.Errorf("the new version moved %d bytes, want 4096 (the changed fragment only)", d)
	}
}

func TestRefusesBadFragment(t *testing.T) {
	o := newOrigin()
	o.add("400", fill(1000, 'a'))
	o.files["400/400-1"] = fill(1000, 'z') // the parent's copy is damaged
	parent := httptest.NewServer(o)
	defer parent.Close()
	c := &Cache{Dir: t.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source}
	if _, err := c.Fragment(context.Background(), "400", "400-1"); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("damaged fragment: %v", err)
	}
	if _, err := os.Stat(c.casPath(sha(fill(1000, 'a'))) + ".part"); !os.IsNotExist(err) {
		t.Error("the damaged part was kept")
	}
}

// A satellite pulls from another satellite: tiers.
func TestTiers(t *testing.T) {
	o := newOrigin()
	o.add("500", fill(3000, 't'))
	parent := httptest.NewServer(o)
	upper := &Cache{Dir: t.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source}
	upperSrv := httptest.NewServer(upper.Handler())
	defer upperSrv.Close()
	lower := &Cache{Dir: t.TempDir(), Parents: []string{upperSrv.URL + "/content"}, Manifests: o.source}
	if _, err := lower.Fragment(context.Background(), "500", "500-1"); err != nil {
		t.Fatal(err)
	}
	parent.Close()
	lower2 := &Cache{Dir: t.TempDir(), Parents: []string{upperSrv.URL + "/content"}, Manifests: o.source}
	if _, err := lower2.Fragment(context.Background(), "500", "500-1"); err != nil {
		t.Fatalf("from the upper satellite with the zone's content port stopped: %v", err)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeRecorder records the file offset at which each write ends.
type writeRecorder struct {
	bytes.Buffer
	off  int64
	ends []int64
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.off += int64(len(p))
	w.ends = append(w.ends, w.off)
	return w.Buffer.Write(p)
}

// chunkReader returns at most n bytes a read, as a socket does, then err.
type chunkReader struct {
	data []byte
	n    int
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n, len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

// A pulled fragment is written in blocks ending on 1 MiB boundaries of
// the file (large page-cache folios, cheaper to serve), continued parts
// included; bytes read before an error are written, and a body cut short
// is an error, not an end.
func TestWriteBlocks(t *testing.T) {
	data := make([]byte, 3*writeBlock+12345)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for _, off := range []int64{0, 300_000, writeBlock} {
		w := &writeRecorder{off: off}
		n, err := writeBlocks(w, &chunkReader{data: data, n: 16 << 10, err: io.EOF}, off)
		if err != nil || n != int64(len(data)) || !bytes.Equal(w.Bytes(), data) {
			t.Fatalf("off %d: %d bytes, %v; content equal %v", off, n, err, bytes.Equal(w.Bytes(), data))
		}
		for i, end := range w.ends[:len(w.ends)-1] {
			if end%writeBlock != 0 {
				t.Fatalf("off %d: write %d ends at %d, not on a block boundary (%v)", off, i, end, w.ends)
			}
		}
		if want := (off+int64(len(data))+writeBlock-1)/writeBlock - off/writeBlock; int64(len(w.ends)) != want {
			t.Errorf("off %d: %d writes, want %d", off, len(w.ends), want)
		}
	}
	// With every block buffer held by other pulls: smaller writes, none
	// across a block boundary.
	var puts []func()
	for range maxBlocks {
		_, put := getBlock()
		puts = append(puts, put)
	}
	w := &writeRecorder{off: 300_000}
	n, err := writeBlocks(w, &chunkReader{data: data, n: 16 << 10, err: io.EOF}, 300_000)
	for _, put := range puts {
		put()
	}
	if err != nil || n != int64(len(data)) || !bytes.Equal(w.Bytes(), data) {
		t.Fatalf("without a block: %d bytes, %v", n, err)
	}
	start := int64(300_000)
	for _, end := range w.ends {
		if end-start > smallBlock || start/writeBlock != (end-1)/writeBlock {
			t.Fatalf("without a block: a write from %d to %d", start, end)
		}
		start = end
	}

	w = &writeRecorder{}
	n, err = writeBlocks(w, &chunkReader{data: data[:100_000], n: 16 << 10, err: io.ErrUnexpectedEOF}, 0)
	if err != io.ErrUnexpectedEOF || n != 100_000 || !bytes.Equal(w.Bytes(), data[:100_000]) {
		t.Fatalf("cut body: %d bytes, %v", n, err)
	}
}
