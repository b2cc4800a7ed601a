package backup

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkEncryptDecrypt measures the payload cipher (the KDF is cheap
// here; BenchmarkDefaultKDF measures it).
func BenchmarkEncryptDecrypt(b *testing.B) {
	plain := randBytes(32 << 20)
	var sealed bytes.Buffer
	w, _ := Encrypt(&sealed, testPass, cheapKDF)
	w.Write(plain)
	w.Close()

	b.Run("encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			w, err := Encrypt(io.Discard, testPass, cheapKDF)
			if err != nil {
				b.Fatal(err)
			}
			w.Write(plain)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decrypt", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			r, err := Decrypt(bytes.NewReader(sealed.Bytes()), testPass)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDefaultKDF(b *testing.B) {
	p := DefaultKDF()
	salt := make([]byte, saltLen)
	for b.Loop() {
		p.key(testPass, salt)
	}
}

// benchFiles is a server home in miniature: a 24 MiB store (half random,
// half repetitive, as a bbolt file is) and 200 small configuration files.
func benchFiles() []memFile {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	store := append(randBytes(12<<20), bytes.Repeat([]byte("device pc0042 registered in zone acme\n"), 12<<20/38)...)
	files := []memFile{{"conf", fs.ModeDir | 0o750, t0, nil}, {"data", fs.ModeDir | 0o750, t0, nil}, {"data/zone.db", 0o600, t0, store}}
	for i := range 200 {
		files = append(files, memFile{"conf/file" + strconv.Itoa(i) + ".conf", 0o640, t0, bytes.Repeat([]byte("name=value "+strconv.Itoa(i)+"\n"), 100)})
	}
	return files
}

func BenchmarkPackUnpack(b *testing.B) {
	files := benchFiles()
	size := totalSize(files)
	data, _ := pack(b, memSources(files))
	b.Logf("%d bytes packed to %d (%.0f%%)", size, len(data), 100*float64(len(data))/float64(size))

	b.Run("pack", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := Pack(io.Discard, testInfo, memSources(files), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := Verify(bytes.NewReader(data), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unpack", func(b *testing.B) {
		b.SetBytes(size)
		benchUnpack(b, data)
	})
}

// benchUnpack unpacks data into a new staging folder per round.
func benchUnpack(b *testing.B, data []byte) {
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		staging := filepath.Join(dir, strconv.Itoa(i))
		i++
		if err := os.Mkdir(staging, 0o700); err != nil {
			b.Fatal(err)
		}
		if _, err := Unpack(bytes.NewReader(data), staging, nil); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(staging)
	}
}

// BenchmarkUnpackStore unpacks a home whose store is 256 MiB (a quarter
// random, the rest repetitive, about as compressible as a real zone
// store): the server's side of a restore, from decrypted bytes to synced
// files.
func BenchmarkUnpackStore(b *testing.B) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	store := append(randBytes(64<<20), bytes.Repeat([]byte("device pc0042 registered in zone acme\n"), 192<<20/38)...)
	files := []memFile{{"conf", fs.ModeDir | 0o750, t0, nil}, {"data", fs.ModeDir | 0o750, t0, nil}, {"data/zone.db", 0o600, t0, store}}
	data, _ := pack(b, memSources(files))
	b.SetBytes(int64(len(store)))
	benchUnpack(b, data)
}
