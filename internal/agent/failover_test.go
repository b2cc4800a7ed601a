package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"zonekit/internal/content"
)

// fragServer serves fragments of package 42 from frags, recording the
// requests it got; fail, when set, answers instead.
type fragServer struct {
	*httptest.Server
	mu   sync.Mutex
	got  []string
	fail func(w http.ResponseWriter, r *http.Request) bool
}

func newFragServer(t *testing.T, frags [][]byte, fail func(w http.ResponseWriter, r *http.Request) bool) *fragServer {
	fs := &fragServer{fail: fail}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.got = append(fs.got, r.URL.Path+" "+r.Header.Get("Range"))
		fs.mu.Unlock()
		if fs.fail != nil && fs.fail(w, r) {
			return
		}
		for i, f := range frags {
			if r.URL.Path == "/content/42/"+content.FragmentName("42", i+1) {
				http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(f))
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fragServer) loc() string { return strings.TrimPrefix(fs.URL, "http://") + "/content" }

func (fs *fragServer) requests() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.got...)
}

func manifestOf(frags [][]byte) *content.Manifest {
	m := &content.Manifest{ID: "42"}
	for i, f := range frags {
		sum := sha256.Sum256(f)
		m.Fragments = append(m.Fragments, content.Fragment{Name: content.FragmentName("42", i+1), Size: int64(len(f)), SHA256: hex.EncodeToString(sum[:])})
	}
	return m
}

// deadLocation is a loopback port nothing listens on.
func deadLocation(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr + "/content"
}

func testEngine(t *testing.T) (*engine, *bytes.Buffer) {
	var log bytes.Buffer
	return &engine{a: New(t.TempDir()), log: &log, frags: &http.Client{}, inHand: map[string]int{}, fresh: map[string]int{}}, &log
}

// Locations are tried in order past a refused connection, a 5xx and a
// 404; the one that worked is asked first for the next fragment.
func TestFetchFragmentFailsOverInOrder(t *testing.T) {
	frags := [][]byte{bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 2000)}
	broken := newFragServer(t, frags, func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return true
	})
	empty := newFragServer(t, nil, nil)
	good := newFragServer(t, frags, nil)
	last := newFragServer(t, frags, nil)
	e, log := testEngine(t)
	p := &LocalPackage{ID: "42", Fragments: 2, Manifest: manifestOf(frags), PackLocation: last.loc(),
		PackLocations: []string{deadLocation(t), broken.loc(), empty.loc(), good.loc(), last.loc()}}
	for n := 1; n <= 2; n++ {
		if res, err := e.fetchFragment(context.Background(), p); res != "" || err != nil {
			t.Fatalf("fragment %d: %q %v\n%s", n, res, err, log)
		}
		p.Have++
	}
	if p.PackFrom != good.loc() {
		t.Errorf("remembered %q, want %q", p.PackFrom, good.loc())
	}
	if got := len(broken.requests()) + len(empty.requests()); got != 2 {
		t.Errorf("the failing locations were asked %d times, want once each (the second fragment goes where the first came from)", got)
	}
	if n := len(good.requests()); n != 2 {
		t.Errorf("the good location served %d requests, want 2", n)
	}
	if n := len(last.requests()); n != 0 {
		t.Errorf("the last location was asked %d times", n)
	}
	for i, f := range frags {
		got, _ := os.ReadFile(filepath.Join(e.a.packageDir("42"), content.FragmentName("42", i+1)))
		if !bytes.Equal(got, f) {
			t.Errorf("fragment %d differs", i+1)
		}
	}
	if !strings.Contains(log.String(), "trying "+broken.loc()) || !strings.Contains(log.String(), "fragments now from "+good.loc()) {
		t.Errorf("log:\n%s", log)
	}
}

