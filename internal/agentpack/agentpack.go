// Package agentpack builds agent install packs: per platform, one file that
// carries zac, the zone CA certificate, the zone's server list and
// optionally a registration key, and installs, registers and enables the
// agent without asking anything. Linux gets a self-contained shell
// installer and a .deb, Windows a zip with install.cmd. A pack directory
// also holds SHA256SUMS and manifest.json, which the zone server publishes
// under /zenworks-setup.
package agentpack

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"debug/pe"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/pki"
)

//go:embed setup.sh install.sh postinst prerm postrm install.cmd
var scripts embed.FS

// ManifestFile and SumsFile are the index files of a pack directory.
const (
	ManifestFile = "manifest.json"
	SumsFile     = "SHA256SUMS"
)

// Platform is an operating system and architecture, as Go names them.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// DefaultPlatforms are the platforms packs are built for unless told otherwise.
func DefaultPlatforms() []Platform {
	return []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}}
}

// ParsePlatform reads "os/arch"; only the supported platforms are accepted.
func ParsePlatform(s string) (Platform, error) {
	for _, p := range DefaultPlatforms() {
		if p.String() == s {
			return p, nil
		}
	}
	var names []string
	for _, p := range DefaultPlatforms() {
		names = append(names, p.String())
	}
	return Platform{}, errkind.New(errkind.Usage, "platform %q: want one of %s", s, strings.Join(names, ", "))
}

// ZacName is the file name of a prebuilt zac for p (zac-linux-amd64,
// zac-windows-amd64.exe), as `make agents` writes it.
func (p Platform) ZacName() string {
	n := "zac-" + p.OS + "-" + p.Arch
	if p.OS == "windows" {
		n += ".exe"
	}
	return n
}

// Spec is what goes into a set of packs.
type Spec struct {
	Name      string // custom pack name; empty for the default packs
	Zone      string
	Version   string // zac's version, for the .deb and the manifest
	CACertPEM []byte
	Servers   []string // https://HOST:PORT, preferred first
	RegKey    string
	Interval  time.Duration // the agent service's refresh interval; 0 for zac's default
	Zac       map[Platform]string
	Platforms []Platform
	Now       time.Time
}

// File is one built pack.
type File struct {
	Name     string `json:"name"`
	Platform string `json:"platform"`
	Kind     string `json:"kind"` // sh, deb or zip
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// Manifest describes a pack directory.
type Manifest struct {
	Name            string    `json:"name,omitempty"`
	Zone            string    `json:"zone"`
	Version         string    `json:"version"`
	Built           time.Time `json:"built"`
	CAFingerprint   string    `json:"ca_sha256_fingerprint"`
	Servers         []string  `json:"servers"`
	RegistrationKey bool      `json:"registration_key"`
	Interval        string    `json:"interval,omitempty"`
	Files           []File    `json:"files"`
}

// ValidName reports whether s may name a custom pack (it becomes a
// directory and a URL segment).
func ValidName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func (s *Spec) check() error {
	if s.Name != "" && !ValidName(s.Name) {
		return errkind.New(errkind.Usage, "pack name %q: use letters, digits, '-', '_' and '.'", s.Name)
	}
	if _, err := pki.ParseCertPEM(s.CACertPEM); err != nil {
		return fmt.Errorf("zone CA certificate: %w", err)
	}
	if len(s.Servers) == 0 {
		return errkind.New(errkind.Usage, "no zone server to put in the packs (--server https://HOST:PORT)")
	}
	for _, sv := range s.Servers {
		u, err := url.Parse(sv)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/" || strings.ContainsAny(sv, " \t\r\n\"'`$\\") {
			return errkind.New(errkind.Usage, "server %q: want https://HOST:PORT", sv)
		}
	}
	if strings.ContainsAny(s.RegKey, " \t\r\n\"'`$\\%!&|<>^") {
		return errkind.New(errkind.Usage, "registration key %q: spaces and shell characters are not allowed in a pack", s.RegKey)
	}
	if len(s.Platforms) == 0 {
		return errkind.New(errkind.Usage, "no platform to build packs for")
	}
	for _, p := range s.Platforms {
		path, ok := s.Zac[p]
		if !ok {
			return errkind.New(errkind.NotFound, "no zac binary for %s", p)
		}
		if err := CheckBinary(path, p); err != nil {
			return err
		}
	}
	return nil
}

