package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"
)

// CAOptions describe a new CA certificate (a remint or a change of CA).
type CAOptions struct {
	CommonName   string
	Organization string
	KeyType      KeyType
	Years        int
	Now          time.Time
	Key          crypto.Signer // optional: a key made beforehand (for example in parallel with others)
}

// NewCAWith creates a self-signed CA with the subject given.
func NewCAWith(o CAOptions) (*CA, error) {
	if o.Years < 1 || o.Years > 10 {
		return nil, fmt.Errorf("CA validity must be 1 to 10 years, not %d", o.Years)
	}
	if o.CommonName == "" {
		return nil, fmt.Errorf("the CA needs a common name")
	}
	if len(o.CommonName) > MaxCommonName || len(o.Organization) > MaxCommonName {
		return nil, fmt.Errorf("the CA's common name and organization may have at most %d characters (RFC 5280)", MaxCommonName)
	}
	key := o.Key
	if key == nil {
		var err error
		if key, err = GenerateKey(o.KeyType); err != nil {
			return nil, err
		}
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	subject := pkix.Name{CommonName: o.CommonName}
	if o.Organization != "" {
		subject.Organization = []string{o.Organization}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             o.Now.Add(-5 * time.Minute),
		NotAfter:              o.Now.AddDate(o.Years, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CrossSign certifies next's subject and key with ca's key: proof, kept
// after ca expires, that whoever held the old zone CA handed over to the
// new one. Agents that missed a remint use it to re-establish trust.
func (ca *CA) CrossSign(next *x509.Certificate) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               next.Subject,
		NotBefore:             next.NotBefore,
		NotAfter:              next.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, next.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("cross-sign %s: %w", next.Subject, err)
	}
	return x509.ParseCertificate(der)
}

// VouchedFor reports whether cross is a certificate of next's subject and
// key signed by one of trusted. Validity dates are deliberately ignored:
// the old CA has often expired by the time an agent needs this.
func VouchedFor(next *x509.Certificate, cross []*x509.Certificate, trusted []*x509.Certificate) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	for _, c := range cross {
		k, ok := c.PublicKey.(equaler)
		if !ok || !k.Equal(next.PublicKey) || !c.IsCA {
			continue
		}
		for _, t := range trusted {
			if c.CheckSignatureFrom(t) == nil {
				return true
			}
		}
	}
	return false
}

// GenerateKeys makes n keys of type kt on every core: RSA key generation
// is the slow part of reminting many servers.
func GenerateKeys(kt KeyType, n int) ([]crypto.Signer, error) {
	keys := make([]crypto.Signer, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(n, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				keys[i], errs[i] = GenerateKey(kt)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// CSRSubject is what an external CA is asked to certify for a server.
type CSRSubject struct {
	CommonName         string   `json:"common_name"`
	Organization       string   `json:"organization,omitempty"`
	OrganizationalUnit string   `json:"organizational_unit,omitempty"`
	Locality           string   `json:"locality,omitempty"`
	State              string   `json:"state,omitempty"`
	Country            string   `json:"country,omitempty"`
	DNSNames           []string `json:"dns_names,omitempty"`
}

// NewServerCSR makes a PEM certificate request for a server's key.
func NewServerCSR(key crypto.Signer, s CSRSubject, ips []string) ([]byte, error) {
	name := pkix.Name{CommonName: s.CommonName}
	add := func(dst *[]string, v string) {
		if v != "" {
			*dst = []string{v}
		}
	}
	add(&name.Organization, s.Organization)
	add(&name.OrganizationalUnit, s.OrganizationalUnit)
	add(&name.Locality, s.Locality)
	add(&name.Province, s.State)
	add(&name.Country, s.Country)
	dns := append([]string(nil), s.DNSNames...)
	if s.CommonName != "" && !contains(dns, s.CommonName) {
		dns = append([]string{s.CommonName}, dns...)
	}
	tmpl := &x509.CertificateRequest{Subject: name, DNSNames: dns}
	for _, ip := range ips {
		if p := net.ParseIP(ip); p != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, p)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request for %s: %w", s.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// EncodeChainPEM encodes certificates as consecutive PEM blocks.
func EncodeChainPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, EncodeCertPEM(c)...)
	}
	return out
}

// EncodeKeyDER encodes a private key as PKCS#8 DER (the remint repository's key.der).
func EncodeKeyDER(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return der, nil
}

// KeyTypeOf names the key type of pub (ECDSA P-256 for anything else).
func KeyTypeOf(pub crypto.PublicKey) KeyType {
	switch KeyDescription(pub) {
	case "RSA 2048":
		return RSA2048
	case "RSA 3072":
		return RSA3072
	case "RSA 4096":
		return RSA4096
	}
	return ECDSAP256
}

// DeviceCAYears is the life of a device-issuing CA; the zone replaces it
// within ExpiringWithin of its end.
const DeviceCAYears = 5

// NewDeviceCA creates the zone's device-issuing CA, kept while the zone
// CA is external: a self-signed ECDSA P-256 CA that the zone's servers
// trust beside the zone CA for client certificates. It signs only what
// the zone issues itself (device and satellite certificates, CPK
// signatures), never a zone server's certificate.
func NewDeviceCA(zoneName string, now time.Time) (*CA, error) {
	return NewCAWith(CAOptions{CommonName: cutName("zonekit device CA " + zoneName), Organization: cutName(zoneName),
		KeyType: ECDSAP256, Years: DeviceCAYears, Now: now})
}

// cutName shortens s to MaxCommonName bytes at a character boundary.
func cutName(s string) string {
	if len(s) <= MaxCommonName {
		return s
	}
	s = s[:MaxCommonName]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
