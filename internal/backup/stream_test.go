package backup

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"zonekit/internal/errkind"
)

// cheapKDF keeps the tests fast; the format does not depend on the cost.
var cheapKDF = KDFParams{Memory: 64, Time: 1, Threads: 1}

var testPass = []byte("correct horse battery staple")

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func encryptBytes(t testing.TB, plain []byte, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := EncryptWithChunkSize(&buf, testPass, cheapKDF, chunk)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

func decryptBytes(data, pass []byte) ([]byte, error) {
	r, err := Decrypt(bytes.NewReader(data), pass)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// sealedSize is the file size Encrypt makes for n plaintext bytes.
func sealedSize(n, chunk int) int {
	chunks := max(1, (n+chunk-1)/chunk)
	return headerLenV1 + n + chunks*tagLen
}

func TestRoundTrip(t *testing.T) {
	for _, chunk := range []int{MinChunkSize, DefaultChunkSize} {
		for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + 7, 4 * chunk} {
			plain := randBytes(n)
			data := encryptBytes(t, plain, chunk)
			if len(data) != sealedSize(n, chunk) {
				t.Errorf("chunk %d, %d bytes: file is %d bytes, want %d", chunk, n, len(data), sealedSize(n, chunk))
			}
			got, err := decryptBytes(data, testPass)
			if err != nil {
				t.Fatalf("chunk %d, %d bytes: %v", chunk, n, err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("chunk %d, %d bytes: plaintext differs", chunk, n)
			}
		}
	}
}

// PayloadSize tells the plaintext length from the file size alone, for
// every way the last chunk can end, and refuses files too short to hold
// a final chunk.
func TestPayloadSize(t *testing.T) {
	for _, chunk := range []int{MinChunkSize, DefaultChunkSize} {
		for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + 7, 4 * chunk} {
			data := encryptBytes(t, randBytes(n), chunk)
			h, err := ReadHeader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			got, err := PayloadSize(h, int64(len(data)))
			if err != nil || got != int64(n) {
				t.Errorf("chunk %d, %d bytes: PayloadSize = %d, %v", chunk, n, got, err)
			}
		}
		data := encryptBytes(t, randBytes(2*chunk), chunk)
		h, _ := ReadHeader(bytes.NewReader(data))
		for _, size := range []int{headerLenV1, headerLenV1 + tagLen - 1, headerLenV1 + chunk + tagLen + 3} {
			if _, err := PayloadSize(h, int64(size)); !errors.Is(err, ErrDamaged) {
				t.Errorf("chunk %d, file of %d bytes: %v, want damaged", chunk, size, err)
			}
		}
	}
}

// Writes of every size, split anywhere, make the same chunks.
func TestRoundTripSmallWrites(t *testing.T) {
	plain := randBytes(3*MinChunkSize + 100)
	var buf bytes.Buffer
	w, err := EncryptWithChunkSize(&buf, testPass, cheapKDF, MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	for p, step := plain, 1; len(p) > 0; step = step*3 + 1 {
		k := min(step, len(p))
		if n, err := w.Write(p[:k]); n != k || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Decrypt(&buf, testPass)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(r, 1<<30)) // small reads are fine too
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("ReadAll: %v, equal %v", err, bytes.Equal(got, plain))
	}
}

func TestWrongPassphrase(t *testing.T) {
	data := encryptBytes(t, []byte("secret"), MinChunkSize)
	for _, pass := range []string{"correct horse battery stapler", "", "Correct horse battery staple"} {
		_, err := Decrypt(bytes.NewReader(data), []byte(pass))
		if !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("Decrypt(%q) = %v, want ErrWrongPassphrase", pass, err)
		}
		if errkind.Of(err) != errkind.Passphrase || errkind.ExitCode(err) != 12 {
			t.Errorf("kind %v, exit %d; want Passphrase, 12", errkind.Of(err), errkind.ExitCode(err))
		}
		if err.Error() != "wrong passphrase" || errors.Is(err, ErrDamaged) {
			t.Errorf("error %q", err)
		}
	}
}

