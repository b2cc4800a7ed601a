package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"zonekit/internal/content"
)

func TestSafePath(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "a/b", "./a", "a/../b", "dir/"} {
		if _, err := safePath(dir, name); err != nil {
			t.Errorf("safePath(%q): %v", name, err)
		}
	}
	for _, name := range []string{"../a", "/etc/passwd", "a/../../b", `..\evil`, "a/../.."} {
		if p, err := safePath(dir, name); err == nil {
			t.Errorf("safePath(%q) = %s, want refusal", name, p)
		}
	}
}

func tarGz(t testing.TB, members ...*tar.Header) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range members {
		body := h.Name
		if h.Typeflag == tar.TypeReg || h.Typeflag == 0 {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestExtractTarGzRefusesEscapes(t *testing.T) {
	cases := map[string][]*tar.Header{
		"dotdot":          {{Name: "../x", Mode: 0o644}},
		"absolute link":   {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
		"climbing link":   {{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "../../x"}},
		"through a link":  {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "."}, {Name: "l/x", Mode: 0o644}},
		"hard link out":   {{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
		"device":          {{Name: "dev", Typeflag: tar.TypeChar}},
		"escape by clean": {{Name: "a/../../x", Mode: 0o644}},
	}
	for name, members := range cases {
		root := t.TempDir()
		dir := filepath.Join(root, "work")
		os.Mkdir(dir, 0o755)
		err := extractTarGz(bytes.NewReader(tarGz(t, members...)), dir, 1<<20)
		if err == nil {
			t.Errorf("%s: extracted", name)
		}
		if _, err := os.Lstat(filepath.Join(root, "x")); err == nil {
			t.Errorf("%s: a file landed outside", name)
		}
	}
	// What is fine: files, directories, a link that stays inside, a size limit.
	dir := t.TempDir()
	ok := tarGz(t, &tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "d/f", Mode: 0o4755},
		&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "d/f"}, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "d/f"})
	if err := extractTarGz(bytes.NewReader(ok), dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "d/f")); err != nil || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("d/f: %v %v (no setuid bit may come from a package)", fi, err)
	}
	if err := extractTarGz(bytes.NewReader(ok), t.TempDir(), 2); err != errNoSpace {
		t.Errorf("over the limit: %v, want errNoSpace", err)
	}
}

func TestFragmentsReadAt(t *testing.T) {
	dir := t.TempDir()
	parts := []string{"hello ", "fragmented", " world"}
	for i, p := range parts {
		os.WriteFile(filepath.Join(dir, content.FragmentName("7", i+1)), []byte(p), 0o600)
	}
	f, err := openFragments(dir, "7", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, _ := io.ReadAll(io.NewSectionReader(f, 0, f.size))
	if string(all) != strings.Join(parts, "") {
		t.Fatalf("got %q", all)
	}
	buf := make([]byte, 12)
	n, err := f.ReadAt(buf, 3)
	if n != 12 || err != nil || string(buf) != "lo fragmente" {
		t.Errorf("ReadAt(3) = %d %v %q", n, err, buf)
	}
	if n, err := f.ReadAt(buf, f.size-2); n != 2 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d %v", n, err)
	}
}

// A connection cut in the middle of a fragment leaves a partial file; the
// next attempt asks for the rest only.
func TestFetchFragmentResumesAtTheByte(t *testing.T) {
	frag := bytes.Repeat([]byte("0123456789"), 1000)
	sum := sha256.Sum256(frag)
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		if len(ranges) == 1 {
			w.Header().Set("Content-Length", "10000")
			w.Write(frag[:4000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(frag))
	}))
	defer srv.Close()
	var log bytes.Buffer
	e := &engine{a: New(t.TempDir()), log: &log, frags: srv.Client(), inHand: map[string]int{}, fresh: map[string]int{}}
	p := &LocalPackage{ID: "42", Fragments: 1, PackLocation: strings.TrimPrefix(srv.URL, "http://"),
		Manifest: &content.Manifest{Fragments: []content.Fragment{{Name: "42-1", Size: 10000, SHA256: hex.EncodeToString(sum[:])}}}}
	if res, err := e.fetchFragment(context.Background(), p); err == nil || res != "" {
		t.Fatalf("first attempt: %q %v, want a retry", res, err)
	}
	if fi, err := os.Stat(filepath.Join(e.a.packageDir("42"), "42-1.part")); err != nil || fi.Size() != 4000 {
		t.Fatalf("partial fragment: %v %v", fi, err)
	}
	if res, err := e.fetchFragment(context.Background(), p); err != nil || res != "" {
		t.Fatalf("second attempt: %q %v\n%s", res, err, log.String())
	}
	if ranges[1] != "bytes=4000-" {
		t.Errorf("second request's range %q", ranges[1])
	}
	got, _ := os.ReadFile(filepath.Join(e.a.packageDir("42"), "42-1"))
	if !bytes.Equal(got, frag) {
		t.Error("the fragment put together is not the server's")
	}
	if !strings.Contains(log.String(), "fragment 1/1 resumed at byte 4000") {
		t.Errorf("log: %s", log.String())
	}
}

func FuzzExtractTarGz(f *testing.F) {
	f.Add(tarGz(f, &tar.Header{Name: "a/b", Mode: 0o644}))
	f.Add(tarGz(f, &tar.Header{Name: "../x", Mode: 0o644}))
	f.Add(tarGz(f, &tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "."}, &tar.Header{Name: "l/x", Mode: 0o644}))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "work")
		os.Mkdir(dir, 0o755)
		extractTarGz(bytes.NewReader(data), dir, 1<<20)
		// Nothing may appear beside the work directory.
		entries, _ := os.ReadDir(root)
		if len(entries) != 1 {
			t.Fatalf("extraction wrote outside its directory: %v", entries)
		}
	})
}

func TestCheckDigest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "9-1"), []byte("abc"), 0o600)
	os.WriteFile(filepath.Join(dir, "9-2"), []byte("de"), 0o600)
	arch, err := openFragments(dir, "9", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer arch.Close()
	const md5abcde = "ab56b4d92b40713acc5af89985d4b786"
	var log bytes.Buffer
	e := &engine{a: New(dir), log: &log}
	info := content.Info{Digest: md5abcde}
	if res := e.checkDigest(&LocalPackage{ID: "9"}, info, arch); res != "" {
		t.Errorf("right MD5, no manifest: %q", res)
	}
	if res := e.checkDigest(&LocalPackage{ID: "9"}, content.Info{Digest: strings.Repeat("0", 32)}, arch); res != "ERR_BAD_DIGEST" {
		t.Errorf("wrong MD5: %q", res)
	}
	m := &content.Manifest{MD5: md5abcde, Size: 5, Fragments: []content.Fragment{{Size: 3}, {Size: 2}}}
	if res := e.checkDigest(&LocalPackage{ID: "9", Manifest: m}, info, arch); res != "" {
		t.Errorf("manifest: %q", res)
	}
	m.Fragments = []content.Fragment{{Size: 2}, {Size: 3}}
	if res := e.checkDigest(&LocalPackage{ID: "9", Manifest: m}, info, arch); res != "ERR_BAD_DIGEST" {
		t.Errorf("fragments of other sizes: %q", res)
	}
}
