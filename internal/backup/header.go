package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"zonekit/internal/errkind"
)

// FormatVersion is the version of the file format that Encrypt writes and
// Decrypt reads. Decrypt refuses any other version, naming it.
const FormatVersion = 1

// Chunk sizes: the plaintext bytes in each payload chunk but the last.
const (
	DefaultChunkSize = 1 << 20
	MinChunkSize     = 4 << 10
	MaxChunkSize     = 16 << 20
)

const (
	magic = "ZKBACKUP"

	// Framing shared by every version: magic, version and header length
	// first, the SHA-256 of everything before it last. A reader can check
	// the checksum of a header it cannot otherwise parse, so damage to the
	// version field reads as damage, not as a version from the future.
	prefixLen    = len(magic) + 2 + 2
	checksumLen  = sha256.Size
	maxHeaderLen = 4096

	kdfArgon2id     = 1 // Argon2id, version 0x13
	cipherChaCha20  = 1 // ChaCha20-Poly1305 STREAM, see stream.go
	saltLen         = 16
	dataKeyLen      = chacha20poly1305.KeySize
	wrappedKeyLen   = dataKeyLen + chacha20poly1305.Overhead
	offKDF          = prefixLen
	offCipher       = offKDF + 1 + 4 + 4 + 1 + saltLen
	offWrappedKey   = offCipher + 1 + 4
	offChecksum     = offWrappedKey + wrappedKeyLen
	headerLenV1     = offChecksum + checksumLen
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFTime      = 64
	maxKDFThreads   = 16
)

// KDFParams are the Argon2id costs that turn a passphrase into the key that
// wraps a backup's data key. They are stored in the header, so a backup
// opens whatever the defaults are when it is read.
type KDFParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// DefaultKDF is what new backups use: 32 MiB, 30 passes, 2 lanes, about
// half a second on the 2-core server it was measured on. Memory is held to
// 32 MiB so that a whole backup or restore, TLS and runtime included, stays
// well under 64 MiB; with the memory fixed the attacker's cost per guess
// grows with memory x passes (here the same as 48 MiB x 20), not with wall
// time spent on one lane. See docs/backup-format.md for the measurements.
func DefaultKDF() KDFParams { return KDFParams{Memory: 32 << 10, Time: 30, Threads: 2} }

// check bounds the costs so that a hostile header cannot make Decrypt
// allocate gigabytes or run for minutes before the passphrase is checked.
func (p KDFParams) check() error {
	switch {
	case p.Threads == 0 || p.Threads > maxKDFThreads:
		return fmt.Errorf("Argon2id lanes %d outside 1..%d", p.Threads, maxKDFThreads)
	case p.Time == 0 || p.Time > maxKDFTime:
		return fmt.Errorf("Argon2id passes %d outside 1..%d", p.Time, maxKDFTime)
	case p.Memory > maxKDFMemoryKiB:
		return fmt.Errorf("Argon2id memory %d KiB over the limit of %d KiB (1 GiB)", p.Memory, maxKDFMemoryKiB)
	case p.Memory < 8*uint32(p.Threads):
		// Argon2 needs 8 KiB per lane; the library would silently raise it.
		return fmt.Errorf("Argon2id memory %d KiB under 8 KiB per lane", p.Memory)
	}
	return nil
}

// key derives the passphrase key. Argon2id's memory is garbage when it
// returns; with the default costs, a collection now lets the payload's
// buffers reuse its pages, where otherwise the heap would grow past the
// 64 MiB a backup may use before the collector next ran. Small costs (tests)
// are not worth a collection.
func (p KDFParams) key(passphrase, salt []byte) []byte {
	k := argon2.IDKey(passphrase, salt, p.Time, p.Memory, p.Threads, dataKeyLen)
	if p.Memory >= 8<<10 {
		runtime.GC()
	}
	return k
}

// Header is the parsed header of a backup file. ReadHeader has checked its
// checksum and bounds; only Decrypt, with the passphrase, can check that it
// is authentic.
type Header struct {
	Version    int
	KDF        KDFParams
	Salt       [saltLen]byte
	ChunkSize  int // plaintext bytes per payload chunk
	WrappedKey [wrappedKeyLen]byte
	Checksum   [checksumLen]byte // SHA-256 of the header bytes before it

	raw []byte // as read: the wrap's associated data is taken from here
}

