package backup

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

const (
	tagLen      = chacha20poly1305.Overhead
	prefixBytes = chacha20poly1305.NonceSize - 4 - 1 // nonce = prefix | counter | last flag
	payloadInfo = "zonekit backup v1 payload"
)

// Encrypt starts an encrypted backup on dst with the default chunk size. See
// EncryptWithChunkSize.
func Encrypt(dst io.Writer, passphrase []byte, kdf KDFParams) (io.WriteCloser, error) {
	return EncryptWithChunkSize(dst, passphrase, kdf, DefaultChunkSize)
}

// EncryptWithChunkSize checks the passphrase (CheckPassphrase) and the
// parameters, derives the key (this takes the KDF's time), writes the header
// to dst at once and returns the writer of the payload. Close seals the
// final chunk and must be called for the backup to be readable; it does not
// close dst. If a write to dst fails, every later call returns that error.
func EncryptWithChunkSize(dst io.Writer, passphrase []byte, kdf KDFParams, chunkSize int) (io.WriteCloser, error) {
	s, err := newSealer(passphrase, kdf, chunkSize, rand.Reader)
	if err != nil {
		return nil, err
	}
	return s.Encrypt(dst)
}

// Sealer is a new backup's header and keys, derived before its payload
// exists: the key derivation (the KDF's time, hundreds of milliseconds)
// can then run while the content is being fetched.
type Sealer struct {
	raw   []byte
	s     *stream
	chunk int
	used  bool
}

// NewSealer checks the passphrase (CheckPassphrase) and the parameters and
// derives the key, with the default chunk size.
func NewSealer(passphrase []byte, kdf KDFParams) (*Sealer, error) {
	return newSealer(passphrase, kdf, DefaultChunkSize, rand.Reader)
}

// Encrypt writes the header to dst at once and returns the writer of the
// payload, as EncryptWithChunkSize. A Sealer encrypts one backup only: its
// keys and nonces must not seal two payloads.
func (sl *Sealer) Encrypt(dst io.Writer) (io.WriteCloser, error) {
	if sl.used {
		return nil, errors.New("backup sealer used twice")
	}
	sl.used = true
	if _, err := dst.Write(sl.raw); err != nil {
		return nil, fmt.Errorf("write backup header: %w", err)
	}
	return &writer{dst: dst, s: sl.s, chunk: sl.chunk, buf: make([]byte, 0, sl.chunk+tagLen)}, nil
}

// encrypt takes the salt and data key from random; tests make it
// deterministic.
func encrypt(dst io.Writer, passphrase []byte, kdf KDFParams, chunkSize int, random io.Reader) (io.WriteCloser, error) {
	s, err := newSealer(passphrase, kdf, chunkSize, random)
	if err != nil {
		return nil, err
	}
	return s.Encrypt(dst)
}

func newSealer(passphrase []byte, kdf KDFParams, chunkSize int, random io.Reader) (*Sealer, error) {
	if err := CheckPassphrase(passphrase); err != nil {
		return nil, err
	}
	if err := kdf.check(); err != nil {
		return nil, fmt.Errorf("backup key derivation: %w", err)
	}
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return nil, fmt.Errorf("backup chunk size %d outside %d..%d", chunkSize, MinChunkSize, MaxChunkSize)
	}
	h := &Header{Version: FormatVersion, KDF: kdf, ChunkSize: chunkSize}
	dataKey := make([]byte, dataKeyLen)
	if _, err := io.ReadFull(random, h.Salt[:]); err != nil {
		return nil, fmt.Errorf("backup salt: %w", err)
	}
	if _, err := io.ReadFull(random, dataKey); err != nil {
		return nil, fmt.Errorf("backup data key: %w", err)
	}

	wrap, err := chacha20poly1305.New(kdf.key(passphrase, h.Salt[:]))
	if err != nil {
		return nil, err
	}
	raw := h.marshal()
	wrap.Seal(raw[offWrappedKey:offWrappedKey], wrapNonce(), dataKey, raw[:offWrappedKey])
	h.Checksum = sha256.Sum256(raw[:offChecksum])
	copy(raw[offChecksum:], h.Checksum[:])

	s, err := newStream(dataKey, h.Checksum)
	if err != nil {
		return nil, err
	}
	return &Sealer{raw: raw, s: s, chunk: chunkSize}, nil
}

