package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"golang.org/x/crypto/hkdf"
)

// The test vector of docs/backup-format.md. It pins the format: if this
// test fails, either the code or the specification has changed, and files
// written before can no longer be read by one of them.
const (
	vectorPass      = "correct horse battery staple"
	vectorPlain     = "hello, zonekit\n"
	vectorSalt      = "000102030405060708090a0b0c0d0e0f"
	vectorDataKey   = "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
	vectorPassKey   = "92dc5d67019623868bde079275e522f4b7e8213d3414ed85cbc2ac8a41117288"
	vectorPayKey    = "c3b4c0f85c81675268de2d16ca0e9c42a1283ee9c4efd34e56e9e79663ffb3b0"
	vectorNoncePfx  = "ff59038371b0ea"
	vectorBackupHex = "5a4b4241434b55500001007b01000000400000000101000102030405060708090a0b0c0d0e0f01000010008efa5e0b34" +
		"d06ad954d5095c3c0f7e2202f2314f25c9887b74dce756bcf26924e4f54ca761c6a2fcc7d83470febb582ab131ac0675" +
		"bd67506460f9e7a9e5d9949fd170a1eefe38c1e39df89e650b798c259f2d519de9fcd40521321111c5defbe2a1f0d11b" +
		"d261edbaf9f870af6ec2"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVector(t *testing.T) {
	salt, dataKey, file := unhex(t, vectorSalt), unhex(t, vectorDataKey), unhex(t, vectorBackupHex)
	kdf := KDFParams{Memory: 64, Time: 1, Threads: 1}

	if got := hex.EncodeToString(kdf.key([]byte(vectorPass), salt)); got != vectorPassKey {
		t.Errorf("passphrase key %s", got)
	}
	okm := make([]byte, 39)
	io.ReadFull(hkdf.New(sha256.New, dataKey, nil, []byte(payloadInfo)), okm)
	if hex.EncodeToString(okm[:32]) != vectorPayKey || hex.EncodeToString(okm[32:]) != vectorNoncePfx {
		t.Errorf("payload key %x, nonce prefix %x", okm[:32], okm[32:])
	}

	var buf bytes.Buffer
	w, err := encrypt(&buf, []byte(vectorPass), kdf, MinChunkSize, bytes.NewReader(append(salt, dataKey...)))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, vectorPlain)
	w.Close()
	if !bytes.Equal(buf.Bytes(), file) {
		t.Errorf("Encrypt made\n%x\nwant\n%x", buf.Bytes(), file)
	}
	got, err := decryptBytes(file, []byte(vectorPass))
	if err != nil || string(got) != vectorPlain {
		t.Errorf("Decrypt = %q, %v", got, err)
	}
}
