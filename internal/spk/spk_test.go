package spk

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"zonekit/internal/pki"
)

func TestExpandNesting(t *testing.T) {
	v := Values{"SITE": "branch", "PORT_branch": "1389", "DIR": "/opt/%APP%", "APP": "nds", "A": "%B%", "B": "%A%"}
	cases := map[string]string{
		"port %PORT_%SITE%%": "port 1389",
		"%DIR%/bin":          "/opt/nds/bin",
		"100%% sure":         "100% sure",
		"no refs":            "no refs",
		"%SITE%%SITE%":       "branchbranch",
		"50% off, %APP% on":  "50% off, nds on",
	}
	for in, want := range cases {
		got, err := v.Expand(in)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := v.Expand("%A%"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := v.Expand("%MISSING%"); err == nil || !strings.Contains(err.Error(), "MISSING has no value") {
		t.Errorf("missing: %v", err)
	}
}

func TestCheckRefs(t *testing.T) {
	decl := map[string]bool{"SITE": true, "X": true}
	for s, ok := range map[string]bool{"%X%": true, "%PORT_%SITE%%": true, "%Y%": false, "100%%": true, "a % b": true} {
		if err := checkRefs(s, decl); (err == nil) != ok {
			t.Errorf("checkRefs(%q) = %v", s, err)
		}
	}
}

func TestEdits(t *testing.T) {
	text := []byte("[a]\nk=1\n# note\n[b]\nx = 2\n")
	str := func(s string) *string { return &s }
	cases := []struct {
		e    Edit
		want string
	}{
		{Edit{Replace: &Replace{Search: "k=1", With: "k=9"}}, "[a]\nk=9\n# note\n[b]\nx = 2\n"},
		{Edit{Append: str("tail")}, "[a]\nk=1\n# note\n[b]\nx = 2\ntail\n"},
		{Edit{Prepend: str("head")}, "head\n[a]\nk=1\n# note\n[b]\nx = 2\n"},
		{Edit{InsertBefore: &InsertAt{Match: "[b]", Lines: "y=3"}}, "[a]\nk=1\n# note\ny=3\n[b]\nx = 2\n"},
		{Edit{InsertAfter: &InsertAt{Match: "[a]", Lines: "z=4\nw=5"}}, "[a]\nz=4\nw=5\nk=1\n# note\n[b]\nx = 2\n"},
		{Edit{Set: &SetKey{Section: "b", Key: "X", Value: "7"}}, "[a]\nk=1\n# note\n[b]\nx = 7\n"},
		{Edit{Set: &SetKey{Section: "a", Key: "new", Value: "1"}}, "[a]\nk=1\nnew=1\n# note\n[b]\nx = 2\n"},
		{Edit{Set: &SetKey{Section: "c", Key: "q", Value: "1"}}, "[a]\nk=1\n# note\n[b]\nx = 2\n\n[c]\nq=1\n"},
	}
	for i, c := range cases {
		got, _, err := applyEdit(text, c.e)
		if err != nil || string(got) != c.want {
			t.Errorf("case %d: %q, %v\nwant %q", i, got, err, c.want)
		}
	}
	for _, e := range []Edit{{Replace: &Replace{Search: "nope", With: "zzz"}}, {InsertAfter: &InsertAt{Match: "nope", Lines: "x"}}} {
		if _, _, err := applyEdit(text, e); err == nil {
			t.Errorf("an edit whose anchor is missing succeeded: %+v", e)
		}
	}
	// CRLF files keep their line endings.
	got, _, _ := applyEdit([]byte("a\r\nb\r\n"), Edit{InsertAfter: &InsertAt{Match: "a", Lines: "x"}})
	if string(got) != "a\r\nx\r\nb\r\n" {
		t.Errorf("CRLF: %q", got)
	}
}

func TestVersionsAndSizes(t *testing.T) {
	for _, c := range []struct {
		have, cons string
		ok         bool
	}{{"3.0.11", ">= 3.0.2", true}, {"3.0.2", "> 3.0.11", false}, {"1:2.4-1", ">= 1:2.3", true}, {"12", "= 12", true}, {"11", "12", false}, {"1.2a", "> 1.2", true}} {
		ok, err := satisfies(c.have, c.cons)
		if err != nil || ok != c.ok {
			t.Errorf("%s %s: %v %v", c.have, c.cons, ok, err)
		}
	}
	for s, want := range map[string]uint64{"512MiB": 512 << 20, "2GiB": 2 << 30, "100MB": 100e6, "4096": 4096, "1.5KiB": 1536} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", s, got, err)
		}
	}
	if _, err := ParseSize("lots"); err == nil {
		t.Error("ParseSize(lots) succeeded")
	}
}

