package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var testInfo = Info{
	ZonekitVersion: "1.4.2", Zone: "acme", ZoneID: "zone-1", Server: "primary1", ServerID: "srv-1",
	Created: time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC), CertAuth: true,
}

type memFile struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
	data  []byte
}

func memSources(files []memFile) []Source {
	var out []Source
	for _, f := range files {
		s := Source{Name: f.name, Mode: f.mode, ModTime: f.mtime, UID: os.Getuid(), GID: os.Getgid()}
		if !f.mode.IsDir() {
			data := f.data
			s.Size = int64(len(data))
			s.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		}
		out = append(out, s)
	}
	return out
}

func testFiles() []memFile {
	t0 := time.Date(2024, 12, 31, 23, 59, 58, 123456789, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	return []memFile{
		{"conf", fs.ModeDir | 0o750, at(1), nil},
		{"conf/zoneserver.conf", 0o644, at(2), []byte("server.port=8443\n")},
		{"conf/security", fs.ModeDir | 0o700, at(3), nil},
		{"conf/security/zone-ca.key", 0o600, at(4), []byte("-----BEGIN EC PRIVATE KEY-----\n")},
		{"conf/empty", 0o640, at(5), nil},
		{"conf/ro", fs.ModeDir | 0o500, at(6), nil},
		{"conf/ro/f", 0o400, at(7), []byte("read only")},
		{"conf/é ü.txt", 0o644, at(8), []byte("unicode")},
		{"data/zone.db", 0o600, at(9 * time.Hour), randBytes(1<<20 + 3)}, // parent not listed
	}
}

func totalSize(files []memFile) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f.data))
	}
	return n
}

// newStaging makes tmp/staging (empty) beside tmp/outside/sentinel, and
// checks at the end that nothing but staging changed.
func newStaging(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	staging := filepath.Join(tmp, "staging")
	if err := os.Mkdir(staging, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "outside"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "outside", "sentinel"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Let TempDir remove read-only directories when not running as root.
		filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
		var found []string
		filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(tmp, p)
			found = append(found, filepath.ToSlash(rel))
			if rel == "staging" && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		})
		if want := []string{".", "outside", "outside/sentinel", "staging"}; !slices.Equal(found, want) {
			t.Errorf("outside staging: %q, want %q", found, want)
		}
		if b, err := os.ReadFile(filepath.Join(tmp, "outside", "sentinel")); err != nil || string(b) != "s" {
			t.Errorf("sentinel changed: %q, %v", b, err)
		}
	})
	return staging
}

func pack(t testing.TB, sources []Source) ([]byte, *Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Pack(&buf, testInfo, sources, nil)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes(), m
}

func manifestJSON(t *testing.T, m *Manifest) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPackUnpack(t *testing.T) {
	files := testFiles()
	var packed int64
	var buf bytes.Buffer
	m, err := Pack(&buf, testInfo, memSources(files), func(n int64) { packed += n })
	if err != nil {
		t.Fatal(err)
	}
	if packed != totalSize(files) {
		t.Errorf("Pack progress %d, want %d", packed, totalSize(files))
	}
	if m.Format != ManifestFormat || len(m.Entries) != len(files) || !m.Info.equal(testInfo) {
		t.Fatalf("manifest %+v", m)
	}

	staging := newStaging(t)
	var unpacked int64
	got, err := Unpack(bytes.NewReader(buf.Bytes()), staging, func(n int64) { unpacked += n })
	if err != nil {
		t.Fatal(err)
	}
	if unpacked != totalSize(files) {
		t.Errorf("Unpack progress %d, want %d", unpacked, totalSize(files))
	}
	if manifestJSON(t, got) != manifestJSON(t, m) {
		t.Errorf("Unpack manifest\n%s\nPack manifest\n%s", manifestJSON(t, got), manifestJSON(t, m))
	}
	checkTree(t, staging, files)
	// The parent of data/zone.db was not listed: made private.
	if fi, err := os.Stat(filepath.Join(staging, "data")); err != nil || fi.Mode() != fs.ModeDir|0o700 {
		t.Errorf("implicit directory data: %v, %v", fi.Mode(), err)
	}

	var verified int64
	vm, err := Verify(bytes.NewReader(buf.Bytes()), func(n int64) { verified += n })
	if err != nil {
		t.Fatal(err)
	}
	if manifestJSON(t, vm) != manifestJSON(t, m) || verified != totalSize(files) {
		t.Errorf("Verify: manifest differs or progress %d", verified)
	}
}

