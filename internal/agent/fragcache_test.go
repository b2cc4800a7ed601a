package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/failpoint"
)

func fragOf(data []byte) content.Fragment {
	sum := sha256.Sum256(data)
	return content.Fragment{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

// cacheServer serves fragments by name and counts the requests for each.
type cacheServer struct {
	*httptest.Server
	mu   sync.Mutex
	data map[string][]byte
	hits map[string]int
}

func newCacheServer(t *testing.T) *cacheServer {
	s := &cacheServer{data: map[string][]byte{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		s.mu.Lock()
		s.hits[name]++
		d, ok := s.data[name]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(d))
	}))
	t.Cleanup(s.Close)
	return s
}

// addPackage publishes a package made of frags and returns its record,
// ready to download.
func (s *cacheServer) addPackage(id string, frags ...[]byte) *LocalPackage {
	m := &content.Manifest{ID: id}
	for i, f := range frags {
		name := content.FragmentName(id, i+1)
		s.data[name] = f
		fr := fragOf(f)
		fr.Name = name
		m.Fragments = append(m.Fragments, fr)
	}
	return &LocalPackage{ID: id, Fragments: len(frags), Phase: PhaseDownload, Manifest: m,
		PackLocation: strings.TrimPrefix(s.URL, "http://"), FirstSeen: time.Now()}
}

func cacheEngine(t *testing.T, a *Agent, frags *http.Client, log *bytes.Buffer) *engine {
	e := &engine{a: a, log: log, frags: frags, inHand: map[string]int{}, fresh: map[string]int{},
		cfg: api.DownloadConfig{Enabled: true, Timeout: 7},
		o:   DeployOptions{Sleep: func(context.Context, time.Duration) error { return nil }}}
	e.fc = a.fragmentCache()
	if err := e.fc.open(); err != nil {
		t.Fatal(err)
	}
	return e
}

// download runs p's turns until all its fragments are in.
func download(t *testing.T, e *engine, p *LocalPackage) {
	t.Helper()
	for i := 0; p.Phase == PhaseDownload; i++ {
		if i > 20 {
			t.Fatalf("package %s: still downloading", p.ID)
		}
		if _, err := e.step(context.Background(), p); err != nil {
			t.Fatalf("package %s: %v", p.ID, err)
		}
	}
}

