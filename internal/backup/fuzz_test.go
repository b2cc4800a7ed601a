package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seeded encrypts plain deterministically, so that fuzz seeds are the same
// bytes on every run.
func seeded(t testing.TB, plain []byte, kdf KDFParams, chunk int, seed uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	var key [32]byte
	key[0] = byte(seed)
	w, err := encrypt(&buf, testPass, kdf, chunk, rand.NewChaCha8(key))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func FuzzReadHeader(f *testing.F) {
	valid := seeded(f, nil, cheapKDF, MinChunkSize, 1)
	f.Add(valid[:headerLenV1])
	f.Add(seeded(f, nil, KDFParams{Memory: 1024, Time: 2, Threads: 4}, DefaultChunkSize, 2)[:headerLenV1])
	f.Add(reseal(valid, func(h []byte) []byte { h[9] = 2; return h }))
	f.Add(reseal(valid, func(h []byte) []byte { h[offKDF+9] = 0; return h }))
	f.Add(valid[:40])
	f.Add([]byte("ZKBACKUP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ReadHeader(r)
		if err != nil {
			if !errors.Is(err, ErrDamaged) && !strings.Contains(err.Error(), "newer than this zonekit") {
				t.Fatalf("error %q is neither damage nor a newer version", err)
			}
			return
		}
		if len(data)-r.Len() != headerLenV1 {
			t.Fatalf("consumed %d bytes", len(data)-r.Len())
		}
		if !bytes.Equal(h.marshal(), data[:headerLenV1]) {
			t.Fatal("accepted header does not marshal back to itself")
		}
		if h.KDF.check() != nil || h.ChunkSize < MinChunkSize || h.ChunkSize > MaxChunkSize || h.Version != FormatVersion {
			t.Fatalf("accepted header out of bounds: %v", h)
		}
	})
}

// FuzzDecrypt: no panics, and nothing but the untouched seeds decrypts.
func FuzzDecrypt(f *testing.F) {
	valid := map[string][]byte{}
	for i, n := range []int{0, 10, MinChunkSize, MinChunkSize + 1, 2*MinChunkSize + 100} {
		plain := pattern(n)
		data := seeded(f, plain, cheapKDF, MinChunkSize, uint64(i))
		valid[string(data)] = plain
		f.Add(data)
	}
	good := seeded(f, pattern(3*MinChunkSize), cheapKDF, MinChunkSize, 9)
	f.Add(good[:len(good)-1])
	f.Add(append(append([]byte(nil), good...), 0))
	f.Add(good[:chunkAt(1, MinChunkSize)])
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decrypt(bytes.NewReader(data), testPass)
		if err == nil {
			var got []byte
			got, err = io.ReadAll(r)
			if err == nil {
				plain, ok := valid[string(data)]
				if !ok {
					t.Fatalf("a mutated file decrypted to %d bytes", len(got))
				}
				if !bytes.Equal(got, plain) {
					t.Fatal("a seed decrypted to the wrong plaintext")
				}
				return
			}
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrWrongPassphrase) && !strings.Contains(err.Error(), "newer than this zonekit") {
			t.Fatalf("unexpected error %q", err)
		}
		if _, ok := valid[string(data)]; ok {
			t.Fatalf("a valid seed failed: %v", err)
		}
	})
}