func TestRequirements(t *testing.T) {
	dir := t.TempDir()
	osr := filepath.Join(dir, "os-release")
	os.WriteFile(osr, []byte("ID=debian\nVERSION_ID=\"13\"\n"), 0o644)
	mem := filepath.Join(dir, "meminfo")
	os.WriteFile(mem, []byte("MemTotal:        2048000 kB\n"), 0o644)
	ini := filepath.Join(dir, "app.ini")
	os.WriteFile(ini, []byte("[db]\nhost = db1\n"), 0o644)
	h := Host{GOOS: "linux", OSRelease: osr, MemInfo: mem, LookupEnv: func(k string) (string, bool) { return map[string]string{"ROLE": "web"}[k], k == "ROLE" },
		PackageVersion: func(_ context.Context, n string) (string, bool, error) { return "3.0.11-1", n == "openssl", nil }}
	str := func(s string) *string { return &s }
	good := []Requirement{
		{OS: &OSReq{Name: "linux"}}, {OS: &OSReq{Name: "debian", Version: ">= 12"}}, {Memory: "1GiB"},
		{Disk: &DiskReq{Path: filepath.Join(dir, "not", "yet"), Free: "1KiB"}}, {File: &FileReq{Path: ini}}, {File: &FileReq{Path: dir + "/x", Absent: true}},
		{Env: &ValueReq{Name: "ROLE", Value: str("web")}}, {Setting: &SettingReq{File: ini, Section: "db", Key: "host", Value: str("db1")}},
		{Package: &PkgReq{Name: "openssl", Version: ">= 3.0"}},
	}
	for i, r := range good {
		if err := h.check(context.Background(), r); err != nil {
			t.Errorf("good %d: %v", i, err)
		}
	}
	bad := []Requirement{
		{OS: &OSReq{Name: "windows"}}, {OS: &OSReq{Name: "debian", Version: ">= 14"}}, {Memory: "4GiB"}, {File: &FileReq{Path: ini, Absent: true}},
		{Env: &ValueReq{Name: "ROLE", Value: str("db")}}, {Setting: &SettingReq{File: ini, Key: "port"}}, {Package: &PkgReq{Name: "nginx"}},
	}
	for i, r := range bad {
		if err := h.check(context.Background(), r); err == nil {
			t.Errorf("bad %d held", i)
		}
	}
}

func compileTest(t testing.TB, src string, files map[string]string) ([]byte, *Package) {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
	}
	return compileDir(t, dir, src)
}

