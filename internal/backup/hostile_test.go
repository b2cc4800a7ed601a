package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Archives built by hand, as a hostile or broken writer would make them.

type rawEntry struct {
	hdr  tar.Header
	body []byte
}

func rawFile(name string, body []byte) rawEntry {
	return rawEntry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: int64(len(body)), ModTime: testInfo.Created}, body}
}

func rawDir(name string) rawEntry {
	return rawEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o700, ModTime: testInfo.Created}}
}

func rawLink(typ byte, name, target string) rawEntry {
	return rawEntry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o777, ModTime: testInfo.Created}}
}

func rawJSON(name string, v any) rawEntry {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return rawFile(name, b)
}

func rawInfo() rawEntry { return rawJSON(infoName, infoFile{Format: ManifestFormat, Info: testInfo}) }

func rawManifest(entries ...Entry) rawEntry {
	return rawJSON(manifestName, Manifest{Format: ManifestFormat, Info: testInfo, Entries: entries})
}

// entryOf is the manifest entry an honest writer would make for r.
func entryOf(r rawEntry) Entry {
	e := Entry{Path: strings.TrimSuffix(r.hdr.Name, "/"), Mode: fs.FileMode(r.hdr.Mode).Perm(), ModTime: r.hdr.ModTime}
	if r.hdr.Typeflag == tar.TypeDir {
		e.Mode |= fs.ModeDir
		return e
	}
	sum := sha256.Sum256(r.body)
	e.Size, e.SHA256 = int64(len(r.body)), hex.EncodeToString(sum[:])
	return e
}

func entriesOf(rs ...rawEntry) []Entry {
	var out []Entry
	for _, r := range rs {
		out = append(out, entryOf(r))
	}
	return out
}

// archive writes the entries as a tar stream, then tail inside the zstd
// stream, then trailing after it.
func archive(t testing.TB, entries []rawEntry, tail, trailing []byte) []byte {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar body %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tarBuf.Write(tail)
	return append(compress(t, tarBuf.Bytes()), trailing...)
}