// A transfer cut at one location is continued at the next with a Range
// from the partial file: the bytes already in are not fetched again.
func TestFetchFragmentResumesAtTheNextLocation(t *testing.T) {
	frag := bytes.Repeat([]byte("0123456789"), 1000)
	cut := newFragServer(t, nil, func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Length", "10000")
		w.Write(frag[:6000])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	rest := newFragServer(t, [][]byte{frag}, nil)
	e, log := testEngine(t)
	p := &LocalPackage{ID: "42", Fragments: 1, Manifest: manifestOf([][]byte{frag}), PackLocations: []string{cut.loc(), rest.loc()}}
	if res, err := e.fetchFragment(context.Background(), p); res != "" || err != nil {
		t.Fatalf("%q %v\n%s", res, err, log)
	}
	if got := rest.requests(); len(got) != 1 || got[0] != "/content/42/42-1 bytes=6000-" {
		t.Errorf("the second location got %q, want the rest from byte 6000", got)
	}
	got, _ := os.ReadFile(filepath.Join(e.a.packageDir("42"), "42-1"))
	if !bytes.Equal(got, frag) {
		t.Error("the fragment put together is not whole")
	}
	if !strings.Contains(log.String(), "resumed at byte 6000 from "+rest.loc()) {
		t.Errorf("log:\n%s", log)
	}
}

// Found nowhere and unreachable everywhere are retries; no list is the
// single location of an older zone.
func TestFetchFragmentOutcomes(t *testing.T) {
	frags := [][]byte{[]byte("hello")}
	empty1, empty2 := newFragServer(t, nil, nil), newFragServer(t, nil, nil)
	e, _ := testEngine(t)
	p := &LocalPackage{ID: "42", Fragments: 1, Manifest: manifestOf(frags), PackLocations: []string{empty1.loc(), empty2.loc()}}
	// A mirror may still be syncing: 404 everywhere is asked again later.
	if res, err := e.fetchFragment(context.Background(), p); res != "" || err == nil {
		t.Errorf("404 everywhere: %q %v, want a retry", res, err)
	}
	p.PackLocations = []string{deadLocation(t), empty1.loc()}
	if res, err := e.fetchFragment(context.Background(), p); res != "" || err == nil {
		t.Errorf("refused and 404: %q %v, want a retry", res, err)
	}
	old := newFragServer(t, frags, nil)
	p.PackLocations, p.PackLocation = nil, old.loc()
	if res, err := e.fetchFragment(context.Background(), p); res != "" || err != nil {
		t.Errorf("single location: %q %v", res, err)
	}
}

func TestCleanLocations(t *testing.T) {
	got := cleanLocations([]string{"sat:8080/content/", "", "http://x/content", "sat:8080/content", "a b/c", "zone:80/content"})
	if strings.Join(got, ",") != "sat:8080/content,zone:80/content" {
		t.Errorf("cleanLocations = %q", got)
	}
}

// The info file and manifest come from the first location that has them,
// both from the same one; only untrusted servers is a final failure.
func TestFetchInfoFailsOver(t *testing.T) {
	frags := [][]byte{[]byte("hello")}
	m := manifestOf(frags)
	info := content.Info{ID: "42", Priority: 5, Action: "STORE", Path: "/tmp/x", Proto: "HTTP", Frags: 1, Digest: strings.Repeat("a", 32)}
	m.MD5 = info.Digest
	var asked []string
	var mu sync.Mutex
	handler := func(name string, ok bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			asked = append(asked, name+" "+r.URL.Path)
			mu.Unlock()
			switch {
			case !ok:
				http.Error(w, "down", http.StatusServiceUnavailable)
			case r.URL.Path == "/content/42/info":
				w.Write(info.Marshal())
			case r.URL.Path == "/content/42/manifest.json":
				json.NewEncoder(w).Encode(m)
			default:
				http.NotFound(w, r)
			}
		})
	}
	down := httptest.NewTLSServer(handler("down", false))
	defer down.Close()
	up := httptest.NewTLSServer(handler("up", true))
	defer up.Close()
	e, log := testEngine(t)
	e.info = up.Client() // trusts httptest's certificate, which both serve
	loc := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") + "/content" }
	p := &LocalPackage{ID: "42", InfoLocations: []string{deadLocation(t), loc(down), loc(up)}}
	if res, err := e.fetchInfo(context.Background(), p); res != "" || err != nil {
		t.Fatalf("%q %v\n%s", res, err, log)
	}
	if p.Fragments != 1 || p.Manifest == nil || p.Manifest.Fragments[0].SHA256 != m.Fragments[0].SHA256 {
		t.Errorf("package after info: %+v", p)
	}
	if strings.Join(asked, ",") != "down /content/42/info,up /content/42/info,up /content/42/manifest.json" {
		t.Errorf("requests: %q", asked)
	}
	// A server the trust store does not know is skipped, and alone it is
	// the package's failure.
	e.info = &http.Client{}
	p = &LocalPackage{ID: "42", InfoLocations: []string{loc(up)}}
	if res, err := e.fetchInfo(context.Background(), p); res != "ERR_DOWNLOAD_INFO" {
		t.Errorf("untrusted server: %q %v", res, err)
	}
}

