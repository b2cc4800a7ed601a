package content

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
)

// Manifest is <ID>/manifest.json: zonekit's own description of a built
// package, with SHA-256 digests of the archive and of every fragment.
type Manifest struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	OS           string     `json:"os"`
	Format       string     `json:"format,omitempty"` // tar.gz or zip; empty without archive
	Size         int64      `json:"size"`
	MD5          string     `json:"md5,omitempty"`
	SHA256       string     `json:"sha256,omitempty"`
	FragmentSize int64      `json:"fragment_size"`
	Fragments    []Fragment `json:"fragments"`
	Created      time.Time  `json:"created"`
}

// Fragment is one piece of a package's archive.
type Fragment struct {
	Name   string `json:"name"` // <ID>-<n>
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// File names inside a package's directory besides the fragments.
const (
	InfoFile     = "info"
	ManifestFile = "manifest.json"
	stagingMark  = ".staging-"
)

// Repo is a content repository: one directory per package.
type Repo struct {
	dir string
	// CPKTrust gives the CAs whose signature a CPK package must carry (the
	// zone's); without it no CPK is accepted.
	CPKTrust func() []*x509.Certificate
}

// NewRepo opens the repository in dir (created when missing).
func NewRepo(dir string) (*Repo, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("content repository: %w", err)
	}
	return &Repo{dir: dir}, nil
}

// Dir is the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// PackageDir is where package id lives.
func (r *Repo) PackageDir(id string) string { return filepath.Join(r.dir, id) }

// Exists reports whether package id has a directory.
func (r *Repo) Exists(id string) bool {
	_, err := os.Lstat(r.PackageDir(id))
	return err == nil
}

// Manifest reads package id's manifest.
func (r *Repo) Manifest(id string) (*Manifest, error) {
	if !ValidID(id) {
		return nil, errkind.New(errkind.NotFound, "package %q not found", id)
	}
	data, err := os.ReadFile(filepath.Join(r.PackageDir(id), ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errkind.New(errkind.NotFound, "package %s has no content in %s", id, r.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", id, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("package %s: corrupt %s: %w", id, ManifestFile, err)
	}
	return &m, nil
}

// Info reads package id's info file as served.
func (r *Repo) Info(id string) ([]byte, error) {
	if !ValidID(id) {
		return nil, errkind.New(errkind.NotFound, "package %q not found", id)
	}
	return os.ReadFile(filepath.Join(r.PackageDir(id), InfoFile))
}

// Remove deletes package id's directory. The directory is first renamed
// aside so that a half-removed package is never served.
func (r *Repo) Remove(id string) error {
	if !ValidID(id) {
		return errkind.New(errkind.NotFound, "package %q not found", id)
	}
	dir := r.PackageDir(id)
	aside := filepath.Join(r.dir, stagingMark+"rm-"+id+"-"+randomSuffix())
	if err := os.Rename(dir, aside); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove package %s: %w", id, err)
	}
	atomicfile.SyncDir(r.dir)
	return os.RemoveAll(aside)
}

// Sweep removes what interrupted builds and removals left behind.
func (r *Repo) Sweep() error {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("content repository: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagingMark) {
			if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// IDs lists the package directories present, numerically.
func (r *Repo) IDs() ([]string, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("content repository: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && ValidID(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ServedFile resolves a request for file of package id to a path in the
// repository, refusing anything but the info file, the manifest and the
// package's own fragments. plain is true for the plain-HTTP listener,
// which serves fragments only: the info file and manifest tell an agent
// what to run and which digests to trust, so they travel over HTTPS.
func (r *Repo) ServedFile(id, file string, plain bool) (string, bool) {
	if !ValidID(id) {
		return "", false
	}
	switch file {
	case InfoFile, ManifestFile:
		if plain {
			return "", false
		}
	default:
		n, ok := strings.CutPrefix(file, id+"-")
		if !ok || n == "" || n[0] == '0' || len(n) > 9 {
			return "", false
		}
		if _, err := strconv.Atoi(n); err != nil {
			return "", false
		}
	}
	return filepath.Join(r.dir, id, file), true
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
