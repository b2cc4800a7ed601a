package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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
