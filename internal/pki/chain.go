package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// maxCertInput bounds what ParseCertificates reads: a chain is a few
// kilobytes; anything near this is not a certificate file.
const maxCertInput = 1 << 20

// ParseCertificates reads certificates in any of the forms administrators
// are handed: PEM (one or many, with or without text around them), a DER
// certificate (.der .cer .crt), or PKCS#7 (.p7b .p7c, DER or PEM). Order is
// kept as found.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if len(data) > maxCertInput {
		return nil, fmt.Errorf("certificate file is %d bytes, larger than any chain (limit %d)", len(data), maxCertInput)
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return parsePEMCertificates(data)
	}
	if len(data) == 0 {
		return nil, errors.New("certificate file is empty")
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		return []*x509.Certificate{c}, nil
	}
	if certs, err := parsePKCS7(data); err == nil {
		return certs, nil
	}
	return nil, errors.New("not a certificate: expected PEM, DER or PKCS#7 (.p7b)")
}

func parsePEMCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
			}
			certs = append(certs, c)
		case "PKCS7", "CERTIFICATE CHAIN":
			cs, err := parsePKCS7(block.Bytes)
			if err != nil {
				return nil, err
			}
			certs = append(certs, cs...)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate found in the PEM data")
	}
	return certs, nil
}

func parsePKCS7(der []byte) (certs []*x509.Certificate, err error) {
	// The PKCS#7 parser is third-party code fed with untrusted bytes: a
	// panic there must become an error, not a crashed server.
	defer func() {
		if p := recover(); p != nil {
			certs, err = nil, errors.New("malformed PKCS#7 data")
		}
	}()
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#7: %w", err)
	}
	if len(p7.Certificates) == 0 {
		return nil, errors.New("the PKCS#7 data holds no certificates")
	}
	return p7.Certificates, nil
}

// ParsePrivateKey reads a private key as PEM (PKCS#8, PKCS#1, SEC 1) or DER
// (PKCS#8, PKCS#1, SEC 1), as found in a remint repository's key.der.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return ParseKeyPEM(data)
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(data); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(data); err != nil {
			if key, err = x509.ParseECPrivateKey(data); err != nil {
				return nil, errors.New("not a private key: expected PEM or DER (PKCS#8, PKCS#1 or SEC 1)")
			}
		}
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return s, nil
}

// SplitChain orders certificates from a file into leaf, intermediates and
// root: the root is the self-signed one (if any), the leaf the one that
// signs nothing else in the set.
func SplitChain(certs []*x509.Certificate) (leaf *x509.Certificate, intermediates []*x509.Certificate, root *x509.Certificate) {
	signsAnother := func(c *x509.Certificate) bool {
		for _, o := range certs {
			if o != c && bytes.Equal(o.RawIssuer, c.RawSubject) && o.CheckSignatureFrom(c) == nil {
				return true
			}
		}
		return false
	}
	for _, c := range certs {
		switch {
		case isSelfSigned(c):
			if root == nil {
				root = c
			}
		case !signsAnother(c) && leaf == nil:
			leaf = c
		default:
			intermediates = append(intermediates, c)
		}
	}
	return leaf, intermediates, root
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// RootOfChain returns the root CA of an imported chain (a lone root, or a
// chain ending in one) and the intermediates under it. A chain without its
// root is refused: the zone must trust a root, not an intermediate.
func RootOfChain(certs []*x509.Certificate) (root *x509.Certificate, intermediates []*x509.Certificate, err error) {
	var leaf *x509.Certificate
	leaf, intermediates, root = SplitChain(certs)
	if leaf != nil && leaf.IsCA {
		intermediates = append(intermediates, leaf)
	}
	if root == nil {
		return nil, nil, errors.New("the chain has no self-signed root certificate: include the whole chain up to the root")
	}
	if !root.IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", root.Subject)
	}
	for _, c := range intermediates {
		if !c.IsCA {
			return nil, nil, fmt.Errorf("%s is not a CA certificate", c.Subject)
		}
	}
	return root, intermediates, nil
}

// SameKey reports whether pub is the public half of key.
func SameKey(pub crypto.PublicKey, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	k, ok := key.Public().(equaler)
	return ok && k.Equal(pub)
}

// ServerCertCheck is what a server certificate must satisfy to be used.
type ServerCertCheck struct {
	Root          *x509.Certificate   // the CA it must chain to
	Intermediates []*x509.Certificate // known intermediates (from the CA chain)
	PublicKey     crypto.PublicKey    // the key it must certify (from the CSR or key file)
	Name          string              // the server's FQDN; wildcards match
	At            time.Time           // when it must be valid (activation)
}

// CheckServerCert verifies a server certificate from an administrator:
// that it certifies the expected key, chains to the expected root (through
// intermediates sent with it or known), is for the server's name (a
// wildcard counts) and serves TLS. certs is what the file held, leaf first
// or in any order.
func CheckServerCert(certs []*x509.Certificate, chk ServerCertCheck) (leaf *x509.Certificate, chain []*x509.Certificate, err error) {
	if len(certs) == 0 {
		return nil, nil, errors.New("no certificate given")
	}
	leaf, inter, _ := SplitChain(certs)
	if leaf == nil {
		leaf = certs[0]
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if k, ok := chk.PublicKey.(equaler); !ok || !k.Equal(leaf.PublicKey) {
		return nil, nil, fmt.Errorf("the certificate for %s does not match the server's key (its CSR or key.der)", leaf.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(chk.Root)
	pool := x509.NewCertPool()
	for _, c := range append(inter, chk.Intermediates...) {
		pool.AddCert(c)
	}
	at := chk.At
	if at.IsZero() || at.Before(leaf.NotBefore) {
		at = leaf.NotBefore.Add(time.Second)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, nil, fmt.Errorf("the certificate for %s does not chain to the CA %s: %w", leaf.Subject.CommonName, chk.Root.Subject, err)
	}
	if chk.Name != "" {
		if err := leaf.VerifyHostname(chk.Name); err != nil {
			if ip := net.ParseIP(chk.Name); ip == nil {
				return nil, nil, fmt.Errorf("the certificate is not for %s: %w", chk.Name, err)
			}
		}
	}
	// The chain served is leaf and intermediates; the root is the zone CA
	// every client already holds.
	full := chains[0]
	return leaf, full[:len(full)-1], nil
}

// UncoveredNames returns the names and addresses in use that c does not
// cover, in the order given and without repeats: what clients reaching
// the server by those names would be refused at once. A wildcard in use
// is covered only by the same wildcard, since any name under it may be
// the one a client dials.
func UncoveredNames(c *x509.Certificate, inUse []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range inUse {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if !covers(c, n) {
			out = append(out, n)
		}
	}
	return out
}

func covers(c *x509.Certificate, name string) bool {
	if ip := net.ParseIP(name); ip != nil {
		for _, a := range c.IPAddresses {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	if strings.HasPrefix(name, "*.") {
		for _, d := range c.DNSNames {
			if strings.EqualFold(strings.TrimSuffix(d, "."), name) {
				return true
			}
		}
		return false
	}
	return c.VerifyHostname(name) == nil
}

// NamesOf are the names and addresses c is valid for: its DNS and IP
// subject alternative names, or its common name when it has none.
func NamesOf(c *x509.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 && c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	return out
}
