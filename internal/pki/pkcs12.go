package pki

import (
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"software.sslmate.com/src/go-pkcs12"

	"zonekit/internal/errkind"
)

// Bounds on a PKCS#12 file read from outside, checked before any key
// derivation: a CA backup is a few kilobytes and its KDFs run a few
// hundred thousand iterations at most, while a hostile file naming 2^31-1
// iterations would keep a core busy for an hour. keytool caps counts at
// 5,000,000; we export with PKCS12Iterations and accept up to
// MaxPKCS12Iterations (ours, OpenSSL's 2048, Windows' 2000 and keytool's
// 10,000 all fit).
const (
	MaxPKCS12Size       = 512 << 10
	MaxPKCS12Iterations = 2_000_000
	// PKCS12Iterations is the PBKDF2-HMAC-SHA-256 count of our exports:
	// OWASP's recommendation (2023) for that function.
	PKCS12Iterations = 600_000
)

// ExportPKCS12 encodes the CA's key pair and certificate as PKCS#12,
// encrypted with AES-256 (PBES2, PBKDF2-HMAC-SHA-256 with
// PKCS12Iterations) under passphrase. legacy selects the 3DES encoding
// that old tools need; it is weak and only for them.
func (ca *CA) ExportPKCS12(passphrase string, legacy bool) ([]byte, error) {
	enc := pkcs12.Modern2023.WithIterations(PKCS12Iterations)
	if legacy {
		enc = pkcs12.LegacyDES
	}
	data, err := enc.WithRand(rand.Reader).Encode(ca.Key, ca.Cert, nil, passphrase)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12: %w", err)
	}
	return data, nil
}

// ImportPKCS12 reads a CA key pair from PKCS#12. A wrong passphrase is an
// errkind.Passphrase error; a file without a private key, or whose key
// does not belong to its certificate, is refused, and so is one larger
// than MaxPKCS12Size or with a KDF iteration count above
// MaxPKCS12Iterations, before any key derivation.
func ImportPKCS12(data []byte, passphrase string) (*CA, error) {
	if len(data) > MaxPKCS12Size {
		return nil, errkind.New(errkind.Invalid, "the PKCS#12 file is larger than %d bytes: not a CA backup", MaxPKCS12Size)
	}
	key, cert, _, err := pkcs12.DecodeChainMaxIterations(data, passphrase, MaxPKCS12Iterations)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIterationCount) {
			return nil, errkind.New(errkind.Invalid, "refused the PKCS#12 file: %v (a hostile or damaged file)", strings.TrimPrefix(err.Error(), "pkcs12: "))
		}
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			return nil, errkind.New(errkind.Passphrase, "wrong passphrase for the PKCS#12 file")
		}
		// go-pkcs12 has no sentinel for a file without a key; say it plainly.
		if strings.Contains(err.Error(), "private key missing") {
			return nil, errkind.New(errkind.Invalid, "the PKCS#12 file holds no usable private key")
		}
		if strings.Contains(err.Error(), "error reading P12 data") {
			// The asn1 detail is a dump of Go struct tags: no help to anyone.
			return nil, errkind.New(errkind.Invalid, "not a PKCS#12 file (expected DER-encoded PKCS#12, as certificate-authority-export writes)")
		}
		return nil, errkind.Wrap(errkind.Invalid, fmt.Errorf("read PKCS#12: %w", err))
	}
	signer, ok := key.(crypto.Signer)
	if !ok || key == nil {
		return nil, errkind.New(errkind.Invalid, "the PKCS#12 file holds no usable private key")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := signer.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, errkind.New(errkind.Invalid, "the PKCS#12 file's private key does not belong to its certificate")
	}
	if !cert.IsCA {
		return nil, errkind.New(errkind.Invalid, "the PKCS#12 file's certificate (%s) is not a CA certificate", cert.Subject)
	}
	return &CA{Cert: cert, Key: signer}, nil
}