// compileDir compiles src with the package files already in dir (for
// tests that need more than contents, such as a file's mode).
func compileDir(t testing.TB, dir, src string) ([]byte, *Package) {
	t.Helper()
	p, err := ParseSource(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Compile(p, dir, &buf, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), p
}

const simpleSPK = `spk: 1
name: simple
variables:
  - name: DEST
    required: true
components:
  - component: COPY
    files:
      - from_package: a.txt
        to: "%DEST%/a.txt"
`

func TestCPKTamperingRefused(t *testing.T) {
	data, _ := compileTest(t, simpleSPK, map[string]string{"a.txt": "hello"})
	if o, err := Open(bytes.NewReader(data), OpenOptions{TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	} else {
		o.Close()
	}
	// Rewrite the archive with the content changed but the manifest kept.
	entries := readTar(t, data)
	entries["content/a.txt"] = []byte("HELLO")
	if _, err := Open(bytes.NewReader(writeTar(t, entries)), OpenOptions{TempDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("altered content: %v", err)
	}
	// A hostile path is refused before anything is written outside.
	entries = readTar(t, data)
	entries["content/../../evil"] = []byte("x")
	if _, err := Open(bytes.NewReader(writeTar(t, entries)), OpenOptions{TempDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "unsafe path") {
		t.Fatalf("hostile path: %v", err)
	}
	// Signed by an untrusted CA, or unsigned when a signature is required.
	ca, _ := pki.NewCA("Other", pki.ECDSAP256, 1, time.Now())
	p, _ := ParseSource(strings.NewReader(simpleSPK))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hi"), 0o644)
	var buf bytes.Buffer
	if _, err := Compile(p, dir, &buf, CASigner(ca), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bytes.NewReader(buf.Bytes()), OpenOptions{TempDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "does not trust") {
		t.Fatalf("untrusted signer: %v", err)
	}
	o, err := Open(bytes.NewReader(buf.Bytes()), OpenOptions{TempDir: t.TempDir(), Trusted: []*x509.Certificate{ca.Cert}})
	if err != nil || o.SignedBy == nil {
		t.Fatalf("trusted signer: %v", err)
	}
	o.Close()
	if _, err := Open(bytes.NewReader(data), OpenOptions{TempDir: t.TempDir(), RequireSignature: true}); err == nil {
		t.Fatal("unsigned CPK accepted with RequireSignature")
	}
}

func readTar(t *testing.T, data []byte) map[string][]byte {
	zr, _ := zstd.NewReader(bytes.NewReader(data))
	defer zr.Close()
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		b.ReadFrom(tr)
		out[h.Name] = b.Bytes()
	}
	return out
}

func TestProcessRollbackRestoresFiles(t *testing.T) {
	src := `spk: 1
name: rb
variables:
  - name: DEST
    required: true
components:
  - component: WORK
    files:
      - from_package: a.txt
        to: "%DEST%/a.txt"
    edits:
      - file: "%DEST%/a.txt"
        append: more
      - file: "%DEST%/a.txt"
        replace: {search: "not there", with: "x"}
`
	data, _ := compileTest(t, src, map[string]string{"a.txt": "new"})
	o, err := Open(bytes.NewReader(data), OpenOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	dest := t.TempDir()
	os.WriteFile(filepath.Join(dest, "a.txt"), []byte("original"), 0o640)
	vals, err := Resolve(o.Package, Values{"DEST": dest})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := (&Processor{Log: &log, StateDir: t.TempDir()}).Run(context.Background(), o, vals)
	if err == nil || !strings.Contains(err.Error(), "component WORK, edits step 2") {
		t.Fatalf("run: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "a.txt")); string(got) != "original" {
		t.Fatalf("after rollback: %q\n%s", got, log.String())
	}
	if res.RolledBack != 2 {
		t.Errorf("rolled back %d changes, want 2", res.RolledBack)
	}
}

// FuzzOpen feeds the CPK reader hostile archives: an error or a checked
// package, never a panic or a file outside its directory.
func FuzzOpen(f *testing.F) {
	p, _ := ParseSource(strings.NewReader(simpleSPK))
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello"), 0o644)
	var buf bytes.Buffer
	Compile(p, dir, &buf, nil, time.Now())
	f.Add(buf.Bytes())
	f.Add([]byte("not a cpk"))
	work := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Open(bytes.NewReader(data), OpenOptions{TempDir: work})
		if err == nil {
			o.Close()
		}
	})
}

// FuzzParseSource checks the SPK parser on arbitrary text.
func FuzzParseSource(f *testing.F) {
	f.Add(simpleSPK)
	f.Add("spk: 1\nname: x\ncomponents: [{component: A, edits: [{file: f, set: {key: k, value: '%%'}}]}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParseSource(strings.NewReader(s)); err == nil {
			if p.Check() != nil {
				t.Fatal("parsed package fails its own check")
			}
		}
	})
}

// A CPK of zeros without a manifest, or whose manifest understates or
// overstates its content, is refused before a byte is unpacked.
func TestHostileCPKRefusedBeforeExtraction(t *testing.T) {
	zeros := make([]byte, 64<<20)
	good, _ := compileTest(t, simpleSPK, map[string]string{"a.txt": "hello"})
	cases := map[string]map[string][]byte{}
	noManifest := readTar(t, good)
	delete(noManifest, manifestName)
	noManifest["content/zeros"] = zeros
	cases["no manifest"] = noManifest
	extra := readTar(t, good)
	extra["content/zeros"] = zeros
	cases["content the manifest does not list"] = extra
	for name, entries := range cases {
		data := writeTar(t, entries)
		tmp := t.TempDir()
		_, err := Open(bytes.NewReader(data), OpenOptions{TempDir: tmp})
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("%s: %v written before refusing (%v)", name, left, err)
		}
	}
	// Content beyond the caller's bound is refused while skipping it.
	if _, err := Open(bytes.NewReader(writeTar(t, noManifest)), OpenOptions{TempDir: t.TempDir(), MaxContent: 1 << 20}); err == nil || !strings.Contains(err.Error(), "more than 1048576 bytes") {
		t.Errorf("bound: %v", err)
	}
	// An unsigned CPK is refused before its content is read when a
	// signature is required.
	tmp := t.TempDir()
	if _, err := Open(bytes.NewReader(good), OpenOptions{TempDir: tmp, RequireSignature: true}); err == nil {
		t.Fatal("unsigned accepted")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("unsigned: %v written", left)
	}
}

// writeTar writes entries in the CPK order, the manifest (if any) last.
func writeTar(t *testing.T, entries map[string][]byte) []byte {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	tw := tar.NewWriter(zw)
	order := []string{logicName}
	for n := range entries {
		if strings.HasPrefix(n, contentPrefix) {
			order = append(order, n)
		}
	}
	if _, ok := entries[manifestName]; ok {
		order = append(order, manifestName)
	}
	for _, n := range order {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(entries[n])), Typeflag: tar.TypeReg})
		tw.Write(entries[n])
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// FuzzApplyEdit runs every edit on arbitrary file text: never a panic,
// and an edit applied to its own result changes nothing (what makes a
// second run report 0 changed).
func FuzzApplyEdit(f *testing.F) {
	f.Add([]byte("[a]\nk=1\n# note\n[b]\nx = 2\n"), "k=1", "k=9", "a")
	f.Add([]byte("a\r\nb\r\n"), "a", "x", "")
	f.Add([]byte(""), "x", "xy", "s")
	f.Fuzz(func(t *testing.T, text []byte, a, b, sec string) {
		if len(text) > 4096 || a == "" || strings.ContainsAny(a+b+sec, "\r\n") {
			return
		}
		edits := []Edit{
			{Replace: &Replace{Search: a, With: b}},
			{Append: &b}, {Prepend: &b},
			{InsertBefore: &InsertAt{Match: a, Lines: b}},
			{InsertAfter: &InsertAt{Match: a, Lines: b}},
			{Set: &SetKey{Section: sec, Key: strings.TrimSpace(strings.ReplaceAll(a, "=", "")), Value: strings.TrimSpace(b)}},
			{Unset: &UnsetKey{Section: sec, Key: a}},
			{RemoveLines: &a},
		}
		for i, e := range edits {
			if e.Set != nil && (e.Set.Key == "" || strings.ContainsAny(e.Set.Key+sec, "[]")) {
				continue
			}
			once, _, err := applyEdit(text, e)
			if err != nil {
				continue
			}
			if e.Replace != nil && !strings.Contains(b, a) && strings.Contains(string(once), a) {
				continue // the replacement made new occurrences (documented: changed again)
			}
			twice, what, err := applyEdit(once, e)
			if err != nil || !bytes.Equal(once, twice) {
				t.Fatalf("edit %d (%+v) is not idempotent on %q: once %q, twice %q (%s, %v)", i, e, text, once, twice, what, err)
			}
		}
	})
}
