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

// ExportPKCS12 encodes the CA's key pair and certificate as PKCS#12,
// encrypted with AES-256 (PBES2) under passphrase. legacy selects the
// 3DES encoding that old tools need; it is weak and only for them.
func (ca *CA) ExportPKCS12(passphrase string, legacy bool) ([]byte, error) {
	enc := pkcs12.Modern2023
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
// does not belong to its certificate, is refused.
func ImportPKCS12(data []byte, passphrase string) (*CA, error) {
	key, cert, _, err := pkcs12.DecodeChain(data, passphrase)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			return nil, errkind.New(errkind.Passphrase, "wrong passphrase for the PKCS#12 file")
		}
		// go-pkcs12 has no sentinel for a file without a key; say it plainly.
		if strings.Contains(err.Error(), "private key missing") {
			return nil, errkind.New(errkind.Invalid, "the PKCS#12 file holds no usable private key")
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