func TestCheckPassphrase(t *testing.T) {
	tests := []struct {
		pass string
		ok   bool
	}{
		{"", false},
		{"123456789", false},
		{"1234567890", true},
		{"ääääääääää", true}, // 10 characters, 20 bytes: counted in characters
		{"äääääääää", false}, // 9 characters, 18 bytes
		{"a long enough passphrase", true},
	}
	for _, tt := range tests {
		err := CheckPassphrase([]byte(tt.pass))
		if (err == nil) != tt.ok {
			t.Errorf("CheckPassphrase(%q) = %v, want ok=%v", tt.pass, err, tt.ok)
		}
		if err != nil && errkind.Of(err) != errkind.Usage {
			t.Errorf("CheckPassphrase(%q) kind %v, want Usage", tt.pass, errkind.Of(err))
		}
	}
	if _, err := Encrypt(io.Discard, []byte("short"), cheapKDF); errkind.Of(err) != errkind.Usage {
		t.Errorf("Encrypt with a short passphrase = %v, want a usage error", err)
	}
}

func TestEncryptRefusesBadParams(t *testing.T) {
	tests := []struct {
		name  string
		kdf   KDFParams
		chunk int
	}{
		{"zero threads", KDFParams{64, 1, 0}, MinChunkSize},
		{"zero time", KDFParams{64, 0, 1}, MinChunkSize},
		{"time over the limit", KDFParams{64, 65, 1}, MinChunkSize},
		{"memory over 1 GiB", KDFParams{1<<20 + 1, 1, 1}, MinChunkSize},
		{"memory under 8 KiB per lane", KDFParams{15, 1, 2}, MinChunkSize},
		{"chunk too small", cheapKDF, MinChunkSize - 1},
		{"chunk too large", cheapKDF, MaxChunkSize + 1},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if _, err := EncryptWithChunkSize(&buf, testPass, tt.kdf, tt.chunk); err == nil {
			t.Errorf("%s: Encrypt succeeded", tt.name)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: Encrypt wrote %d bytes before refusing", tt.name, buf.Len())
		}
	}
}

func TestDefaultKDFWithinBounds(t *testing.T) {
	p := DefaultKDF()
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	// The whole backup must stay under 64 MiB; the KDF is most of it.
	if p.Memory > 48<<10 {
		t.Errorf("DefaultKDF uses %d KiB", p.Memory)
	}
}