// CheckBinary reports whether the file at path is an executable for p, so
// that a mixed-up --zac-dir never ships an agent that cannot start.
func CheckBinary(path string, p Platform) error {
	want := map[string]struct {
		elf elf.Machine
		pe  uint16
	}{"amd64": {elf.EM_X86_64, pe.IMAGE_FILE_MACHINE_AMD64}, "arm64": {elf.EM_AARCH64, pe.IMAGE_FILE_MACHINE_ARM64}}[p.Arch]
	switch p.OS {
	case "linux":
		f, err := elf.Open(path)
		if err != nil {
			return errkind.New(errkind.Usage, "zac for %s: %s is not a Linux executable: %v", p, path, err)
		}
		defer f.Close()
		if f.Machine != want.elf {
			return errkind.New(errkind.Usage, "zac for %s: %s is built for %s", p, path, f.Machine)
		}
	case "windows":
		f, err := pe.Open(path)
		if err != nil {
			return errkind.New(errkind.Usage, "zac for %s: %s is not a Windows executable: %v", p, path, err)
		}
		defer f.Close()
		if f.Machine != want.pe {
			return errkind.New(errkind.Usage, "zac for %s: %s is built for machine %#x", p, path, f.Machine)
		}
	}
	return nil
}

type member struct {
	name string
	mode int64
	data []byte
}

// payload is what every pack carries besides zac.
func (s *Spec) payload() []member {
	m := []member{
		{"cacert.pem", 0o644, s.CACertPEM},
		{"servers", 0o644, []byte(strings.Join(s.Servers, "\n") + "\n")},
		{"settings", 0o644, []byte(fmt.Sprintf("zone=%s\ninterval=%s\n", s.Zone, s.interval()))},
	}
	if s.RegKey != "" {
		m = append(m, member{"regkey", 0o600, []byte(s.RegKey + "\n")})
	}
	return m
}

func (s *Spec) interval() string {
	if s.Interval <= 0 {
		return "10m"
	}
	return s.Interval.String()
}

func (s *Spec) fileName(p Platform, kind string) string {
	base := "zonekit-agent"
	if s.Name != "" {
		base += "-" + s.Name
	}
	switch kind {
	case "deb":
		return fmt.Sprintf("%s_%s_%s.deb", base, debVersion(s.Version), p.Arch)
	case "zip":
		return fmt.Sprintf("%s-%s-%s.zip", base, p.OS, p.Arch)
	}
	return fmt.Sprintf("%s-%s-%s.sh", base, p.OS, p.Arch)
}

