package agentpack

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"debug/pe"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"time"
	"zonekit/internal/testenv"

	"zonekit/internal/pki"
)

// fakeExe writes the smallest file debug/elf or debug/pe accepts as an
// executable for p: enough for the packer, which never runs it.
func fakeExe(t *testing.T, dir string, p Platform) string {
	t.Helper()
	var b bytes.Buffer
	if p.OS == "linux" {
		m := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Arch]
		b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		for _, v := range []any{uint16(elf.ET_EXEC), uint16(m), uint32(1), uint64(0), uint64(0), uint64(0), uint32(0),
			uint16(64), uint16(56), uint16(0), uint16(64), uint16(0), uint16(0)} {
			binary.Write(&b, binary.LittleEndian, v)
		}
	} else {
		dos := make([]byte, 64)
		copy(dos, "MZ")
		binary.LittleEndian.PutUint32(dos[0x3c:], 64)
		b.Write(dos)
		b.WriteString("PE\x00\x00")
		binary.Write(&b, binary.LittleEndian, pe.FileHeader{Machine: pe.IMAGE_FILE_MACHINE_AMD64})
	}
	b.WriteString("zac for " + p.String())
	path := filepath.Join(dir, p.ZacName())
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func testSpec(t *testing.T) Spec {
	t.Helper()
	ca, err := pki.NewCA("Test", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := Spec{Zone: "Test", Version: "1.2.3", CACertPEM: pki.EncodeCertPEM(ca.Cert), Servers: []string{"https://a.example:443", "https://b.example:8443"},
		RegKey: "lab-key", Interval: 5 * time.Minute, Platforms: DefaultPlatforms(), Zac: map[Platform]string{}, Now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, p := range s.Platforms {
		s.Zac[p] = fakeExe(t, dir, p)
	}
	return s
}

func TestBuildAllPlatforms(t *testing.T) {
	s := testSpec(t)
	dir := filepath.Join(t.TempDir(), "default")
	m, err := Build(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"zonekit-agent-linux-amd64.sh", "zonekit-agent_1.2.3_amd64.deb", "zonekit-agent-linux-arm64.sh",
		"zonekit-agent_1.2.3_arm64.deb", "zonekit-agent-windows-amd64.zip"}
	if len(m.Files) != len(want) {
		t.Fatalf("files %+v, want %v", m.Files, want)
	}
	sums, _ := os.ReadFile(filepath.Join(dir, SumsFile))
	for i, f := range m.Files {
		if f.Name != want[i] {
			t.Errorf("file %d = %s, want %s", i, f.Name, want[i])
		}
		data, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != f.SHA256 || !strings.Contains(string(sums), f.SHA256+"  "+f.Name+"\n") {
			t.Errorf("%s: checksum not recorded", f.Name)
		}
	}
	got, err := ReadManifest(dir)
	if err != nil || got.Zone != "Test" || !got.RegistrationKey || got.Interval != "5m0s" || len(got.Servers) != 2 {
		t.Fatalf("manifest %+v, %v", got, err)
	}
	checkShell(t, filepath.Join(dir, want[2]), s.Zac[Platform{"linux", "arm64"}])
	checkDeb(t, filepath.Join(dir, want[3]), "arm64", s.Zac[Platform{"linux", "arm64"}])
	checkZip(t, filepath.Join(dir, want[4]), s.Zac[Platform{"windows", "amd64"}])
}

// checkShell extracts the payload the way the installer does (tail -n +N).
func checkShell(t *testing.T, path, zac string) {
	data, _ := os.ReadFile(path)
	r := bufio.NewReader(bytes.NewReader(data))
	var n, skip int
	var head strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal("no payload line")
		}
		n++
		head.WriteString(line)
		if strings.HasPrefix(line, "tail -n +") {
			skip, _ = strconv.Atoi(strings.Fields(line)[2][1:])
		}
		if strings.HasPrefix(line, "# registration key) follows this line") {
			break
		}
	}
	if skip != n+1 {
		t.Fatalf("payload starts at line %d, installer says %d", n+1, skip)
	}
	files := untar(t, r)
	want, _ := os.ReadFile(zac)
	if !bytes.Equal(files["zac"], want) || files["regkey"] == nil || !strings.Contains(string(files["servers"]), "https://b.example:8443\n") {
		t.Fatalf("payload %v", keys(files))
	}
	if !strings.Contains(string(files["settings"]), "interval=5m0s\n") {
		t.Errorf("settings %q", files["settings"])
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(head.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sh -n: %v: %s", err, out)
		}
	}
}

