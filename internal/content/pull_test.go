package content

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// storedTarGz packs install.sh and a data file into an uncompressed
// tar.gz, so that a change near the end of data leaves the archive's
// leading bytes (and so its leading fragments) as they were.
func storedTarGz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.NoCompression)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		body []byte
	}{{"install.sh", []byte("#!/bin/sh\necho ok\n")}, {"data.bin", data}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func payload(n int, seed byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(i*7) ^ seed
	}
	return out
}

// peer serves a repository as a zone server does, with faults on request.
type peer struct {
	repo *Repo
	srv  *httptest.Server

	mu       sync.Mutex
	requests map[string]int // file -> GETs
	ranges   map[string]string
	cut      map[string]int // file -> bytes sent before the connection drops (once)
	corrupt  map[string]int // file -> times it is sent damaged
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	repo, err := NewRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{repo: repo, requests: map[string]int{}, ranges: map[string]string{}, cut: map[string]int{}, corrupt: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /content/{id}/{file}", func(w http.ResponseWriter, r *http.Request) {
		file := r.PathValue("file")
		path, ok := repo.ServedFile(r.PathValue("id"), file, false)
		data, err := os.ReadFile(path)
		if !ok || err != nil {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		p.requests[file]++
		p.ranges[file] = r.Header.Get("Range")
		cut, doCut := p.cut[file]
		delete(p.cut, file)
		bad := p.corrupt[file] > 0
		if bad {
			p.corrupt[file]--
		}
		p.mu.Unlock()
		if bad {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0xff
		}
		if doCut {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:cut])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "", time.Unix(1e9, 0), bytes.NewReader(data))
	})
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (p *peer) build(t *testing.T, id string, archive []byte) PullRequest {
	t.Helper()
	s := spec(ActionLaunch, "install.sh")
	m, err := p.repo.Build(id, s, bytes.NewReader(archive), time.Unix(1.8e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	s.Normalize()
	return PullRequest{ID: id, Size: m.Size, SHA256: m.SHA256, MD5: m.MD5, Frags: len(m.Fragments),
		Info: InfoFor(id, s, m.MD5, len(m.Fragments)).Marshal(), Base: p.srv.URL + "/content", Client: p.srv.Client()}
}

func (p *peer) gets(file string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[file]
}

func sameDir(t *testing.T, a, b string) {
	t.Helper()
	ents, err := os.ReadDir(a)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadDir(b)
	if len(got) != len(ents) {
		t.Fatalf("%s has %d files, %s %d", b, len(got), a, len(ents))
	}
	for _, e := range ents {
		x, _ := os.ReadFile(filepath.Join(a, e.Name()))
		y, err := os.ReadFile(filepath.Join(b, e.Name()))
		if err != nil || !bytes.Equal(x, y) {
			t.Fatalf("%s differs from the peer's (%v)", e.Name(), err)
		}
	}
}

func localRepo(t *testing.T) *Repo {
	t.Helper()
	r, err := NewRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPullWholePackage(t *testing.T) {
	p := newPeer(t)
	req := p.build(t, "1800000001", storedTarGz(t, payload(2000, 1)))
	r := localRepo(t)
	st, err := r.Pull(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != req.Frags || st.Received != req.Size || st.Reused != 0 {
		t.Fatalf("stats %+v, want %d fragments and %d bytes fetched", st, req.Frags, req.Size)
	}
	sameDir(t, p.repo.PackageDir(req.ID), r.PackageDir(req.ID))
	if pulls, _ := r.Pulls(); len(pulls) != 0 {
		t.Fatalf("pull directories left: %v", pulls)
	}
	// Complete: a second pull asks the peer nothing.
	before := p.gets(ManifestFile)
	st, err = r.Pull(context.Background(), req)
	if err != nil || !st.Present || p.gets(ManifestFile) != before {
		t.Fatalf("second pull: %+v %v", st, err)
	}
}

func TestPullResumesCutFragment(t *testing.T) {
	p := newPeer(t)
	req := p.build(t, "1800000002", storedTarGz(t, payload(1500, 2)))
	frag := FragmentName(req.ID, 3)
	p.cut[frag] = 37
	r := localRepo(t)
	if _, err := r.Pull(context.Background(), req); err == nil || !strings.Contains(err.Error(), "cut after 37") {
		t.Fatalf("cut transfer: %v", err)
	}
	if r.Exists(req.ID) {
		t.Fatal("a half-pulled package is visible")
	}
	part := filepath.Join(r.Dir(), pullMark+req.ID, frag+".part")
	if fi, err := os.Stat(part); err != nil || fi.Size() != 37 {
		t.Fatalf("partial fragment: %v", err)
	}
	st, err := r.Pull(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if st.Resumed != 1 || p.ranges[frag] != "bytes=37-" {
		t.Fatalf("resume: %+v, range %q", st, p.ranges[frag])
	}
	// Fragments fetched whole in the first pass were kept, not fetched again.
	if p.gets(FragmentName(req.ID, 1)) != 1 {
		t.Fatalf("fragment 1 fetched %d times", p.gets(FragmentName(req.ID, 1)))
	}
	sameDir(t, p.repo.PackageDir(req.ID), r.PackageDir(req.ID))
}

func TestPullRefusesDamagedFragment(t *testing.T) {
	p := newPeer(t)
	req := p.build(t, "1800000003", storedTarGz(t, payload(1500, 3)))
	frag := FragmentName(req.ID, 2)
	p.corrupt[frag] = 1
	r := localRepo(t)
	st, err := r.Pull(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if st.Refetched != 1 || p.gets(frag) != 2 {
		t.Fatalf("damaged once: %+v, %d requests", st, p.gets(frag))
	}
	sameDir(t, p.repo.PackageDir(req.ID), r.PackageDir(req.ID))

	// Damaged every time: the pull fails and nothing is placed.
	req2 := p.build(t, "1800000004", storedTarGz(t, payload(1500, 4)))
	// (fragment 20 is in the data, unlike the tar headers of the first
	// fragments, which the first package shares and lends.)
	p.corrupt[FragmentName(req2.ID, 20)] = 10
	_, err = r.Pull(context.Background(), req2)
	if !errors.Is(err, ErrDigest) || r.Exists(req2.ID) {
		t.Fatalf("damaged always: %v, exists %v", err, r.Exists(req2.ID))
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), pullMark+req2.ID, FragmentName(req2.ID, 20))); err == nil {
		t.Fatal("the damaged fragment was kept")
	}
}

func TestPullRefusesForeignManifest(t *testing.T) {
	p := newPeer(t)
	req := p.build(t, "1800000005", storedTarGz(t, payload(500, 5)))
	req.SHA256 = strings.Repeat("0", 64)
	r := localRepo(t)
	if _, err := r.Pull(context.Background(), req); err == nil || !strings.Contains(err.Error(), "does not describe") {
		t.Fatalf("foreign manifest: %v", err)
	}
	req = p.build(t, "1800000006", storedTarGz(t, payload(500, 6)))
	req.Info = []byte("<DOWNLOAD/>")
	if _, err := r.Pull(context.Background(), req); err == nil || !strings.Contains(err.Error(), "info file") {
		t.Fatalf("other info file: %v", err)
	}
}

func TestPullOnlyChangedFragmentsTravel(t *testing.T) {
	data := payload(4000, 7)
	p := newPeer(t)
	old := p.build(t, "1800000010", storedTarGz(t, data))
	r := localRepo(t)
	if _, err := r.Pull(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	// A new version of the package: the last bytes of its data changed.
	changed := bytes.Clone(data)
	copy(changed[len(changed)-10:], "new ending")
	next := p.build(t, "1800000011", storedTarGz(t, changed))
	st, err := r.Pull(context.Background(), next)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reused == 0 || st.Fetched+st.Reused != next.Frags || st.Received >= next.Size/4 {
		t.Fatalf("new version: %+v of %d fragments, %d bytes", st, next.Frags, next.Size)
	}
	sameDir(t, p.repo.PackageDir(next.ID), r.PackageDir(next.ID))

	// The same id changed in place (an older copy here): swapped whole,
	// only the differing fragments fetched.
	copy(changed[len(changed)-10:], "3rd ending")
	p2 := newPeer(t)
	same := p2.build(t, "1800000010", storedTarGz(t, changed))
	st, err = r.Pull(context.Background(), same)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched == 0 || st.Fetched >= same.Frags/4 {
		t.Fatalf("changed in place: %+v of %d fragments", st, same.Frags)
	}
	sameDir(t, p2.repo.PackageDir(same.ID), r.PackageDir(same.ID))
	ents, _ := os.ReadDir(r.Dir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("left behind: %s", e.Name())
		}
	}
}

func TestFetchFileRestartsWhenRangeIgnored(t *testing.T) {
	body := payload(1000, 9)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	dst := filepath.Join(t.TempDir(), "f")
	os.WriteFile(dst+".part", body[:100], 0o644)
	sum := sha256hex(body)
	n, _, err := FetchFile(context.Background(), srv.Client(), srv.URL, dst, int64(len(body)), sum, nil)
	if err != nil || n != int64(len(body)) {
		t.Fatalf("fetch: %d %v", n, err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Fatal("wrong content")
	}
}

// FuzzPeerManifest feeds checkManifest what a peer might send: whatever
// it accepts describes the package exactly (names, sizes adding up,
// digests well-formed).
func FuzzPeerManifest(f *testing.F) {
	f.Add([]byte(`{"id":"100","size":150,"fragment_size":100,"sha256":"","fragments":[{"name":"100-1","size":100,"sha256":"` + strings.Repeat("a", 64) + `"},{"name":"100-2","size":50,"sha256":"` + strings.Repeat("b", 64) + `"}]}`))
	f.Add([]byte(`{"id":"100","size":-1,"fragments":[{"name":"100-1","size":-1}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Manifest
		if json.Unmarshal(data, &m) != nil {
			return
		}
		req := PullRequest{ID: m.ID, Size: m.Size, SHA256: m.SHA256, MD5: m.MD5, Frags: len(m.Fragments)}
		if checkManifest(&m, req) != nil {
			return
		}
		var total int64
		for i, fr := range m.Fragments {
			if fr.Name != FragmentName(m.ID, i+1) || fr.Size <= 0 || len(fr.SHA256) != 64 {
				t.Fatalf("accepted fragment %d: %+v", i+1, fr)
			}
			total += fr.Size
		}
		if total != m.Size {
			t.Fatalf("accepted: fragments add up to %d, size %d", total, m.Size)
		}
	})
}

// A continued fetch of a file of several 1 MiB blocks, from an offset
// inside the first block (FetchFile's writes end on block boundaries of
// the file), assembles the file exactly.
func TestFetchFileContinuesAcrossBlocks(t *testing.T) {
	body := payload(2*pullBlock+pullBlock/2, 5)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	dst := filepath.Join(t.TempDir(), "f")
	os.WriteFile(dst+".part", body[:300_001], 0o644)
	n, resumed, err := FetchFile(context.Background(), srv.Client(), srv.URL, dst, int64(len(body)), sha256hex(body), nil)
	if err != nil || !resumed || n != int64(len(body)-300_001) {
		t.Fatalf("fetch: %d %v %v", n, resumed, err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Fatal("wrong content")
	}
}