func TestServerOrder(t *testing.T) {
	for _, tt := range []struct {
		sats, servers []string
		via, want     string
	}{
		{nil, []string{"z1", "z2"}, "z2", "z2,z1"},
		{[]string{"s1", "s2"}, []string{"z1", "z2"}, "z2", "s1,s2,z2,z1"},
		{[]string{"s1", "s2"}, []string{"z1", "z2"}, "s2", "s1,s2,z1,z2"},
		{[]string{"s1"}, []string{"z1"}, "s9", "s1,s9,z1"},
	} {
		if got := strings.Join(serverOrder(tt.sats, tt.servers, tt.via), ","); got != tt.want {
			t.Errorf("serverOrder(%v, %v, %s) = %s, want %s", tt.sats, tt.servers, tt.via, got, tt.want)
		}
	}
}

// A fragment that fails its digest from every location is ERR_BAD_DIGEST
// at once, after a bounded number of tries; one that fails where the
// others cannot be reached is ERR_BAD_DIGEST after maxDigestRounds turns.
func TestFetchFragmentBadDigest(t *testing.T) {
	frags := [][]byte{[]byte("hello, world")}
	bad := [][]byte{[]byte("hellO, world")}
	bad1, bad2 := newFragServer(t, bad, nil), newFragServer(t, bad, nil)
	e, log := testEngine(t)
	p := &LocalPackage{ID: "42", Fragments: 1, Manifest: manifestOf(frags), PackLocations: []string{bad1.loc(), bad2.loc()}}
	if res, err := e.fetchFragment(context.Background(), p); res != "ERR_BAD_DIGEST" || err != nil {
		t.Fatalf("bad everywhere: %q %v\n%s", res, err, log)
	}
	if n1, n2 := len(bad1.requests()), len(bad2.requests()); n1 != digestTries || n2 != digestTries {
		t.Errorf("asked %d and %d times, want %d each", n1, n2, digestTries)
	}
	if _, err := os.Stat(filepath.Join(e.a.packageDir("42"), "42-1.part")); err == nil {
		t.Error("a bad fragment was kept")
	}

	p = &LocalPackage{ID: "42", Fragments: 1, Manifest: manifestOf(frags), PackLocations: []string{bad1.loc(), deadLocation(t)}}
	for turn := 1; turn < maxDigestRounds; turn++ {
		if res, err := e.fetchFragment(context.Background(), p); res != "" || err == nil {
			t.Fatalf("turn %d, bad and unreachable: %q %v, want a retry", turn, res, err)
		}
	}
	if res, _ := e.fetchFragment(context.Background(), p); res != "ERR_BAD_DIGEST" {
		t.Errorf("turn %d: %q, want ERR_BAD_DIGEST", maxDigestRounds, res)
	}

	// A good location resets the count.
	good := newFragServer(t, frags, nil)
	p = &LocalPackage{ID: "42", Fragments: 1, Manifest: manifestOf(frags), PackLocations: []string{bad1.loc(), good.loc()}}
	if res, err := e.fetchFragment(context.Background(), p); res != "" || err != nil || p.DigestRounds != 0 {
		t.Errorf("bad then good: %q %v rounds %d", res, err, p.DigestRounds)
	}
}

// The location that served a fragment is remembered in the record: with a
// latency between fragments the engine reads its records again, and a
// forgotten location would send every fragment to a dead one first.
func TestPackFromSurvivesReread(t *testing.T) {
	frags := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	good := newFragServer(t, frags, nil)
	var deadAsked int
	var mu sync.Mutex
	dead := newFragServer(t, nil, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		deadAsked++
		mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	e, log := testEngine(t)
	e.o.Sleep = func(context.Context, time.Duration) error { return nil }
	e.cfg = defaultDownloadConfig()
	m := manifestOf(frags)
	start := &LocalPackage{ID: "42", Phase: PhaseDownload, FirstSeen: time.Now(), Fragments: 3, Manifest: m, PackLocations: []string{dead.loc(), good.loc()}}
	if err := e.a.savePackage(start); err != nil {
		t.Fatal(err)
	}
	for turn := 0; turn < 3; turn++ {
		pkgs, err := e.a.Packages() // what active() does after a latency
		if err != nil || len(pkgs) != 1 {
			t.Fatal(pkgs, err)
		}
		if ok, err := e.step(context.Background(), pkgs[0]); !ok || err != nil {
			t.Fatalf("turn %d: %v %v\n%s", turn, ok, err, log)
		}
	}
	if deadAsked != 1 {
		t.Errorf("the dead location was asked %d times, want once", deadAsked)
	}
}
