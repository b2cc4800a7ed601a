package content

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"zonekit/internal/errkind"
)

func testDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func pack(t *testing.T, format string, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := PackDir(testDir(t, files), format, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func spec(action, command string) Spec {
	return Spec{Name: "demo", OS: OSLinux, Priority: 5, Action: action, Command: command, FragmentSize: 100}
}

func TestBuildTarGz(t *testing.T) {
	big := make([]byte, 300_000)
	rand.New(rand.NewSource(1)).Read(big)
	archive := pack(t, FormatTarGz, map[string]string{"run.sh": "#!/bin/sh\necho hi\n", "data/blob": string(big)})
	repo, err := NewRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := spec(ActionLaunch, "run.sh --quiet")
	s.FragmentSize = 64 << 10
	m, err := repo.Build("1700000001", s, bytes.NewReader(archive), time.Unix(1700000001, 0))
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(archive)
	sha := sha256.Sum256(archive)
	if m.MD5 != hex.EncodeToString(sum[:]) || m.SHA256 != hex.EncodeToString(sha[:]) || m.Size != int64(len(archive)) {
		t.Fatalf("manifest digests %+v", m)
	}
	want := (len(archive) + (64<<10 - 1)) / (64 << 10)
	if len(m.Fragments) != want {
		t.Fatalf("%d fragments, want %d", len(m.Fragments), want)
	}
	var joined []byte
	for i, f := range m.Fragments {
		if f.Name != FragmentName("1700000001", i+1) {
			t.Fatalf("fragment %d named %s", i, f.Name)
		}
		data, err := os.ReadFile(filepath.Join(repo.PackageDir("1700000001"), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		if hex.EncodeToString(h[:]) != f.SHA256 || int64(len(data)) != f.Size {
			t.Fatalf("fragment %s digest or size wrong", f.Name)
		}
		joined = append(joined, data...)
	}
	if !bytes.Equal(joined, archive) {
		t.Fatal("fragments do not make up the archive")
	}
	raw, err := repo.Info("1700000001")
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParseInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "1700000001" || info.Digest != m.MD5 || info.Frags != want || info.Name != "run.sh --quiet" || info.Action != "LAUNCH" {
		t.Fatalf("info %+v", info)
	}
	if got, _ := repo.Manifest("1700000001"); got == nil || got.SHA256 != m.SHA256 {
		t.Fatal("manifest does not read back")
	}
	if _, err := repo.Build("1700000001", s, bytes.NewReader(archive), time.Now()); errkind.Of(err) != errkind.Exists {
		t.Fatalf("second build of the same id: %v", err)
	}
}

func TestBuildZipAndNoArchive(t *testing.T) {
	repo, _ := NewRepo(t.TempDir())
	s := spec(ActionLaunch, "setup.exe /S")
	s.OS = OSWindows
	archive := pack(t, FormatZip, map[string]string{"setup.exe": "MZ...", "docs/readme.txt": "hello"})
	m, err := repo.Build("1700000002", s, bytes.NewReader(archive), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != FormatZip || len(m.Fragments) != (len(archive)+99)/100 {
		t.Fatalf("manifest %+v", m)
	}
	m, err = repo.Build("1700000003", spec(ActionExecute, "apt-get -y install htop"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := repo.Info("1700000003")
	if len(m.Fragments) != 0 || !strings.Contains(string(raw), `FRAGS="0"`) || !strings.Contains(string(raw), `DIGEST=""`) {
		t.Fatalf("info without archive: %s", raw)
	}
}

// Bad input: one clear error, nothing left in the repository.
func TestBuildRefusals(t *testing.T) {
	good := pack(t, FormatTarGz, map[string]string{"run.sh": "echo"})
	zipped := pack(t, FormatZip, map[string]string{"run.sh": "echo"})
	corruptZip := append([]byte(nil), zipped...)
	corruptZip[len(corruptZip)/3] ^= 0xff
	cases := []struct {
		name    string
		s       Spec
		archive []byte
		kind    errkind.Kind
		msg     string
	}{
		{"not an archive", spec(ActionLaunch, "run.sh"), []byte("just some text, not an archive at all"), errkind.Invalid, "neither zip, tar.gz nor a CPK"},
		{"empty archive", spec(ActionLaunch, "run.sh"), []byte{}, errkind.Invalid, "neither zip, tar.gz nor a CPK"},
		{"truncated tar.gz", spec(ActionLaunch, "run.sh"), good[:len(good)-10], errkind.Invalid, "not a valid tar.gz"},
		{"corrupt zip", spec(ActionLaunch, "run.sh"), corruptZip, errkind.Invalid, "zip"},
		{"launch file missing", spec(ActionLaunch, "setup.sh"), good, errkind.Invalid, "no file setup.sh"},
		{"priority", func() Spec { s := spec(ActionLaunch, "run.sh"); s.Priority = 11; return s }(), good, errkind.Usage, "out of range"},
		{"fragment size zero", func() Spec { s := spec(ActionLaunch, "run.sh"); s.FragmentSize = 0; return s }(), good, errkind.Usage, "fragment-size"},
		{"store without path", spec(ActionStore, ""), good, errkind.Usage, "--path"},
		{"launch with hyphen", spec(ActionLaunch, "my-setup.sh"), good, errkind.Usage, "hyphen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			repo, _ := NewRepo(dir)
			_, err := repo.Build("1700000009", c.s, bytes.NewReader(c.archive), time.Now())
			if err == nil || errkind.Of(err) != c.kind || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v (kind %v), want kind %v with %q", err, errkind.Of(err), c.kind, c.msg)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Fatalf("repository not empty after a refused build: %v", entries)
			}
		})
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("connection reset")
	}
	p[0], p[1] = 0x1f, 0x8b
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestBuildReadFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	repo, _ := NewRepo(dir)
	s := spec(ActionExecute, "true")
	s.FragmentSize = 1 << 20
	_, err := repo.Build("1700000010", s, io.MultiReader(&failingReader{n: 3 << 20}), time.Now())
	if err == nil {
		t.Fatal("build from a failing reader succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestInfoEscapes(t *testing.T) {
	s := spec(ActionExecute, `sh -c "echo a<b && echo 'c'" > /tmp/x`)
	s.NotifyUser, s.NotifyText, s.NotifyCount = true, "Line one\nLine \"two\" & more", 30
	raw := InfoFor("1700000004", s, "", 0).Marshal()
	if bytes.ContainsAny(raw[:len(raw)-1], "\n") || bytes.Contains(raw, []byte(`"two"`)) {
		t.Fatalf("unescaped info: %s", raw)
	}
	i, err := ParseInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	if i.Command != s.Command || i.NotifyText != s.NotifyText || i.NotifyCount != "30" || !i.NotifyUser {
		t.Fatalf("round trip: %+v", i)
	}
}

func TestServedFile(t *testing.T) {
	r := &Repo{dir: "/repo"}
	for _, c := range []struct {
		id, file string
		plain    bool
		ok       bool
	}{
		{"17", "17-1", true, true}, {"17", "info", false, true}, {"17", "info", true, false},
		{"17", "manifest.json", true, false}, {"17", "18-1", false, false}, {"17", "17-0", false, false},
		{"17", "17-01", false, false}, {"17", "..", false, false}, {"../x", "info", false, false}, {"17", "17-1x", false, false},
	} {
		if _, ok := r.ServedFile(c.id, c.file, c.plain); ok != c.ok {
			t.Errorf("ServedFile(%q, %q, plain=%v) = %v", c.id, c.file, c.plain, ok)
		}
	}
}

func FuzzParseInfo(f *testing.F) {
	f.Add(InfoFor("1700000004", spec(ActionExecute, "sh run.sh"), "", 0).Marshal())
	f.Add([]byte(`<DOWNLOAD ID="1" PRI="5" ACT="LAUNCH" DIGEST="0123456789abcdef0123456789abcdef" FRAGS="2" DIGEST_ALGO="MD5" NAME="x"/>`))
	f.Add([]byte(`<?xml version="1.0"?><DOWNLOAD ID="1`))
	f.Fuzz(func(t *testing.T, data []byte) {
		i, err := ParseInfo(data)
		if err != nil {
			return
		}
		// Whatever parses must survive our own writer and parse the same.
		j, err := ParseInfo(i.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if j.ID != i.ID || j.Frags != i.Frags || j.Digest != i.Digest || j.Priority != i.Priority {
			t.Fatalf("round trip changed %+v to %+v", i, j)
		}
	})
}

func FuzzListTarGz(f *testing.F) {
	var b bytes.Buffer
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte("echo"), 0o755)
	PackDir(dir, FormatTarGz, &b)
	f.Add(b.Bytes())
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		ListTarGz(bytes.NewReader(data))
	})
}

func FuzzListZip(f *testing.F) {
	var b bytes.Buffer
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "setup.exe"), []byte("MZ"), 0o644)
	PackDir(dir, FormatZip, &b)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		ListZip(bytes.NewReader(data), int64(len(data)))
	})
}

// A build streams: what it allocates does not depend on the archive's size.
func TestBuildMemoryDoesNotGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 36 MiB")
	}
	alloc := func(size int64) uint64 {
		pr, pw := io.Pipe()
		go func() {
			gz, _ := gzip.NewWriterLevel(pw, gzip.NoCompression)
			tw := tar.NewWriter(gz)
			tw.WriteHeader(&tar.Header{Name: "blob", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
			io.CopyN(tw, zeros{}, size)
			tw.Close()
			gz.Close()
			pw.Close()
		}()
		repo, _ := NewRepo(t.TempDir())
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := spec(ActionExecute, "true")
		s.FragmentSize = 4 << 20
		if _, err := repo.Build("1700000020", s, pr, time.Now()); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(4<<20), alloc(32<<20)
	// The generator's own buffers are counted too; 8 times the data must
	// not cost more than a few MiB more.
	if large > small+8<<20 {
		t.Fatalf("allocated %d MiB for 4 MiB and %d MiB for 32 MiB of archive", small>>20, large>>20)
	}
	t.Logf("allocated %d KiB for 4 MiB, %d KiB for 32 MiB", small>>10, large>>10)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Packing the same files twice gives the same archive (no access or change
// times): packages built from one tree share their fragments, which agents
// and satellites reuse by digest.
func TestPackDirDeterministic(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"a.txt": "hello\n", "sub/b.sh": "#!/bin/sh\n"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, format := range []string{"tar.gz", "zip"} {
		var a, b bytes.Buffer
		if err := PackDir(dir, format, &a); err != nil {
			t.Fatal(err)
		}
		os.ReadFile(filepath.Join(dir, "a.txt")) // a read moves the access time
		if err := PackDir(dir, format, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: two packings of the same tree differ (%d and %d bytes)", format, a.Len(), b.Len())
		}
	}
}