func TestWriterClose(t *testing.T) {
	var buf bytes.Buffer
	w, err := EncryptWithChunkSize(&buf, testPass, cheapKDF, MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := buf.Len()
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := w.Write([]byte("y")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if buf.Len() != n {
		t.Error("writes after Close reached the file")
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriterErrorsStick(t *testing.T) {
	w, err := EncryptWithChunkSize(&failWriter{after: headerLenV1}, testPass, cheapKDF, MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 2*MinChunkSize))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Write = %v, want the disk error", err)
	}
	if _, err2 := w.Write([]byte("x")); err2 == nil {
		t.Error("Write after a failed write succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
	if _, err := Encrypt(&failWriter{}, testPass, cheapKDF); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Encrypt with a failing header write = %v", err)
	}
}

type failReader struct {
	r     io.Reader
	after int
}

func (f *failReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("connection reset")
	}
	p = p[:min(len(p), f.after)]
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

// An I/O error is reported as such, not as damage.
func TestReaderIOError(t *testing.T) {
	data := encryptBytes(t, randBytes(3*MinChunkSize), MinChunkSize)
	r, err := Decrypt(&failReader{r: bytes.NewReader(data), after: headerLenV1 + 100}, testPass)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(r)
	if err == nil || errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("ReadAll = %v, want the I/O error", err)
	}
}

// chunkAt returns the offset of sealed chunk i in a file of chunk size c.
func chunkAt(i, c int) int { return headerLenV1 + i*(c+tagLen) }

func TestDamage(t *testing.T) {
	const c = MinChunkSize
	plain := randBytes(3*c + 100) // chunks 0..2 full, chunk 3 final with 100 bytes
	good := encryptBytes(t, plain, c)
	other := encryptBytes(t, plain, c) // same plaintext and passphrase, other keys
	exact := randBytes(2 * c)          // final chunk is full
	goodExact := encryptBytes(t, exact, c)
	sealed := c + tagLen

	cut := func(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:n] } }
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x10; return b }
	}
	tests := []struct {
		name   string
		base   []byte
		mangle func([]byte) []byte
	}{
		{"empty file", good, cut(0)},
		{"truncated in the magic", good, cut(5)},
		{"truncated in the header", good, cut(60)},
		{"header only", good, cut(headerLenV1)},
		{"truncated in chunk 0's tag", good, cut(headerLenV1 + 10)},
		{"truncated in chunk 0", good, cut(headerLenV1 + 1000)},
		{"truncated after chunk 0", good, cut(chunkAt(1, c))},
		{"truncated after chunk 1", good, cut(chunkAt(2, c))},
		{"truncated after chunk 2", good, cut(chunkAt(3, c))},
		{"truncated in the final chunk", good, cut(len(good) - 20)},
		{"final tag cut short", good, cut(len(good) - 1)},
		{"exact: final full chunk missing", goodExact, cut(chunkAt(1, c))},
		{"exact: final chunk cut", goodExact, cut(len(goodExact) - 1)},
		{"bit in chunk 0", good, flip(headerLenV1 + 5)},
		{"bit in chunk 0's tag", good, flip(chunkAt(1, c) - 1)},
		{"bit in chunk 2", good, flip(chunkAt(2, c) + 77)},
		{"bit in the final chunk", good, flip(chunkAt(3, c) + 1)},
		{"bit in the final tag", good, flip(len(good) - 1)},
		{"one trailing byte", good, func(b []byte) []byte { return append(b, 0) }},
		{"trailing tag-sized bytes", good, func(b []byte) []byte { return append(b, make([]byte, tagLen)...) }},
		{"trailing copy of the final chunk", good, func(b []byte) []byte { return append(b, b[chunkAt(3, c):]...) }},
		{"exact: trailing byte", goodExact, func(b []byte) []byte { return append(b, 1) }},
		{"chunks 0 and 1 swapped", good, func(b []byte) []byte {
			out := append([]byte(nil), b[:chunkAt(0, c)]...)
			out = append(out, b[chunkAt(1, c):chunkAt(2, c)]...)
			out = append(out, b[chunkAt(0, c):chunkAt(1, c)]...)
			return append(out, b[chunkAt(2, c):]...)
		}},
		{"chunk 1 repeated", good, func(b []byte) []byte {
			out := append([]byte(nil), b[:chunkAt(2, c)]...)
			out = append(out, b[chunkAt(1, c):chunkAt(2, c)]...)
			return append(out, b[chunkAt(2, c):]...)
		}},
		{"chunk 1 dropped", good, func(b []byte) []byte {
			return append(append([]byte(nil), b[:chunkAt(1, c)]...), b[chunkAt(2, c):]...)
		}},
		{"final chunk from another backup", good, func(b []byte) []byte {
			return append(b[:chunkAt(3, c)], other[chunkAt(3, c):]...)
		}},
		{"chunk 0 from another backup", good, func(b []byte) []byte {
			copy(b[chunkAt(0, c):], other[chunkAt(0, c):chunkAt(1, c)])
			return b
		}},
		{"payload of another backup", good, func(b []byte) []byte {
			return append(b[:headerLenV1], other[headerLenV1:]...)
		}},
		{"final chunk made non-final by appending a chunk", good, func(b []byte) []byte {
			return append(b, b[chunkAt(0, c):chunkAt(0, c)+sealed]...)
		}},
	}
	for off := 0; off < headerLenV1; off++ {
		tests = append(tests, struct {
			name   string
			base   []byte
			mangle func([]byte) []byte
		}{"bit in header byte " + strconv.Itoa(off), good, flip(off)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.mangle(append([]byte(nil), tt.base...))
			orig := plain
			if bytes.Equal(tt.base, goodExact) {
				orig = exact
			}
			checkDamaged(t, data, orig)
		})
	}
}

