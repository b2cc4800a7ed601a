package backup

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// ManifestFormat is the version of the content layout (info.json, the
// entries, manifest.json) that Pack writes and Unpack reads. It is recorded
// in info.json, so a newer layout is refused before anything is written.
const ManifestFormat = 1

const (
	infoName        = "info.json"
	manifestName    = "manifest.json"
	maxInfoSize     = 64 << 10
	maxManifestSize = 16 << 20 // some 70,000 entries
	maxNameLen      = 4096

	// zstdWindow bounds the decompressor's memory: Unpack refuses frames
	// that declare a larger window.
	zstdWindow = 8 << 20
)

// Info describes the server a backup was taken from.
type Info struct {
	ZonekitVersion string    `json:"zonekit_version"`
	Zone           string    `json:"zone"`
	ZoneID         string    `json:"zone_id"`
	Server         string    `json:"server"`
	ServerID       string    `json:"server_id"`
	Created        time.Time `json:"created"`
	CertAuth       bool      `json:"cert_auth"` // the zone CA key pair is inside
}

// equal compares Infos, with times compared as instants.
func (i Info) equal(o Info) bool {
	t1, t2 := i.Created, o.Created
	i.Created, o.Created = time.Time{}, time.Time{}
	return i == o && t1.Equal(t2)
}

// infoFile is info.json: the Info with the content format beside it.
type infoFile struct {
	Format int `json:"format"`
	Info
}

// Source is one file or directory to put in a backup.
type Source struct {
	Name    string      // slash-separated path relative to the server home, e.g. "conf/security/zone-ca.key"
	Mode    fs.FileMode // permission bits, plus fs.ModeDir for directories; setuid, setgid and sticky bits are not kept
	ModTime time.Time
	UID     int
	GID     int
	Size    int64                         // files: the exact byte count Open will yield
	Open    func() (io.ReadCloser, error) // files: called once, when the file's turn comes; nil for directories
	// WriteTo, for a file instead of Open, writes its content to w when
	// its turn comes (a store snapshot's Tx.WriteTo). w is an
	// io.ReaderFrom: a copy from a file through io.Copy reads straight
	// into the buffers that are compressed and hashed, with no pipe and
	// no copy in between.
	WriteTo func(w io.Writer) (int64, error)
	// Prefetch, if not nil, asks the system to read the file's content
	// into memory ahead of Open (a hint: its failure is Open's to
	// report). Pack calls it from another goroutine a few files before
	// the file's turn, for files of up to prefetchMax bytes.
	Prefetch func()
}

// Entry is one file or directory in a backup, as listed in its manifest.
type Entry struct {
	Path    string      // slash-separated, relative to the server home
	Mode    fs.FileMode // permission bits, plus fs.ModeDir for directories
	UID     int
	GID     int
	ModTime time.Time
	Size    int64
	SHA256  string // lower-case hex of the content; files only
}

// Manifest lists everything in a backup. Its JSON form is manifest.json.
type Manifest struct {
	Format  int     `json:"format"`
	Info    Info    `json:"info"`
	Entries []Entry `json:"entries"`
}

// entryJSON is an Entry in manifest.json: the type and the octal mode are
// spelled out so that other tools can read them without Go's FileMode bits.
type entryJSON struct {
	Path    string    `json:"path"`
	Type    string    `json:"type"` // "file" or "dir"
	Mode    string    `json:"mode"` // four octal digits, "0640"
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	ModTime time.Time `json:"mtime"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256,omitempty"`
}

// MarshalJSON writes the entry as manifest.json spells it.
func (e Entry) MarshalJSON() ([]byte, error) {
	typ := "file"
	if e.Mode.IsDir() {
		typ = "dir"
	}
	return json.Marshal(entryJSON{
		Path: e.Path, Type: typ, Mode: fmt.Sprintf("%04o", uint32(e.Mode.Perm())),
		UID: e.UID, GID: e.GID, ModTime: e.ModTime, Size: e.Size, SHA256: e.SHA256,
	})
}

// UnmarshalJSON reads an entry of manifest.json.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var j entryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if len(j.Mode) != 4 || j.Mode[0] != '0' {
		return fmt.Errorf("entry %q: mode %q is not four octal digits", j.Path, j.Mode)
	}
	perm, err := strconv.ParseUint(j.Mode, 8, 32)
	if err != nil {
		return fmt.Errorf("entry %q: mode %q is not four octal digits", j.Path, j.Mode)
	}
	mode := fs.FileMode(perm)
	switch j.Type {
	case "file":
	case "dir":
		mode |= fs.ModeDir
	default:
		return fmt.Errorf("entry %q: unknown type %q", j.Path, j.Type)
	}
	*e = Entry{Path: j.Path, Mode: mode, UID: j.UID, GID: j.GID, ModTime: j.ModTime, Size: j.Size, SHA256: j.SHA256}
	return nil
}

// checkName says why name cannot be the path of an entry, or returns nil.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty path")
	case len(name) > maxNameLen:
		return fmt.Errorf("path longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("path is not UTF-8")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("absolute path")
	case strings.ContainsAny(name, "\\\x00"):
		return fmt.Errorf("backslash or NUL in path")
	case name == ".." || strings.HasPrefix(name, "../") || strings.HasSuffix(name, "/..") || strings.Contains(name, "/../"):
		return fmt.Errorf("path with a .. element")
	case name == "." || !fs.ValidPath(name):
		return fmt.Errorf("not a clean relative path")
	case name == infoName || name == manifestName:
		return fmt.Errorf("reserved name")
	}
	return nil
}

// parents returns the directories above name, outermost first.
func parents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	return out
}

func newDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdWindow))
}