func compress(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// stagingTree lists what Unpack left in staging.
func stagingTree(t *testing.T, staging string) []string {
	var out []string
	filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(staging, p); rel != "." {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestHostileArchives(t *testing.T) {
	legit := rawFile("conf/a", []byte("hello"))
	legitDir := rawDir("conf/")
	honest := func(rs ...rawEntry) []rawEntry {
		return append(append([]rawEntry{rawInfo()}, rs...), rawManifest(entriesOf(rs...)...))
	}
	withManifest := func(m Manifest, rs ...rawEntry) []rawEntry {
		return append(append([]rawEntry{rawInfo()}, rs...), rawJSON(manifestName, m))
	}
	manifest := func(entries ...Entry) Manifest { return Manifest{Format: 1, Info: testInfo, Entries: entries} }
	badHash := entryOf(legit)
	badHash.SHA256 = strings.Repeat("0", 64)
	badSize := entryOf(legit)
	badSize.Size = 99
	asDir := entryOf(legit)
	asDir.Mode, asDir.Size, asDir.SHA256 = fs.ModeDir|0o700, 0, ""
	otherInfo := testInfo
	otherInfo.Server = "impostor"
	bigInfo := rawFile(infoName, bytes.Repeat([]byte(" "), maxInfoSize+1))
	info2 := rawJSON(infoName, infoFile{Format: 2, Info: testInfo})
	global := rawEntry{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global", PAXRecords: map[string]string{"comment": "x"}}}

	tests := []struct {
		name     string
		data     func(tmp string) []byte
		want     string   // in the error
		staging  []string // all that may be in staging afterwards
		notThere []string // paths relative to the staging's parent that must not exist
		newer    bool     // a refusal of a newer format, not damage
	}{
		{name: "parent element", data: func(string) []byte { return archive(t, honest(legit, rawFile("../x", []byte("evil"))), nil, nil) },
			want: "..", staging: []string{"conf", "conf/a"}, notThere: []string{"x"}},
		{name: "inner parent elements", data: func(string) []byte {
			return archive(t, honest(legit, rawFile("conf/../../x", []byte("evil"))), nil, nil)
		},
			want: "..", staging: []string{"conf", "conf/a"}, notThere: []string{"x"}},
		{name: "unclean path", data: func(string) []byte { return archive(t, honest(rawFile("conf/./a", []byte("evil"))), nil, nil) },
			want: "not a clean relative path"},
		{name: "directory with parent element", data: func(string) []byte { return archive(t, honest(rawDir("../d/")), nil, nil) },
			want: "..", notThere: []string{"d"}},
		{name: "absolute path", data: func(tmp string) []byte {
			return archive(t, honest(legit, rawFile(filepath.Join(tmp, "abs"), []byte("evil"))), nil, nil)
		}, want: "absolute", staging: []string{"conf", "conf/a"}, notThere: []string{"abs"}},
		{name: "absolute directory", data: func(tmp string) []byte { return archive(t, honest(rawDir(filepath.Join(tmp, "absdir")+"/")), nil, nil) },
			want: "absolute", notThere: []string{"absdir"}},
		{name: "backslash", data: func(string) []byte { return archive(t, honest(rawFile(`..\x`, []byte("evil"))), nil, nil) },
			want: "backslash"},
		{name: "symlink", data: func(string) []byte {
			return archive(t, honest(legit, rawLink(tar.TypeSymlink, "conf/l", "/")), nil, nil)
		}, want: "link", staging: []string{"conf", "conf/a"}},
		{name: "symlink, then a file through it", data: func(tmp string) []byte {
			return archive(t, honest(rawLink(tar.TypeSymlink, "evil", filepath.Join(tmp, "outside")), rawFile("evil/sentinel", []byte("overwritten"))), nil, nil)
		}, want: "link"},
		{name: "relative symlink out", data: func(string) []byte {
			return archive(t, honest(rawLink(tar.TypeSymlink, "evil", "../outside"), rawFile("evil/new", []byte("x"))), nil, nil)
		}, want: "link", notThere: []string{"outside/new"}},
		{name: "hard link out", data: func(string) []byte {
			return archive(t, honest(legit, rawLink(tar.TypeLink, "conf/h", "/etc/passwd")), nil, nil)
		}, want: "link", staging: []string{"conf", "conf/a"}},
		{name: "hard link in", data: func(string) []byte {
			return archive(t, honest(legit, rawLink(tar.TypeLink, "conf/h", "conf/a")), nil, nil)
		},
			want: "link", staging: []string{"conf", "conf/a"}},
		{name: "character device", data: func(string) []byte {
			return archive(t, honest(rawEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}}), nil, nil)
		}, want: "only files and directories"},
		{name: "block device", data: func(string) []byte {
			return archive(t, honest(rawEntry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8}}), nil, nil)
		}, want: "only files and directories"},
		{name: "fifo", data: func(string) []byte {
			return archive(t, honest(rawEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "p"}}), nil, nil)
		},
			want: "only files and directories"},
		{name: "sparse file", data: func(string) []byte {
			// PAX sparse 1.0: the map leads the data, the records give the
			// real size. tar.Writer drops GNU.sparse records, so a comment
			// of the same length is written and swapped for them.
			sparseMap := make([]byte, 512)
			copy(sparseMap, "1\n0\n0\n")
			recs := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
				paxRecord("GNU.sparse.name", "conf/s") + paxRecord("GNU.sparse.realsize", "1048576")
			comment := ""
			for len(paxRecord("comment", comment)) < len(recs) {
				comment += "x"
			}
			e := rawFile("conf/s", sparseMap)
			e.hdr.PAXRecords = map[string]string{"comment": comment}
			raw := tarBytes(t, honest(legit, e))
			raw = bytes.Replace(raw, []byte(paxRecord("comment", comment)), []byte(recs), 1)
			return compress(t, raw)
		}, want: "sparse", staging: []string{"conf", "conf/a"}},
		{name: "pax global header", data: func(string) []byte { return archive(t, honest(global, legit), nil, nil) },
			want: "only files and directories"},
		{name: "in manifest, not in archive", data: func(string) []byte {
			gone := entryOf(rawFile("conf/gone", []byte("x")))
			return archive(t, withManifest(manifest(entryOf(legit), gone), legit), nil, nil)
		}, want: `"conf/gone" is in manifest.json but not in the archive`, staging: []string{"conf", "conf/a"}},
		{name: "implicit directory listed in manifest", data: func(string) []byte {
			return archive(t, withManifest(manifest(entryOf(legitDir), entryOf(legit)), legit), nil, nil)
		}, want: `"conf" is in manifest.json but not in the archive`, staging: []string{"conf", "conf/a"}},
		{name: "in archive, not in manifest", data: func(string) []byte {
			return archive(t, withManifest(manifest(entryOf(legit)), legit, rawFile("conf/extra", []byte("x"))), nil, nil)
		}, want: `"conf/extra" is in the archive but not in manifest.json`, staging: []string{"conf", "conf/a", "conf/extra"}},
		{name: "bad hash", data: func(string) []byte { return archive(t, withManifest(manifest(badHash), legit), nil, nil) },
			want: "SHA-256", staging: []string{"conf", "conf/a"}},
		{name: "bad size", data: func(string) []byte { return archive(t, withManifest(manifest(badSize), legit), nil, nil) },
			want: "5 bytes in the archive, 99 in manifest.json", staging: []string{"conf", "conf/a"}},
		{name: "file listed as a directory", data: func(string) []byte { return archive(t, withManifest(manifest(asDir), legit), nil, nil) },
			want: "file in the archive but a directory", staging: []string{"conf", "conf/a"}},
		{name: "listed twice", data: func(string) []byte {
			return archive(t, withManifest(manifest(entryOf(legit), entryOf(legit)), legit), nil, nil)
		}, want: "twice", staging: []string{"conf", "conf/a"}},
		{name: "manifest lists a hostile path", data: func(string) []byte {
			evil := entryOf(rawFile("../x", nil))
			return archive(t, withManifest(manifest(entryOf(legit), evil), legit), nil, nil)
		}, want: "..", staging: []string{"conf", "conf/a"}},
		{name: "manifest of another server", data: func(string) []byte {
			return archive(t, withManifest(Manifest{Format: 1, Info: otherInfo, Entries: entriesOf(legit)}, legit), nil, nil)
		}, want: "different servers", staging: []string{"conf", "conf/a"}},
		{name: "manifest not JSON", data: func(string) []byte {
			return archive(t, []rawEntry{rawInfo(), legit, rawFile(manifestName, []byte("{"))}, nil, nil)
		}, want: "manifest.json:", staging: []string{"conf", "conf/a"}},
		{name: "manifest with a bad mode", data: func(string) []byte {
			return archive(t, []rawEntry{rawInfo(), rawFile(manifestName, []byte(`{"format":1,"entries":[{"path":"a","type":"file","mode":"rwx"}]}`))}, nil, nil)
		}, want: "manifest.json:"},
		{name: "manifest is a directory", data: func(string) []byte {
			return archive(t, []rawEntry{rawInfo(), {hdr: tar.Header{Typeflag: tar.TypeDir, Name: manifestName}}}, nil, nil)
		}, want: "manifest.json is not a file"},
		{name: "entry after the manifest", data: func(string) []byte {
			return archive(t, append(honest(legit), rawFile("conf/late", []byte("x"))), nil, nil)
		}, want: `"conf/late" follows manifest.json`, staging: []string{"conf", "conf/a"}},
		{name: "second manifest", data: func(string) []byte { return archive(t, append(honest(legit), rawManifest()), nil, nil) },
			want: "follows manifest.json", staging: []string{"conf", "conf/a"}},
		{name: "data after the tar archive", data: func(string) []byte { return archive(t, honest(legit), []byte("junk"), nil) },
			want: "after the end of the tar archive", staging: []string{"conf", "conf/a"}},
		{name: "bytes after the compressed stream", data: func(string) []byte { return archive(t, honest(legit), nil, []byte("junk")) },
			want: "backup is damaged", staging: []string{"conf", "conf/a"}},
		{name: "a second compressed frame", data: func(string) []byte {
			return archive(t, honest(legit), nil, compress(t, []byte("more")))
		}, want: "after the end of the tar archive", staging: []string{"conf", "conf/a"}},
		{name: "no info.json", data: func(string) []byte { return archive(t, honest(legit)[1:], nil, nil) },
			want: "does not start with info.json"},
		{name: "info.json not first", data: func(string) []byte {
			return archive(t, append([]rawEntry{legit}, honest(legit)...), nil, nil)
		}, want: "does not start with info.json"},
		{name: "info.json not JSON", data: func(string) []byte {
			return archive(t, append([]rawEntry{rawFile(infoName, []byte("zonekit"))}, honest(legit)[1:]...), nil, nil)
		}, want: "info.json:"},
		{name: "info.json too large", data: func(string) []byte { return archive(t, append([]rawEntry{bigInfo}, honest(legit)[1:]...), nil, nil) },
			want: "over the limit"},
		{name: "second info.json", data: func(string) []byte { return archive(t, honest(legit, rawInfo()), nil, nil) },
			want: "reserved name", staging: []string{"conf", "conf/a"}},
		{name: "no manifest", data: func(string) []byte { return archive(t, honest(legit)[:2], nil, nil) },
			want: "manifest.json is missing", staging: []string{"conf", "conf/a"}},
		{name: "empty archive", data: func(string) []byte { return archive(t, nil, nil, nil) },
			want: "empty archive"},
		{name: "empty stream", data: func(string) []byte { return nil },
			want: "backup is damaged"},
		{name: "not compressed", data: func(string) []byte {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			tw.Close()
			return b.Bytes()
		}, want: "backup is damaged"},
		{name: "compression window over 8 MiB", data: func(string) []byte {
			var out bytes.Buffer
			zw, _ := zstd.NewWriter(&out, zstd.WithWindowSize(16<<20))
			zw.Write(tarBytes(t, honest(rawFile("big", randBytes(10<<20)))))
			zw.Close()
			return out.Bytes()
		}, want: "compressed stream: window size exceeded"},
		{name: "truncated compressed stream", data: func(string) []byte {
			b := archive(t, honest(legit), nil, nil)
			return b[:len(b)-5]
		}, want: "backup is damaged"},
		{name: "duplicate file", data: func(string) []byte { return archive(t, honest(legit, legit), nil, nil) },
			want: "twice", staging: []string{"conf", "conf/a"}},
		{name: "directory over a file", data: func(string) []byte { return archive(t, honest(legit, rawDir("conf/a/")), nil, nil) },
			want: "twice", staging: []string{"conf", "conf/a"}},
		{name: "file over a directory", data: func(string) []byte {
			return archive(t, honest(rawDir("conf/"), rawFile("conf", nil)), nil, nil)
		}, want: "twice", staging: []string{"conf"}},
		{name: "file over an implicit directory", data: func(string) []byte { return archive(t, honest(legit, rawFile("conf", nil)), nil, nil) },
			want: "twice", staging: []string{"conf", "conf/a"}},
		{name: "entry inside a file", data: func(string) []byte {
			return archive(t, honest(legit, rawFile("conf/a/b", []byte("x"))), nil, nil)
		}, want: "which is a file", staging: []string{"conf", "conf/a"}},
		{name: "directory with a size", data: func(string) []byte {
			// Written as a file, then its type byte changed: tar.Writer will not make one.
			b := tarBytes(t, honest(rawFile("dirwithsize", []byte("0123456789"))))
			off := bytes.Index(b, []byte("dirwithsize\x00"))
			b[off+156] = tar.TypeDir
			fixChecksum(b[off : off+512])
			return compress(t, b)
		}, want: "has a size"},
		{name: "newer info.json", data: func(string) []byte { return archive(t, append([]rawEntry{info2}, honest(legit)[1:]...), nil, nil) },
			want: "content format 2 is newer", newer: true},
		{name: "newer manifest", data: func(string) []byte {
			return archive(t, withManifest(Manifest{Format: 2, Info: testInfo, Entries: entriesOf(legit)}, legit), nil, nil)
		}, want: "content format 2 is newer", newer: true, staging: []string{"conf", "conf/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			staging := newStaging(t)
			data := tt.data(filepath.Dir(staging))
			_, err := Unpack(bytes.NewReader(data), staging, nil)
			checkRefused(t, "Unpack", err, tt.want, tt.newer)
			if got := stagingTree(t, staging); !slices.Equal(got, tt.staging) {
				t.Errorf("staging holds %q, want %q", got, tt.staging)
			}
			for _, p := range tt.notThere {
				if _, err := os.Lstat(filepath.Join(filepath.Dir(staging), p)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists", p)
				}
			}
			_, verr := Verify(bytes.NewReader(data), nil)
			checkRefused(t, "Verify", verr, tt.want, tt.newer)
			if err != nil && verr != nil && err.Error() != verr.Error() {
				t.Errorf("Unpack and Verify disagree:\n%v\n%v", err, verr)
			}
		})
	}
}

