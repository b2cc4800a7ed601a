// Package pki creates the zone CA and the certificates it issues to servers
// and devices, and describes certificates for people (fingerprints, key
// descriptions). Everything is PEM on the outside, crypto/x509 inside.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// KeyType names a key algorithm and size.
type KeyType string

const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
)

// KeyTypes lists the supported key types, the default first.
func KeyTypes() []KeyType { return []KeyType{ECDSAP256, RSA2048, RSA3072, RSA4096} }

// ParseKeyType accepts the names of KeyTypes.
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes() {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	names := make([]string, 0, 4)
	for _, k := range KeyTypes() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("unknown key type %q (want one of %s)", s, strings.Join(names, ", "))
}

// GenerateKey makes a new private key of type kt.
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key type %q", kt)
}

func serialNumber() (*big.Int, error) {
	// 128 random bits, positive, as CA/Browser Forum practice asks for at least 64.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// CA is a certificate authority able to sign.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a self-signed zone CA named after the zone, valid for years.
// A zone name too long for the prefix within MaxCommonName is the CA's
// name alone.
func NewCA(zoneName string, kt KeyType, years int, now time.Time) (*CA, error) {
	cn := "zonekit zone CA " + zoneName
	if len(cn) > MaxCommonName {
		cn = zoneName
	}
	return NewCAWith(CAOptions{CommonName: cn, Organization: zoneName, KeyType: kt, Years: years, Now: now})
}

// LoadCA reads a CA certificate and its private key from PEM files.
func LoadCA(certPath, keyPath string) (*CA, error) {
	cert, err := ReadCertFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	// A key left behind by an earlier CA would sign certificates nobody
	// can verify; refuse it here rather than at the next registration.
	if !SameKey(cert.PublicKey, key) {
		return nil, fmt.Errorf("%s is not the key of the zone CA in %s (SHA-256 %s): it belongs to another CA", keyPath, certPath, Fingerprint(cert, "sha256"))
	}
	return &CA{Cert: cert, Key: key}, nil
}

// MaxCommonName is the longest common name RFC 5280 allows
// (ub-common-name, 64 characters).
const MaxCommonName = 64

// ServerRequest describes a server certificate.
type ServerRequest struct {
	CommonName string // the server's FQDN
	DNSNames   []string
	IPs        []net.IP
	PublicKey  crypto.PublicKey
	NotAfter   time.Time // zero means as long as the CA
}

// IssueServer signs a TLS server certificate that is also usable as a
// client certificate for server-to-server mutual TLS.
func (ca *CA) IssueServer(req ServerRequest, now time.Time) (*x509.Certificate, error) {
	dns := append([]string(nil), req.DNSNames...)
	if req.CommonName != "" && !contains(dns, req.CommonName) && net.ParseIP(req.CommonName) == nil {
		dns = append([]string{req.CommonName}, dns...)
	}
	return ca.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: req.CommonName, Organization: ca.Cert.Subject.Organization},
		DNSNames:    dns,
		IPAddresses: req.IPs,
		KeyUsage:    x509.KeyUsageDigitalSignature | keyEnciphermentFor(req.PublicKey),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, req.PublicKey, req.NotAfter, now)
}

// SignDeviceCSR issues a client certificate for device id from a PEM CSR.
// The subject is set by the CA: whatever the CSR asks for, the certificate
// names the device id, so a device cannot claim another's identity.
func (ca *CA) SignDeviceCSR(csrPEM []byte, id string, now time.Time) (*x509.Certificate, error) {
	csr, err := ParseCSRPEM(csrPEM)
	if err != nil {
		return nil, err
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return ca.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: id, Organization: ca.Cert.Subject.Organization, OrganizationalUnit: []string{"devices"}},
		KeyUsage:    x509.KeyUsageDigitalSignature | keyEnciphermentFor(csr.PublicKey),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, csr.PublicKey, time.Time{}, now)
}

func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, notAfter, now time.Time) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-5 * time.Minute)
	if notAfter.IsZero() || notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl.NotAfter = notAfter
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func keyEnciphermentFor(pub crypto.PublicKey) x509.KeyUsage {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return x509.KeyUsageKeyEncipherment
	}
	return 0
}

// CheckPublicKey refuses keys too weak to put in the zone.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return fmt.Errorf("ECDSA key on %s is too small", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too small (minimum 2048)", k.N.BitLen())
		}
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	return nil
}

// NewCSR makes a PEM certificate request for key with a common name.
func NewCSR(key crypto.Signer, commonName string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// EncodeCertPEM encodes a certificate as PEM.
func EncodeCertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// EncodeKeyPEM encodes a private key as PKCS#8 PEM.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertPEM returns the first certificate in PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertsPEM returns every certificate in PEM data, in order.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ReadCertFile reads the first certificate of a PEM file.
func ReadCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	c, err := ParseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	return c, nil
}

// ParseKeyPEM reads a PKCS#8, PKCS#1 or SEC 1 private key.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return s, nil
}

// ParseCSRPEM reads a certificate request and checks its signature.
func ParseCSRPEM(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM certificate request found")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return csr, nil
}

// Fingerprint formats a hash of the certificate's DER as colon-separated hex.
func Fingerprint(c *x509.Certificate, alg string) string {
	var sum []byte
	switch alg {
	case "md5":
		s := md5.Sum(c.Raw)
		sum = s[:]
	case "sha1":
		s := sha1.Sum(c.Raw)
		sum = s[:]
	default:
		s := sha256.Sum256(c.Raw)
		sum = s[:]
	}
	h := strings.ToUpper(hex.EncodeToString(sum))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// KeyDescription says "ECDSA P-256" or "RSA 2048".
func KeyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// SerialHex formats a certificate serial number as lowercase hex.
func SerialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ExpiringWithin is how close to its end a certificate counts as expiring.
const ExpiringWithin = 90 * 24 * time.Hour

// Status says "valid", "expiring" (within ExpiringWithin) or "expired"
// (also before its start) for a certificate at now.
func Status(c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter) || now.Before(c.NotBefore):
		return "expired"
	case c.NotAfter.Sub(now) < ExpiringWithin:
		return "expiring"
	}
	return "valid"
}