// Decrypt reads and checks the header of src (ReadHeader), derives the key
// from the passphrase and returns a reader of the plaintext. A passphrase
// that does not open the key is ErrWrongPassphrase.
//
// The reader returns each chunk's plaintext only once the chunk is
// authenticated, and io.EOF only after the final chunk with nothing after
// it. Damage anywhere (a flipped bit, truncation, reordered, repeated or
// foreign chunks, trailing bytes) is an ErrDamaged error. Data read before
// such an error was authentic but is incomplete: act on the whole only at
// io.EOF.
func Decrypt(src io.Reader, passphrase []byte) (io.Reader, error) {
	h, err := ReadHeader(src)
	if err != nil {
		return nil, err
	}
	wrap, err := chacha20poly1305.New(h.KDF.key(passphrase, h.Salt[:]))
	if err != nil {
		return nil, err
	}
	dataKey, err := wrap.Open(nil, wrapNonce(), h.WrappedKey[:], h.raw[:offWrappedKey])
	if err != nil {
		// The checksum held, so the header is as written: only the passphrase
		// (or a deliberate forgery) can be wrong.
		return nil, ErrWrongPassphrase
	}
	s, err := newStream(dataKey, h.Checksum)
	if err != nil {
		return nil, err
	}
	return &reader{
		src:   src,
		s:     s,
		chunk: h.ChunkSize,
		buf:   make([]byte, h.ChunkSize+tagLen+1),
		plain: make([]byte, 0, h.ChunkSize),
	}, nil
}

// wrapNonce is all zeros: the passphrase key seals one message only, as the
// random salt makes it unique to the file.
func wrapNonce() []byte { return make([]byte, chacha20poly1305.NonceSize) }

// stream seals and opens payload chunks: nonce = prefix (7 bytes) | chunk
// counter (4 bytes, big-endian) | 1 for the final chunk else 0, associated
// data = the header checksum.
type stream struct {
	aead    cipher.AEAD
	nonce   [chacha20poly1305.NonceSize]byte
	ad      [checksumLen]byte
	counter uint64
}

func newStream(dataKey []byte, headerSum [checksumLen]byte) (*stream, error) {
	okm := make([]byte, chacha20poly1305.KeySize+prefixBytes)
	if _, err := io.ReadFull(hkdf.New(sha256.New, dataKey, nil, []byte(payloadInfo)), okm); err != nil {
		return nil, fmt.Errorf("derive payload key: %w", err)
	}
	aead, err := chacha20poly1305.New(okm[:chacha20poly1305.KeySize])
	if err != nil {
		return nil, err
	}
	s := &stream{aead: aead, ad: headerSum}
	copy(s.nonce[:], okm[chacha20poly1305.KeySize:])
	return s, nil
}

var errTooManyChunks = errors.New("more than 2^32 chunks")

func (s *stream) setNonce(last bool) error {
	if s.counter > math.MaxUint32 {
		return errTooManyChunks
	}
	binary.BigEndian.PutUint32(s.nonce[prefixBytes:], uint32(s.counter))
	s.nonce[len(s.nonce)-1] = 0
	if last {
		s.nonce[len(s.nonce)-1] = 1
	}
	return nil
}

// seal encrypts the next chunk in place: buf must have tagLen spare capacity.
func (s *stream) seal(buf []byte, last bool) ([]byte, error) {
	if err := s.setNonce(last); err != nil {
		return nil, err
	}
	out := s.aead.Seal(buf[:0], s.nonce[:], buf, s.ad[:])
	s.counter++
	return out, nil
}

// open decrypts the chunk at the current counter into dst without moving on.
// The ciphertext is left intact, so it can be tried again as final.
func (s *stream) open(dst, sealed []byte, last bool) ([]byte, error) {
	if err := s.setNonce(last); err != nil {
		return nil, err
	}
	return s.aead.Open(dst[:0], s.nonce[:], sealed, s.ad[:])
}