// FuzzUnpackManifest feeds Unpack archives built from fuzzed info.json and
// manifest.json and fuzzed tar entries. lines holds one entry a line: "f
// name" a file holding body, "d name" a directory, "l name>target" a
// symbolic link, "h name>target" a hard link.
func FuzzUnpackManifest(f *testing.F) {
	body := []byte("hello")
	sum := sha256.Sum256(body)
	info := `{"format":1,"zone":"acme","created":"2025-01-01T00:00:00Z"}`
	manifest := `{"format":1,"info":{"zone":"acme","created":"2025-01-01T00:00:00Z"},"entries":[` +
		`{"path":"conf","type":"dir","mode":"0750","uid":0,"gid":0,"mtime":"2025-01-01T00:00:00Z","size":0},` +
		`{"path":"conf/a","type":"file","mode":"0640","uid":0,"gid":0,"mtime":"2025-01-01T00:00:00Z","size":5,"sha256":"` + hex.EncodeToString(sum[:]) + `"}]}`
	f.Add(info, manifest, "d conf\nf conf/a", body)
	f.Add(info, manifest, "f conf/a", body)
	f.Add(info, manifest, "d conf\nl conf/a>../../outside", body)
	f.Add(info, manifest, "d conf\nh conf/a>/etc/passwd", body)
	f.Add(info, manifest, "d conf\nf ../conf/a", body)
	f.Add(info, manifest, "d conf\nf conf/a\nf conf/a/b", body)
	f.Add(info, manifest, "l x>..\nf x/outside/sentinel", body)
	f.Add(info, `{"format":2}`, "", body)
	f.Add(`{"format":1`, manifest, "", body)
	f.Fuzz(func(t *testing.T, info, manifest, lines string, body []byte) {
		entries := []rawEntry{rawFile(infoName, []byte(info))}
		for _, line := range strings.Split(lines, "\n") {
			if len(line) < 2 {
				continue
			}
			name, target, _ := strings.Cut(line[2:], ">")
			switch line[0] {
			case 'f':
				entries = append(entries, rawFile(name, body))
			case 'd':
				entries = append(entries, rawDir(name))
			case 'l':
				entries = append(entries, rawLink(tar.TypeSymlink, name, target))
			case 'h':
				entries = append(entries, rawLink(tar.TypeLink, name, target))
			}
		}
		entries = append(entries, rawFile(manifestName, []byte(manifest)))
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		for _, e := range entries {
			hdr := e.hdr
			if tw.WriteHeader(&hdr) != nil {
				return // not representable in tar
			}
			tw.Write(e.body)
		}
		tw.Close()
		unpackChecked(t, compress(t, tb.Bytes()))
	})
}

// FuzzUnpackTar feeds Unpack any tar stream.
func FuzzUnpackTar(f *testing.F) {
	legit := rawFile("conf/a", []byte("hello"))
	f.Add(tarBytes(f, []rawEntry{rawInfo(), legit, rawManifest(entryOf(legit))}))
	f.Add(tarBytes(f, []rawEntry{rawInfo(), rawLink(tar.TypeSymlink, "l", "/"), rawFile("l/x", nil), rawManifest()}))
	f.Add(tarBytes(f, []rawEntry{rawInfo(), rawFile("../x", nil), rawManifest()}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		unpackChecked(t, compress(t, raw))
	})
}

// unpackChecked runs Unpack and Verify on data and checks what they agree
// on and what Unpack wrote; newStaging checks nothing was written outside.
func unpackChecked(t *testing.T, data []byte) {
	staging := newStaging(t)
	m, err := Unpack(bytes.NewReader(data), staging, nil)
	vm, verr := Verify(bytes.NewReader(data), nil)
	if (err == nil) != (verr == nil) {
		t.Fatalf("Unpack: %v; Verify: %v", err, verr)
	}
	if err != nil {
		if !errors.Is(err, ErrDamaged) && !strings.Contains(err.Error(), "newer than this zonekit") {
			t.Fatalf("unexpected error %q", err)
		}
		return
	}
	if len(m.Entries) != len(vm.Entries) {
		t.Fatal("Unpack and Verify return different manifests")
	}
	for _, e := range m.Entries {
		p := filepath.Join(staging, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		if fi.Mode().Type() != e.Mode.Type() {
			t.Fatalf("%s: type %v, manifest %v", e.Path, fi.Mode().Type(), e.Mode.Type())
		}
		if !fi.IsDir() {
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != e.SHA256 {
				t.Fatalf("%s: content differs from the manifest", e.Path)
			}
		}
	}
	filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			t.Fatalf("Unpack made a symbolic link: %s", p)
		}
		return nil
	})
}