// checkDamaged decrypts data and wants an ErrDamaged error, with no
// plaintext returned that is not a prefix of the original.
func checkDamaged(t *testing.T, data, orig []byte) {
	t.Helper()
	r, err := Decrypt(bytes.NewReader(data), testPass)
	var got []byte
	if err == nil {
		got, err = io.ReadAll(r)
	}
	if err == nil {
		t.Fatalf("damaged file read to a clean EOF (%d bytes)", len(got))
	}
	if !errors.Is(err, ErrDamaged) || !strings.HasPrefix(err.Error(), "backup is damaged: ") {
		t.Fatalf("error %q is not a damage error", err)
	}
	if errkind.Of(err) != errkind.Failure {
		t.Errorf("kind %v, want Failure", errkind.Of(err))
	}
	if !bytes.HasPrefix(orig, got) {
		t.Errorf("returned %d bytes that are not the original's", len(got))
	}
}

// Encrypt never writes an empty final chunk after others; Decrypt must not
// accept one (it would give one payload two encodings).
func TestEmptyFinalChunkRefused(t *testing.T) {
	var buf bytes.Buffer
	wc, err := EncryptWithChunkSize(&buf, testPass, cheapKDF, MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	w := wc.(*writer)
	w.Write(make([]byte, MinChunkSize))
	if err := w.flush(false); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkDamaged(t, buf.Bytes(), make([]byte, MinChunkSize))
}

// reseal rewrites header fields of a valid file and fixes its checksum, as a
// hostile file would: only the wrap's tag (the passphrase) could catch it,
// and the KDF must not run first.
func reseal(data []byte, edit func(h []byte) []byte) []byte {
	h := edit(append([]byte(nil), data[:headerLenV1-checksumLen]...))
	binary.BigEndian.PutUint16(h[10:], uint16(len(h)+checksumLen))
	sum := sha256.Sum256(h)
	return append(append(h, sum[:]...), data[headerLenV1:]...)
}

func TestAbsurdHeaderRefusedBeforeKDF(t *testing.T) {
	good := encryptBytes(t, []byte("payload"), MinChunkSize)
	u32 := func(off int, v uint32) func([]byte) []byte {
		return func(h []byte) []byte { binary.BigEndian.PutUint32(h[off:], v); return h }
	}
	u8 := func(off int, v byte) func([]byte) []byte {
		return func(h []byte) []byte { h[off] = v; return h }
	}
	tests := []struct {
		name    string
		edit    func([]byte) []byte
		want    string
		damaged bool
	}{
		{"memory 2 GiB", u32(offKDF+1, 2<<20), "memory", true},
		{"memory 4 GiB", u32(offKDF+1, 0xffffffff), "memory", true},
		{"memory under 8 KiB per lane", u32(offKDF+1, 7), "memory", true},
		{"time 65", u32(offKDF+5, 65), "passes", true},
		{"time 4 billion", u32(offKDF+5, 0xffffffff), "passes", true},
		{"time 0", u32(offKDF+5, 0), "passes", true},
		{"threads 0", u8(offKDF+9, 0), "lanes", true},
		{"threads 17", u8(offKDF+9, 17), "lanes", true},
		{"threads 255", u8(offKDF+9, 255), "lanes", true},
		{"unknown KDF", u8(offKDF, 2), "key derivation", true},
		{"unknown cipher", u8(offCipher, 9), "cipher", true},
		{"chunk 0", u32(offCipher+1, 0), "chunk size", true},
		{"chunk 4 KiB - 1", u32(offCipher+1, MinChunkSize-1), "chunk size", true},
		{"chunk 16 MiB + 1", u32(offCipher+1, MaxChunkSize+1), "chunk size", true},
		{"chunk 4 GiB", u32(offCipher+1, 0xffffffff), "chunk size", true},
		{"version 0", func(h []byte) []byte { h[9] = 0; return h }, "version 0", true},
		{"version 2, same layout", func(h []byte) []byte { h[9] = 2; return h }, "newer than this zonekit", false},
		{"version 2, longer header", func(h []byte) []byte { h[9] = 2; return append(h, make([]byte, 100)...) }, "newer than this zonekit", false},
		{"version 1, longer header", func(h []byte) []byte { return append(h, 0) }, "header is 124 bytes", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := reseal(good, tt.edit)
			start := time.Now()
			_, err := Decrypt(bytes.NewReader(data), testPass)
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Errorf("refusal took %v: did the KDF run?", d)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decrypt = %v, want an error about %q", err, tt.want)
			}
			if errors.Is(err, ErrDamaged) != tt.damaged || errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("error %q: damaged %v, want %v", err, errors.Is(err, ErrDamaged), tt.damaged)
			}
			if _, err2 := ReadHeader(bytes.NewReader(data)); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("ReadHeader = %v, Decrypt = %v", err2, err)
			}
		})
	}
	// The checksum is unkeyed: with it fixed up, a change to a field the
	// bounds allow reaches the wrap, which catches it as a wrong key.
	data := reseal(good, u32(offKDF+5, 2))
	if _, err := Decrypt(bytes.NewReader(data), testPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("forged time cost: %v, want ErrWrongPassphrase", err)
	}
	data = reseal(good, func(h []byte) []byte { binary.BigEndian.PutUint32(h[offCipher+1:], MinChunkSize*2); return h })
	if _, err := Decrypt(bytes.NewReader(data), testPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("forged chunk size: %v, want ErrWrongPassphrase", err)
	}
}