// writer buffers one chunk: a full chunk is sealed as not final only when
// more data follows it, so Close can mark the true last chunk final even if
// it is full.
type writer struct {
	dst    io.Writer
	s      *stream
	chunk  int
	buf    []byte
	err    error
	closed bool
}

var errClosed = errors.New("write to a closed backup")

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == w.chunk {
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
		k := copy(w.buf[len(w.buf):w.chunk], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

func (w *writer) flush(last bool) error {
	sealed, err := w.s.seal(w.buf, last)
	if err != nil {
		w.err = fmt.Errorf("encrypt backup: %w", err)
		return w.err
	}
	if _, err := w.dst.Write(sealed); err != nil {
		w.err = fmt.Errorf("write backup: %w", err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

// Close seals the final chunk (an empty one if nothing was written). A
// second Close returns the first one's result.
func (w *writer) Close() error {
	if w.closed || w.err != nil {
		w.closed = true
		return w.err
	}
	w.closed = true
	return w.flush(true)
}

// reader holds one sealed chunk plus one byte read ahead, which tells a
// final chunk (end of input follows) from one that must not be final.
type reader struct {
	src   io.Reader
	s     *stream
	chunk int
	buf   []byte // sealed chunk, then maybe the first byte of the next
	ahead int    // bytes at the start of buf already read
	plain []byte // plaintext of the current chunk
	out   []byte // the part of plain not yet returned
	done  bool   // the final chunk is authenticated
	err   error  // sticky
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// next reads, authenticates and decrypts the next chunk into r.out.
func (r *reader) next() error {
	sealedLen := r.chunk + tagLen
	n, err := io.ReadFull(r.src, r.buf[r.ahead:sealedLen+1])
	total := r.ahead + n
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("read backup: %w", err)
	}
	i := r.s.counter
	if total == sealedLen+1 {
		// More follows, so this chunk must not be the final one.
		sealed := r.buf[:sealedLen]
		pt, err := r.s.open(r.plain, sealed, false)
		if err != nil {
			if _, err := r.s.open(r.plain, sealed, true); err == nil {
				return damaged("trailing data after the final chunk")
			}
			return damaged("chunk %d fails authentication (corrupted, reordered, repeated or from another backup)", i)
		}
		r.buf[0] = r.buf[sealedLen]
		r.ahead = 1
		r.s.counter++
		r.out = pt
		return nil
	}
	// End of input: this must be the final chunk.
	sealed := r.buf[:total]
	if total < tagLen {
		if total == 0 {
			return damaged("truncated: no payload after the header")
		}
		return damaged("truncated inside chunk %d", i)
	}
	pt, err := r.s.open(r.plain, sealed, true)
	if err != nil {
		if total == sealedLen {
			if _, err := r.s.open(r.plain, sealed, false); err == nil {
				return damaged("truncated after chunk %d: the final chunk is missing", i)
			}
		}
		return damaged("chunk %d fails authentication (corrupted or truncated)", i)
	}
	if len(pt) == 0 && i > 0 {
		// Encrypt never writes this; accepting it would give one payload two encodings.
		return damaged("empty final chunk after chunk %d", i-1)
	}
	r.s.counter++
	r.out = pt
	r.done = true
	return nil
}

// PayloadSize is the length of the plaintext that an archive of
// archiveSize bytes with header h decrypts to, as the writer lays chunks
// out (full chunks, then a final one of 0..ChunkSize bytes). It lets a
// caller announce the length of the decrypted stream before the key is
// derived; the content is still authenticated when read, so a damaged
// archive fails then, whatever this returned.
func PayloadSize(h *Header, archiveSize int64) (int64, error) {
	sealed := archiveSize - int64(len(h.raw))
	if sealed < tagLen {
		return 0, damaged("truncated: no payload after the header")
	}
	per := int64(h.ChunkSize) + tagLen
	chunks := (sealed + per - 1) / per
	if last := sealed - (chunks-1)*per; last < tagLen {
		return 0, damaged("truncated inside chunk %d", chunks-1)
	}
	return sealed - chunks*tagLen, nil
}