// Build writes the packs of spec into dir, replacing what was there only
// once everything is built: a failed build leaves the old packs in place.
func Build(dir string, s Spec) (Manifest, error) {
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	s.Now = s.Now.UTC().Truncate(time.Second)
	if err := s.check(); err != nil {
		return Manifest{}, err
	}
	ca, _ := pki.ParseCertPEM(s.CACertPEM)
	m := Manifest{Name: s.Name, Zone: s.Zone, Version: s.Version, Built: s.Now, CAFingerprint: pki.Fingerprint(ca, "sha256"),
		Servers: s.Servers, RegistrationKey: s.RegKey != "", Interval: s.interval()}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Manifest{}, fmt.Errorf("pack directory: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".new-")
	if err != nil {
		return Manifest{}, fmt.Errorf("pack directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Manifest{}, err
	}
	for _, p := range s.Platforms {
		zac, err := os.ReadFile(s.Zac[p])
		if err != nil {
			return Manifest{}, fmt.Errorf("zac for %s: %w", p, err)
		}
		var kinds []string
		if p.OS == "windows" {
			kinds = []string{"zip"}
		} else {
			kinds = []string{"sh", "deb"}
		}
		for _, kind := range kinds {
			var data []byte
			switch kind {
			case "sh":
				data, err = s.shellInstaller(p, zac)
			case "deb":
				data, err = s.deb(p, zac)
			case "zip":
				data, err = s.zip(p, zac)
			}
			if err != nil {
				return Manifest{}, fmt.Errorf("%s pack for %s: %w", kind, p, err)
			}
			name := s.fileName(p, kind)
			mode := os.FileMode(0o644)
			if kind == "sh" {
				mode = 0o755
			}
			if err := os.WriteFile(filepath.Join(tmp, name), data, mode); err != nil {
				return Manifest{}, err
			}
			sum := sha256.Sum256(data)
			m.Files = append(m.Files, File{Name: name, Platform: p.String(), Kind: kind, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
		}
	}
	var sums bytes.Buffer
	for _, f := range m.Files {
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Name)
	}
	if err := os.WriteFile(filepath.Join(tmp, SumsFile), sums.Bytes(), 0o644); err != nil {
		return Manifest{}, err
	}
	mj, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, ManifestFile), append(mj, '\n'), 0o644); err != nil {
		return Manifest{}, err
	}
	if err := swapDir(tmp, dir); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// swapDir puts the new directory in place of dir; a reader (the zone
// server) sees the old packs or the new ones, never a mix of files from a
// half-written build.
func swapDir(newDir, dir string) error {
	old := dir + ".old"
	os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(newDir, dir); err != nil {
		os.Rename(old, dir)
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	return os.RemoveAll(old)
}

// ReadManifest reads the manifest of a pack directory.
func ReadManifest(dir string) (Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Manifest{}, errkind.New(errkind.NotFound, "no packs in %s: build them with 'zconfigure -c CreateExtractorPacks'", dir)
		}
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return m, nil
}

// Remove deletes a pack directory.
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

func script(name string) string {
	b, err := scripts.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return string(b)
}

var unameOf = map[Platform]string{
	{"linux", "amd64"}: "Linux/x86_64 | Linux/amd64",
	{"linux", "arm64"}: "Linux/aarch64 | Linux/arm64",
}

// shellInstaller is install.sh with the setup functions spliced in and a
// gzipped tar of zac and the payload appended after its last line.
func (s *Spec) shellInstaller(p Platform, zac []byte) ([]byte, error) {
	var payload bytes.Buffer
	members := append([]member{{"zac", 0o755, zac}}, s.payload()...)
	if err := writeTarGz(&payload, members, s.Now, false); err != nil {
		return nil, err
	}
	head := strings.NewReplacer("@@SETUP@@", script("setup.sh"), "@@ZONE@@", s.Zone, "@@PLATFORM@@", p.String(),
		"@@VERSION@@", s.Version, "@@UNAME@@", unameOf[p]).Replace(script("install.sh"))
	lines := strings.Count(head, "\n")
	head = strings.Replace(head, "@@PAYLOAD_LINE@@", fmt.Sprint(lines+1), 1)
	return append([]byte(head), payload.Bytes()...), nil
}

func writeTarGz(w io.Writer, members []member, mtime time.Time, dotSlash bool) error {
	gz, err := newGzip(w)
	if err != nil {
		return err
	}
	tw := newTar(gz)
	dirs := map[string]bool{}
	for _, m := range members {
		name := m.name
		if dotSlash {
			// Debian's data.tar lists parent directories before their files.
			var parts []string
			for d := filepath.Dir(name); d != "." && d != "/"; d = filepath.Dir(d) {
				parts = append([]string{d}, parts...)
			}
			for _, d := range parts {
				if !dirs[d] {
					dirs[d] = true
					if err := tw.dir("./"+d+"/", mtime); err != nil {
						return err
					}
				}
			}
			name = "./" + name
		}
		if err := tw.file(name, m.mode, m.data, mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// sortedMembers keeps archives in a stable order.
func sortedMembers(m []member) []member {
	sort.Slice(m, func(i, j int) bool { return m[i].name < m[j].name })
	return m
}

// Place puts a complete pack directory newDir (built or copied beside dir)
// in place of dir in one step.
func Place(newDir, dir string) error { return swapDir(newDir, dir) }

// ValidFileName reports whether a manifest's file name is a plain name of
// a pack directory (manifests from peers are checked before use).
func ValidFileName(s string) bool {
	return s != "" && s != ManifestFile && s != SumsFile && !strings.HasPrefix(s, ".") &&
		!strings.ContainsAny(s, `/\`) && len(s) <= 200
}