func checkRefused(t *testing.T, what string, err error, want string, newer bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded", what)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s = %q, want it to say %q", what, err, want)
	}
	if errors.Is(err, ErrDamaged) == newer {
		t.Errorf("%s = %q: damaged %v", what, err, !newer)
	}
}

func tarBytes(t testing.TB, entries []rawEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := e.hdr
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	return b.Bytes()
}

// paxRecord is one "length key=value\n" record of a PAX header.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	n += len(strconv.Itoa(n))
	if len(strconv.Itoa(n)) != len(strconv.Itoa(n-len(strconv.Itoa(n)))) {
		n++
	}
	return strconv.Itoa(n) + " " + k + "=" + v + "\n"
}

// fixChecksum recomputes a ustar header block's checksum.
func fixChecksum(blk []byte) {
	copy(blk[148:156], "        ")
	var sum int
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], []byte(strings.Repeat("0", 6-len(octal(sum)))+octal(sum)+"\x00 "))
}

func octal(n int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	return s
}

// What an honest but different writer may do is accepted.
func TestUnpackAccepts(t *testing.T) {
	f := rawFile("d/f", []byte("x"))
	d := rawDir("d") // no trailing slash, after its content
	d.hdr.Mode = 0o750
	tests := []struct {
		name    string
		entries []rawEntry
		tail    []byte
	}{
		{"directory after its content", []rawEntry{rawInfo(), f, d, rawManifest(entriesOf(f, d)...)}, nil},
		{"tar padding to a 10 KiB record", []rawEntry{rawInfo(), f, rawManifest(entryOf(f))}, make([]byte, 10240)},
		{"unknown JSON fields", []rawEntry{
			rawFile(infoName, []byte(`{"format":1,"zone":"acme","future":true}`)),
			rawFile(manifestName, []byte(`{"format":1,"info":{"zone":"acme","later":1},"entries":[]}`)),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := archive(t, tt.entries, tt.tail, nil)
			staging := newStaging(t)
			if _, err := Unpack(bytes.NewReader(data), staging, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(bytes.NewReader(data), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The directory got its mode from the manifest, though listed last.
	staging := newStaging(t)
	Unpack(bytes.NewReader(archive(t, tests[0].entries, nil, nil)), staging, nil)
	if fi, err := os.Stat(filepath.Join(staging, "d")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("d: %v, %v", fi.Mode(), err)
	}
}

// A file from parallelMin up goes through the hasher's own buffers
// (parallelHasher.copyFrom): it is written whole and in order, a byte
// changed in its middle fails the SHA-256 check, and a stream cut inside
// it is refused.
func TestUnpackLargeFile(t *testing.T) {
	big := rawFile("data/zone.db", randBytes(parallelMin+3*hashBufferSize+123))
	entries := []rawEntry{rawInfo(), rawDir("data/"), big, rawManifest(entriesOf(rawDir("data/"), big)...)}
	data := archive(t, entries, nil, nil)
	staging := newStaging(t)
	if _, err := Unpack(bytes.NewReader(data), staging, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(staging, "data/zone.db")); err != nil || !bytes.Equal(got, big.body) {
		t.Fatalf("unpacked store differs (%d bytes, %v)", len(got), err)
	}
	if _, err := Verify(bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}

	changed := rawFile("data/zone.db", bytes.Clone(big.body))
	changed.body[len(changed.body)/2] ^= 1
	bad := archive(t, []rawEntry{rawInfo(), rawDir("data/"), changed, rawManifest(entriesOf(rawDir("data/"), big)...)}, nil, nil)
	_, err := Unpack(bytes.NewReader(bad), newStaging(t), nil)
	checkRefused(t, "Unpack", err, "SHA-256 differs", false)
	_, err = Verify(bytes.NewReader(bad), nil)
	checkRefused(t, "Verify", err, "SHA-256 differs", false)

	plain := tarBytes(t, entries)
	cut := compress(t, plain[:len(plain)/2])
	_, err = Unpack(bytes.NewReader(cut), newStaging(t), nil)
	checkRefused(t, "Unpack", err, "truncated", false)
}