// checkTree compares what Unpack wrote with the files.
func checkTree(t *testing.T, staging string, files []memFile) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(staging, filepath.FromSlash(f.name))
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		if fi.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.name, fi.Mode(), f.mode)
		}
		if !fi.ModTime().Equal(f.mtime) {
			t.Errorf("%s: mtime %v, want %v", f.name, fi.ModTime(), f.mtime)
		}
		if uid, gid := owner(fi); uid != os.Getuid() || gid != os.Getgid() {
			t.Errorf("%s: owner %d:%d", f.name, uid, gid)
		}
		if !f.mode.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(b, f.data) {
				t.Errorf("%s: content differs (%v)", f.name, err)
			}
		}
	}
}

// The whole pipeline as zman and the server use it.
func TestPackEncryptDecryptUnpack(t *testing.T) {
	files := testFiles()
	var enc bytes.Buffer
	w, err := EncryptWithChunkSize(&enc, testPass, cheapKDF, MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Pack(w, testInfo, memSources(files), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Decrypt(bytes.NewReader(enc.Bytes()), testPass)
	if err != nil {
		t.Fatal(err)
	}
	staging := newStaging(t)
	got, err := Unpack(r, staging, nil)
	if err != nil {
		t.Fatal(err)
	}
	if manifestJSON(t, got) != manifestJSON(t, m) {
		t.Error("manifests differ")
	}
	checkTree(t, staging, files)

	// Cut off the final chunk: the tar and zstd streams may be whole by
	// then, but the end of the file is not authenticated, so Unpack fails.
	enc.Truncate(enc.Len() - 1)
	r, err = Decrypt(bytes.NewReader(enc.Bytes()), testPass)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(r, nil); !errors.Is(err, ErrDamaged) {
		t.Errorf("Verify of a truncated backup = %v", err)
	}
}

func TestUnpackOwnersAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners are restored only when running as root")
	}
	src := memSources([]memFile{{"conf", fs.ModeDir | 0o755, testInfo.Created, nil}, {"conf/f", 0o644, testInfo.Created, []byte("x")}})
	src[0].UID, src[0].GID = 4242, 4343
	src[1].UID, src[1].GID = 5252, 5353
	data, _ := pack(t, src)
	staging := newStaging(t)
	if _, err := Unpack(bytes.NewReader(data), staging, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range src {
		fi, err := os.Lstat(filepath.Join(staging, s.Name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != s.UID || int(st.Gid) != s.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", s.Name, st.Uid, st.Gid, s.UID, s.GID)
		}
	}
}

func TestUnpackNeedsEmptyStaging(t *testing.T) {
	data, _ := pack(t, memSources(testFiles()[:2]))
	staging := t.TempDir()
	os.WriteFile(filepath.Join(staging, "conf"), []byte("in the way"), 0o600)
	if _, err := Unpack(bytes.NewReader(data), staging, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Unpack into a non-empty directory = %v", err)
	}
	if _, err := Unpack(bytes.NewReader(data), filepath.Join(staging, "missing"), nil); err == nil {
		t.Error("Unpack into a missing directory succeeded")
	}
}

// lyingReader yields n bytes whatever Size says.
func lying(n int) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(make([]byte, n))), nil }
}

func TestPackSizeMismatch(t *testing.T) {
	before := runtime.NumGoroutine()
	defer func() {
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines left behind by failed Packs", n-before)
		}
	}()
	for _, tt := range []struct {
		name     string
		declared int64
		yields   int
	}{
		{"shrank", 10, 9},
		{"grew", 10, 11},
		{"emptied", 10, 0},
		{"grew from empty", 0, 1},
	} {
		src := []Source{{Name: "conf/f", Mode: 0o600, Size: tt.declared, Open: lying(tt.yields)}}
		_, err := Pack(io.Discard, testInfo, src, nil)
		if err == nil || !strings.Contains(err.Error(), "conf/f") || !strings.Contains(err.Error(), "declared") {
			t.Errorf("%s: Pack = %v", tt.name, err)
		}
	}
	openErr := []Source{{Name: "f", Mode: 0o600, Size: 1, Open: func() (io.ReadCloser, error) { return nil, fs.ErrPermission }}}
	if _, err := Pack(io.Discard, testInfo, openErr, nil); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "pack f") {
		t.Errorf("Pack with a failing Open = %v", err)
	}
}