// A package whose fragments a finished package had fetches only the
// fragment it lacks; its files are the fragments' bytes.
func TestFragmentReuseByDigest(t *testing.T) {
	srv := newCacheServer(t)
	var log bytes.Buffer
	e := cacheEngine(t, New(t.TempDir()), srv.Client(), &log)
	a1, a2, a3, b2 := bytes.Repeat([]byte("a1"), 300), bytes.Repeat([]byte("a2"), 300), bytes.Repeat([]byte("a3"), 100), bytes.Repeat([]byte("b2"), 300)
	p := srv.addPackage("10", a1, a2, a3)
	download(t, e, p)
	if p.Reused != 0 || srv.hits["10-1"] != 1 || srv.hits["10-3"] != 1 {
		t.Fatalf("first package: reused %d, hits %v", p.Reused, srv.hits)
	}
	if err := e.release(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.a.packageDir("10")); !os.IsNotExist(err) {
		t.Fatalf("package directory left: %v", err)
	}
	for _, f := range [][]byte{a1, a2, a3} {
		if _, err := os.Stat(e.fc.path(fragOf(f).SHA256)); err != nil {
			t.Fatalf("not kept in the cache: %v", err)
		}
	}

	q := srv.addPackage("11", a1, b2, a3)
	download(t, e, q)
	if q.Reused != 2 || q.Phase != PhaseReady {
		t.Fatalf("second package: reused %d, phase %s\n%s", q.Reused, q.Phase, log.String())
	}
	if srv.hits["11-1"] != 0 || srv.hits["11-3"] != 0 || srv.hits["11-2"] != 1 {
		t.Errorf("the server was asked for %v", srv.hits)
	}
	for i, want := range [][]byte{a1, b2, a3} {
		got, err := os.ReadFile(filepath.Join(e.a.packageDir("11"), content.FragmentName("11", i+1)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("fragment %d: %v", i+1, err)
		}
	}
	for _, want := range []string{"fragment 1/3 reused from the fragment cache", "2 of 3 fragment(s) reused (already on this device), 1 fetched"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

// A fragment another package being downloaded here already has is taken
// from it, as is one repeated within a package.
func TestFragmentReuseFromHeldPackage(t *testing.T) {
	srv := newCacheServer(t)
	var log bytes.Buffer
	a := New(t.TempDir())
	a.FragmentCacheMax = -1 // no cache: the held package is the only source
	e := cacheEngine(t, a, srv.Client(), &log)
	x, y := bytes.Repeat([]byte("x"), 500), bytes.Repeat([]byte("y"), 500)
	p := srv.addPackage("20", x, y)
	download(t, e, p)
	e.cache = []*LocalPackage{p}
	q := srv.addPackage("21", y, y, x)
	download(t, e, q)
	if q.Reused != 3 || srv.hits["21-1"]+srv.hits["21-2"]+srv.hits["21-3"] != 0 {
		t.Fatalf("reused %d, hits %v\n%s", q.Reused, srv.hits, log.String())
	}
	if !strings.Contains(log.String(), "fragment 1/3 reused from package 20") {
		t.Errorf("log:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(a.Home, "fragment-cache")); !os.IsNotExist(err) {
		t.Errorf("a disabled cache made its directory: %v", err)
	}
}

// The least recently used entries go first; a get counts as a use.
func TestFragmentCacheEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &fragCache{dir: filepath.Join(dir, "cache"), max: 250, now: func() time.Time { return clock }, hook: func(string) error { return nil }}
	if err := c.open(); err != nil {
		t.Fatal(err)
	}
	var frags []content.Fragment
	for i, s := range []string{"1", "2", "3", "4"} {
		data := bytes.Repeat([]byte(s), 100)
		src := filepath.Join(dir, s)
		os.WriteFile(src, data, 0o600)
		frags = append(frags, fragOf(data))
		if i == 3 {
			// Entry 1 used again before entry 4 comes.
			clock = clock.Add(time.Minute)
			if ok, err := c.get(frags[0], filepath.Join(dir, "got")); !ok || err != nil {
				t.Fatalf("get: %v %v", ok, err)
			}
		}
		clock = clock.Add(time.Minute)
		if err := c.put(src, frags[i]); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.evict()
	if err != nil || n != 2 {
		t.Fatalf("evicted %d: %v", n, err)
	}
	for i, want := range []bool{true, false, false, true} {
		_, err := os.Stat(c.path(frags[i].SHA256))
		if (err == nil) != want {
			t.Errorf("entry %d kept: %v, want %v", i+1, err == nil, want)
		}
	}
	// A fragment larger than the bound is not kept at all.
	big := bytes.Repeat([]byte("b"), 300)
	os.WriteFile(filepath.Join(dir, "big"), big, 0o600)
	if err := c.put(filepath.Join(dir, "big"), fragOf(big)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.path(fragOf(big).SHA256)); err == nil {
		t.Error("a fragment over the bound entered the cache")
	}
}

// A damaged entry is removed, never used: the fragment is fetched.
func TestFragmentCacheDiscardsDamagedEntry(t *testing.T) {
	for _, noLink := range []bool{false, true} {
		srv := newCacheServer(t)
		var log bytes.Buffer
		e := cacheEngine(t, New(t.TempDir()), srv.Client(), &log)
		e.fc.noLink = noLink
		data := bytes.Repeat([]byte("d"), 1000)
		p := srv.addPackage("30", data)
		download(t, e, p)
		if err := e.release(p); err != nil {
			t.Fatal(err)
		}
		entry := e.fc.path(fragOf(data).SHA256)
		bad := bytes.Repeat([]byte("D"), 1000) // same size, other bytes
		if err := os.WriteFile(entry, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		q := srv.addPackage("31", data)
		download(t, e, q)
		if q.Reused != 0 || srv.hits["31-1"] != 1 {
			t.Fatalf("noLink %v: reused %d, hits %v\n%s", noLink, q.Reused, srv.hits, log.String())
		}
		if got, _ := os.ReadFile(filepath.Join(e.a.packageDir("31"), "31-1")); !bytes.Equal(got, data) {
			t.Errorf("noLink %v: the fragment in place is not the server's", noLink)
		}
		if !strings.Contains(log.String(), "the cached copy fails its SHA-256; discarded") {
			t.Errorf("log:\n%s", log.String())
		}
		if _, err := os.Stat(entry); !os.IsNotExist(err) {
			t.Errorf("noLink %v: the damaged entry is still there: %v", noLink, err)
		}
	}
}

// A zac stopped while it puts a fragment in the cache (after the bytes are
// written, before the entry is named) leaves no entry; the next open
// sweeps what it left.
func TestFragmentCacheKilledMidWrite(t *testing.T) {
	for _, noLink := range []bool{false, true} {
		dir := t.TempDir()
		c := &fragCache{dir: filepath.Join(dir, "cache"), max: 1 << 20, now: time.Now, noLink: noLink,
			hook: func(step string) error { return errors.New("killed at " + step) }}
		if err := c.open(); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("k"), 4096)
		os.WriteFile(filepath.Join(dir, "src"), data, 0o600)
		if err := c.put(filepath.Join(dir, "src"), fragOf(data)); err == nil {
			t.Fatal("the hook did not stop put")
		}
		checkNoEntry(t, c, fragOf(data), filepath.Join(dir, "dst"), false)
	}
}

func checkNoEntry(t *testing.T, c *fragCache, f content.Fragment, dst string, leftover bool) {
	t.Helper()
	if ents, _ := os.ReadDir(c.dir); leftover && (len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), ".")) {
		t.Fatalf("the killed put left %v, want one dot file", ents)
	}
	if ok, err := c.get(f, dst); ok || err != nil {
		t.Fatalf("an interrupted put left an entry: %v %v", ok, err)
	}
	if err := c.open(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(c.dir)
	if len(ents) != 0 {
		t.Errorf("left in the cache after the sweep: %v", ents)
	}
}

// The same with a real kill: a child process is SIGKILLed by the
// fragcache-written failpoint.
func TestFragmentCacheKilledProcess(t *testing.T) {
	if dir := os.Getenv("FRAGCACHE_CHILD_DIR"); dir != "" {
		c := &fragCache{dir: filepath.Join(dir, "cache"), max: 1 << 20, now: time.Now, hook: failpoint.Crash,
			noLink: os.Getenv("FRAGCACHE_CHILD_NOLINK") != ""}
		c.open()
		data, _ := os.ReadFile(filepath.Join(dir, "src"))
		c.put(filepath.Join(dir, "src"), fragOf(data))
		os.Exit(3) // not reached: the failpoint kills the process
	}
	for _, noLink := range []string{"", "1"} {
		dir := t.TempDir()
		data := bytes.Repeat([]byte("p"), 1<<16)
		os.WriteFile(filepath.Join(dir, "src"), data, 0o600)
		cmd := exec.Command(os.Args[0], "-test.run=^TestFragmentCacheKilledProcess$")
		cmd.Env = append(os.Environ(), "FRAGCACHE_CHILD_DIR="+dir, "FRAGCACHE_CHILD_NOLINK="+noLink,
			failpoint.Env+"=fragcache-written")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 3 || ee.ExitCode() == 0 {
			t.Fatalf("child: %v\n%s", err, out)
		}
		c := &fragCache{dir: filepath.Join(dir, "cache"), max: 1 << 20, now: time.Now, hook: func(string) error { return nil }}
		checkNoEntry(t, c, fragOf(data), filepath.Join(dir, "dst"), true)
	}
}

// BenchmarkFragmentReuse places a 1 MiB fragment from the cache (a hard
// link, then its SHA-256 checked), the cost of a reused fragment.
func BenchmarkFragmentReuse(b *testing.B) {
	for _, noLink := range []bool{false, true} {
		name := "link"
		if noLink {
			name = "copy"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			c := &fragCache{dir: filepath.Join(dir, "cache"), max: 1 << 30, now: time.Now, noLink: noLink, hook: func(string) error { return nil }}
			if err := c.open(); err != nil {
				b.Fatal(err)
			}
			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			os.WriteFile(filepath.Join(dir, "src"), data, 0o600)
			f := fragOf(data)
			if err := c.put(filepath.Join(dir, "src"), f); err != nil {
				b.Fatal(err)
			}
			dst := filepath.Join(dir, "dst")
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if ok, err := c.get(f, dst); !ok || err != nil {
					b.Fatal(ok, err)
				}
				os.Remove(dst)
			}
		})
	}
}