// String describes the header for diagnostics (zman --verify).
func (h *Header) String() string {
	return fmt.Sprintf("zonekit backup format %d, Argon2id m=%d KiB t=%d p=%d, ChaCha20-Poly1305 in %d-byte chunks",
		h.Version, h.KDF.Memory, h.KDF.Time, h.KDF.Threads, h.ChunkSize)
}

// marshal returns the header bytes. Before the wrapped key and checksum are
// set, its first offWrappedKey bytes are the associated data of the wrap.
func (h *Header) marshal() []byte {
	b := make([]byte, headerLenV1)
	copy(b, magic)
	binary.BigEndian.PutUint16(b[8:], uint16(h.Version))
	binary.BigEndian.PutUint16(b[10:], uint16(headerLenV1))
	b[offKDF] = kdfArgon2id
	binary.BigEndian.PutUint32(b[offKDF+1:], h.KDF.Memory)
	binary.BigEndian.PutUint32(b[offKDF+5:], h.KDF.Time)
	b[offKDF+9] = h.KDF.Threads
	copy(b[offKDF+10:], h.Salt[:])
	b[offCipher] = cipherChaCha20
	binary.BigEndian.PutUint32(b[offCipher+1:], uint32(h.ChunkSize))
	copy(b[offWrappedKey:], h.WrappedKey[:])
	copy(b[offChecksum:], h.Checksum[:])
	return b
}

// ReadHeader reads and checks the header at the start of r, without a
// passphrase: the magic, the checksum (an unkeyed SHA-256, so accidental
// damage is told apart from a wrong passphrase), the version and the bounds
// of every parameter. It reads exactly the header's bytes from r.
func ReadHeader(r io.Reader) (*Header, error) {
	var pre [prefixLen]byte
	if n, err := io.ReadFull(r, pre[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, damaged("the file is empty")
		}
		return nil, headerReadErr(err)
	}
	if string(pre[:len(magic)]) != magic {
		return nil, damaged("not a zonekit backup (it does not start with %q)", magic)
	}
	version := int(binary.BigEndian.Uint16(pre[8:]))
	n := int(binary.BigEndian.Uint16(pre[10:]))
	if n < prefixLen+checksumLen || n > maxHeaderLen {
		return nil, damaged("impossible header length %d", n)
	}
	raw := make([]byte, n)
	copy(raw, pre[:])
	if _, err := io.ReadFull(r, raw[prefixLen:]); err != nil {
		return nil, headerReadErr(err)
	}
	sum := sha256.Sum256(raw[:n-checksumLen])
	if !bytes.Equal(sum[:], raw[n-checksumLen:]) {
		return nil, damaged("header checksum mismatch")
	}
	if version != FormatVersion {
		if version > FormatVersion {
			return nil, errkind.New(errkind.Failure, "backup format version %d is newer than this zonekit reads (%d): use a newer zonekit", version, FormatVersion)
		}
		return nil, damaged("unknown format version %d", version)
	}
	if n != headerLenV1 {
		return nil, damaged("format %d header is %d bytes, want %d", version, n, headerLenV1)
	}
	h := &Header{Version: version, raw: raw}
	if raw[offKDF] != kdfArgon2id {
		return nil, damaged("unknown key derivation function %d", raw[offKDF])
	}
	h.KDF = KDFParams{
		Memory:  binary.BigEndian.Uint32(raw[offKDF+1:]),
		Time:    binary.BigEndian.Uint32(raw[offKDF+5:]),
		Threads: raw[offKDF+9],
	}
	if err := h.KDF.check(); err != nil {
		return nil, damaged("header refused: %v", err)
	}
	copy(h.Salt[:], raw[offKDF+10:])
	if raw[offCipher] != cipherChaCha20 {
		return nil, damaged("unknown cipher %d", raw[offCipher])
	}
	chunk := binary.BigEndian.Uint32(raw[offCipher+1:])
	if chunk < MinChunkSize || chunk > MaxChunkSize {
		return nil, damaged("header refused: chunk size %d outside %d..%d", chunk, MinChunkSize, MaxChunkSize)
	}
	h.ChunkSize = int(chunk)
	copy(h.WrappedKey[:], raw[offWrappedKey:])
	copy(h.Checksum[:], raw[offChecksum:])
	return h, nil
}

func headerReadErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged("truncated inside the header")
	}
	return fmt.Errorf("read backup header: %w", err)
}