func TestPackRefusesSources(t *testing.T) {
	file := func(name string) Source { return Source{Name: name, Mode: 0o600, Open: lying(0)} }
	dir := func(name string) Source { return Source{Name: name, Mode: fs.ModeDir | 0o700} }
	tests := []struct {
		name string
		src  []Source
	}{
		{"parent element", []Source{file("../x")}},
		{"inner parent element", []Source{file("a/../../x")}},
		{"absolute", []Source{file("/etc/x")}},
		{"empty name", []Source{file("")}},
		{"dot", []Source{dir(".")}},
		{"double slash", []Source{file("a//b")}},
		{"trailing slash", []Source{file("a/")}},
		{"backslash", []Source{file(`a\b`)}},
		{"not UTF-8", []Source{file("a\xff")}},
		{"info.json", []Source{file("info.json")}},
		{"manifest.json", []Source{file("manifest.json")}},
		{"duplicate", []Source{file("a"), file("a")}},
		{"file and directory", []Source{dir("a"), file("a")}},
		{"inside a file", []Source{file("a"), file("a/b")}},
		{"inside a file, listed first", []Source{file("a/b/c"), file("a")}},
		{"symlink", []Source{{Name: "l", Mode: fs.ModeSymlink | 0o777}}},
		{"device", []Source{{Name: "d", Mode: fs.ModeDevice | 0o600, Open: lying(0)}}},
		{"file without Open", []Source{{Name: "f", Mode: 0o600}}},
		{"negative size", []Source{{Name: "f", Mode: 0o600, Size: -1, Open: lying(0)}}},
		{"negative owner", []Source{{Name: "f", Mode: 0o600, UID: -1, Open: lying(0)}}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if _, err := Pack(&buf, testInfo, tt.src, nil); err == nil {
			t.Errorf("%s: Pack succeeded", tt.name)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: Pack wrote %d bytes before refusing", tt.name, buf.Len())
		}
	}
}

func TestPackKeepsOnlyPermissionBits(t *testing.T) {
	src := memSources([]memFile{{"d", fs.ModeDir | fs.ModeSetgid | 0o2770, testInfo.Created, nil}, {"d/f", fs.ModeSetuid | 0o755, testInfo.Created, []byte("x")}})
	data, m := pack(t, src)
	if m.Entries[0].Mode != fs.ModeDir|0o770 || m.Entries[1].Mode != 0o755 {
		t.Errorf("modes %v %v", m.Entries[0].Mode, m.Entries[1].Mode)
	}
	if _, err := Verify(bytes.NewReader(data), nil); err != nil {
		t.Error(err)
	}
}

func TestEmptyBackup(t *testing.T) {
	data, m := pack(t, nil)
	if len(m.Entries) != 0 {
		t.Fatal(m.Entries)
	}
	got, err := Unpack(bytes.NewReader(data), newStaging(t), nil)
	if err != nil || len(got.Entries) != 0 || !got.Info.equal(testInfo) {
		t.Errorf("Unpack = %+v, %v", got, err)
	}
}

func TestManifestJSON(t *testing.T) {
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	m := Manifest{Format: 1, Info: testInfo, Entries: []Entry{
		{Path: "conf", Mode: fs.ModeDir | 0o750, UID: 0, GID: 10, ModTime: mtime},
		{Path: "conf/a", Mode: 0o640, UID: 1, GID: 2, ModTime: mtime, Size: 3, SHA256: strings.Repeat("ab", 32)},
	}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"format":1,"info":{"zonekit_version":"1.4.2","zone":"acme","zone_id":"zone-1","server":"primary1","server_id":"srv-1","created":"2025-03-04T05:06:07.00000089Z","cert_auth":true},` +
		`"entries":[{"path":"conf","type":"dir","mode":"0750","uid":0,"gid":10,"mtime":"2025-01-02T03:04:05.000000006Z","size":0},` +
		`{"path":"conf/a","type":"file","mode":"0640","uid":1,"gid":2,"mtime":"2025-01-02T03:04:05.000000006Z","size":3,"sha256":"` + strings.Repeat("ab", 32) + `"}]}`
	if string(b) != want {
		t.Errorf("manifest.json\n%s\nwant\n%s", b, want)
	}
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if b2, _ := json.Marshal(back); string(b2) != want {
		t.Errorf("round trip\n%s", b2)
	}
	for _, bad := range []string{
		`{"path":"a","type":"link","mode":"0777"}`,
		`{"path":"a","type":"file","mode":"640"}`,
		`{"path":"a","type":"file","mode":"0648"}`,
		`{"path":"a","type":"file","mode":"1777"}`,
		`{"path":"a","type":"file","mode":"+777"}`,
		`{"path":"a","type":"file","mode":"0x77"}`,
		`{"path":"a","type":"file"}`,
	} {
		var e Entry
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("Unmarshal(%s) = %+v", bad, e)
		}
	}
}

// Pack prefetches files ahead of their turn, never more than prefetchAhead
// ahead, never a large file, never one already packed, and nothing once
// it has returned, even after a failure.
func TestPackPrefetches(t *testing.T) {
	for _, failAt := range []int{-1, 150} {
		var (
			mu       sync.Mutex
			opened   = -1 // the source being packed
			early    int  // prefetched before their turn
			returned bool
		)
		var src []Source
		for i := range 300 {
			size := int64(10)
			if i%50 == 7 {
				size = prefetchMax + 1
			}
			s := Source{Name: fmt.Sprintf("conf/f%03d", i), Mode: 0o600, Size: size}
			s.Open = func() (io.ReadCloser, error) {
				mu.Lock()
				opened = i
				mu.Unlock()
				if i == 0 {
					time.Sleep(20 * time.Millisecond) // the prefetcher gets ahead
				}
				if i == failAt {
					return nil, fs.ErrPermission
				}
				return io.NopCloser(bytes.NewReader(make([]byte, size))), nil
			}
			s.Prefetch = func() {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case returned:
					t.Errorf("%s prefetched after Pack returned", s.Name)
				case size > prefetchMax:
					t.Errorf("%s of %d bytes prefetched", s.Name, size)
				case i > opened+1+prefetchAhead: // the next one's turn may have come
					t.Errorf("%s prefetched after file %d was opened", s.Name, opened)
				case i > opened:
					early++
				}
			}
			src = append(src, s)
		}
		_, err := Pack(io.Discard, testInfo, src, nil)
		mu.Lock()
		returned = true
		if (err != nil) != (failAt >= 0) {
			t.Errorf("failing at %d: Pack = %v", failAt, err)
		}
		if early < prefetchAhead/2 {
			t.Errorf("failing at %d: %d files prefetched before their turn", failAt, early)
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

// pushed is a Source.WriteTo that writes data as a store snapshot does:
// a small first write, then the rest through io.Copy from a reader
// (ReadFrom when the writer has it), returning what it reports.
func pushed(data []byte, report func(n int64) int64, failAfter error) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		k := min(len(data), 4096)
		n, err := w.Write(data[:k])
		if err != nil {
			return int64(n), err
		}
		m, err := io.Copy(w, io.LimitReader(bytes.NewReader(data[k:]), int64(len(data)-k)))
		if err == nil {
			err = failAfter
		}
		return report(int64(n) + m), err
	}
}

// A pushed source (WriteTo) packs to the same archive as the same content
// opened and read, small or large enough to be hashed in parallel; one
// that writes more or less than declared, miscounts or fails is refused
// naming it, and leaves no goroutine behind.
func TestPackPushedSource(t *testing.T) {
	before := runtime.NumGoroutine()
	exact := func(n int64) int64 { return n }
	for _, size := range []int{0, 100, 5000, parallelMin + 3*hashBufferSize + 17} {
		data := randBytes(size)
		opened := memSources([]memFile{{"data/zone.db", 0o600, testInfo.Created, data}})
		var want bytes.Buffer
		if _, err := Pack(&want, testInfo, opened, nil); err != nil {
			t.Fatal(err)
		}
		var progress int64
		src := opened[0]
		src.Open, src.WriteTo = nil, pushed(data, exact, nil)
		var got bytes.Buffer
		if _, err := Pack(&got, testInfo, []Source{src}, func(n int64) { progress += n }); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) || progress != int64(size) {
			t.Errorf("%d bytes pushed: archive differs from the opened file's (%v), progress %d", size, !bytes.Equal(got.Bytes(), want.Bytes()), progress)
		}
	}
	size := parallelMin + 5
	for _, tt := range []struct {
		name    string
		yields  int
		report  func(int64) int64
		fail    error
		wantErr string
	}{
		{"shrank", size - 1, exact, nil, "declared"},
		{"grew", size + 1, exact, nil, "more than"},
		{"grew small", 5, exact, nil, "more than"},
		{"miscounted", size, func(n int64) int64 { return n - 1 }, nil, "reported"},
		{"failed", size, exact, fs.ErrPermission, "permission"},
	} {
		declared := int64(size)
		if tt.name == "grew small" {
			declared = 4
		}
		src := Source{Name: "data/zone.db", Mode: 0o600, Size: declared, WriteTo: pushed(make([]byte, tt.yields), tt.report, tt.fail)}
		_, err := Pack(io.Discard, testInfo, []Source{src}, nil)
		if err == nil || !strings.Contains(err.Error(), "data/zone.db") || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Pack = %v", tt.name, err)
		}
	}
	both := Source{Name: "f", Mode: 0o600, Size: 1, Open: lying(1), WriteTo: pushed([]byte{1}, exact, nil)}
	if _, err := Pack(io.Discard, testInfo, []Source{both}, nil); err == nil {
		t.Error("Pack took a source with both Open and WriteTo")
	}
	time.Sleep(10 * time.Millisecond)
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left behind", n-before)
	}
}