func untar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[strings.TrimPrefix(h.Name, "./")] = b
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func checkDeb(t *testing.T, path, arch, zac string) {
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("!<arch>\n")) {
		t.Fatal("not an ar archive")
	}
	members := map[string][]byte{}
	var order []string
	for off := 8; off < len(data); {
		h := data[off : off+60]
		name := strings.TrimSpace(string(h[:16]))
		size, err := strconv.Atoi(strings.TrimSpace(string(h[48:58])))
		if err != nil || string(h[58:60]) != "`\n" {
			t.Fatalf("bad ar header %q", h)
		}
		members[name] = data[off+60 : off+60+size]
		order = append(order, name)
		off += 60 + size + size%2
	}
	if strings.Join(order, ",") != "debian-binary,control.tar.gz,data.tar.gz" || string(members["debian-binary"]) != "2.0\n" {
		t.Fatalf("members %v", order)
	}
	ctl := untar(t, bytes.NewReader(members["control.tar.gz"]))
	if !strings.Contains(string(ctl["control"]), "Architecture: "+arch+"\n") || !strings.Contains(string(ctl["postinst"]), "setup_agent") {
		t.Fatalf("control %s", ctl["control"])
	}
	files := untar(t, bytes.NewReader(members["data.tar.gz"]))
	want, _ := os.ReadFile(zac)
	if !bytes.Equal(files["usr/bin/zac"], want) || files["usr/share/zonekit-agent/cacert.pem"] == nil {
		t.Fatalf("data %v", keys(files))
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = bytes.NewReader(ctl["postinst"])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("postinst: sh -n: %v: %s", err, out)
		}
	}
	if dpkgDeb, err := exec.LookPath("dpkg-deb"); err == nil {
		if out, err := exec.Command(dpkgDeb, "--info", path).CombinedOutput(); err != nil {
			t.Errorf("dpkg-deb --info: %v: %s", err, out)
		}
	} else if testenv.CI() {
		t.Error("dpkg-deb is not installed; CI=true: the .deb must be read by dpkg-deb there")
	}
}

func checkZip(t *testing.T, path, zac string) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	want, _ := os.ReadFile(zac)
	cmd := string(files["zonekit-agent/install.cmd"])
	if !bytes.Equal(files["zonekit-agent/zac.exe"], want) || files["zonekit-agent/regkey"] == nil || !strings.Contains(cmd, "\r\n") ||
		strings.Contains(strings.ReplaceAll(cmd, "\r\n", ""), "\n") || !strings.Contains(cmd, "--interval 5m0s") {
		t.Fatalf("zip %v", keys(files))
	}
	// The script is read here, not run (no Windows machine): zac runs as
	// the zonekit-agent service, created once with its quoted command
	// line, restarted on failure, stopped for an upgrade of zac.exe (the
	// service holds it open), and the scheduled task of older packs goes.
	for _, want := range []string{
		`sc create zonekit-agent binPath= "\"%ZAC%\" --home \"%AGENT_HOME%\" agent --interval 5m0s" start= auto`,
		`sc failure zonekit-agent reset= 86400 actions= restart/60000/restart/60000/restart/600000`,
		`sc query zonekit-agent >nul 2>&1 && (sc stop zonekit-agent >nul 2>&1 & call :waitstop)`,
		`sc start zonekit-agent`,
		`schtasks /delete /tn zonekit-agent /f`,
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("install.cmd lacks %s", want)
		}
	}
	if strings.Contains(cmd, "schtasks /create") {
		t.Error("install.cmd still schedules a task")
	}
	// Every block opened is closed (a stray parenthesis ends cmd.exe's
	// parse of the whole script).
	if strings.Count(cmd, "(") != strings.Count(cmd, ")") {
		t.Errorf("install.cmd: %d ( and %d )", strings.Count(cmd, "("), strings.Count(cmd, ")"))
	}
	stop, copyExe := strings.Index(cmd, "sc stop zonekit-agent"), strings.Index(cmd, `copy /y "%SRC%zac.exe"`)
	if stop < 0 || copyExe < stop {
		t.Error("install.cmd copies zac.exe before stopping the service")
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	for name, mod := range map[string]func(*Spec){
		"no server":      func(s *Spec) { s.Servers = nil },
		"http server":    func(s *Spec) { s.Servers = []string{"http://a:80"} },
		"quoted server":  func(s *Spec) { s.Servers = []string{"https://a:1/$(reboot)"} },
		"key with space": func(s *Spec) { s.RegKey = "a b" },
		"bad name":       func(s *Spec) { s.Name = "../x" },
		"bad CA":         func(s *Spec) { s.CACertPEM = []byte("junk") },
		"wrong arch": func(s *Spec) {
			s.Zac[Platform{"linux", "arm64"}] = s.Zac[Platform{"linux", "amd64"}]
		},
		"linux as windows": func(s *Spec) {
			s.Zac[Platform{"windows", "amd64"}] = s.Zac[Platform{"linux", "amd64"}]
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := testSpec(t)
			dir := filepath.Join(t.TempDir(), "packs")
			if _, err := Build(dir, testSpec(t)); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
			mod(&s)
			if _, err := Build(dir, s); err == nil {
				t.Fatal("built")
			}
			after, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
			if !bytes.Equal(before, after) {
				t.Error("a refused build changed the packs")
			}
			ents, _ := os.ReadDir(filepath.Dir(dir))
			if len(ents) != 1 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{"1.2.3": "1.2.3", "v1.2.3": "1.2.3", "0.1.0-dev": "0.1.0-dev", "dev": "0~dev", "1.0 beta/2": "1.0+beta+2"} {
		if got := debVersion(in); got != want {
			t.Errorf("debVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	if p, err := ParsePlatform("linux/arm64"); err != nil || p != (Platform{"linux", "arm64"}) {
		t.Fatal(p, err)
	}
	if _, err := ParsePlatform("darwin/arm64"); err == nil {
		t.Fatal("darwin accepted")
	}
}