func TestReadHeader(t *testing.T) {
	data := encryptBytes(t, nil, 64<<10)
	r := bytes.NewReader(data)
	h, err := ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 1 || h.KDF != cheapKDF || h.ChunkSize != 64<<10 {
		t.Errorf("header %+v", h)
	}
	if r.Len() != len(data)-headerLenV1 {
		t.Errorf("ReadHeader left %d bytes, want %d", r.Len(), len(data)-headerLenV1)
	}
	if want := "zonekit backup format 1, Argon2id m=64 KiB t=1 p=1, ChaCha20-Poly1305 in 65536-byte chunks"; h.String() != want {
		t.Errorf("String() = %q", h.String())
	}
	if !bytes.Equal(h.marshal(), data[:headerLenV1]) {
		t.Error("marshal does not reproduce the header")
	}
	_, err = ReadHeader(strings.NewReader("PK\x03\x04 a zip file, not a backup at all, long enough for a header............................................................................."))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "not a zonekit backup") {
		t.Errorf("ReadHeader(zip) = %v", err)
	}
}

// A Sealer derives the key first and seals one payload; a second Encrypt
// would reuse its nonces and is refused.
func TestSealer(t *testing.T) {
	s, err := newSealer(testPass, cheapKDF, MinChunkSize, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("zonekit "), 3*MinChunkSize/8+5)
	var buf bytes.Buffer
	w, err := s.Encrypt(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Encrypt(io.Discard); err == nil {
		t.Error("a second Encrypt with the same Sealer succeeded")
	}
	r, err := Decrypt(&buf, testPass)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypted %d bytes (%v), want %d", len(got), err, len(plain))
	}
	if _, err := NewSealer([]byte("short"), cheapKDF); err == nil {
		t.Error("NewSealer took a passphrase under 10 characters")
	}
}
