package api

import "time"

// RemintRequest starts a certificate change: POST
// /api/v1/certificate-authority/remint (kind remint-ca),
// /api/v1/certificate-authority/change (change-ca-internal or -external) and
// /api/v1/server-certificates/remint (remint-servers).
type RemintRequest struct {
	Name       string    `json:"name,omitempty"`        // the update's name
	Activation time.Time `json:"activation,omitzero"`   // zero: the last moment before the current CA expires minus a day
	CommonName string    `json:"common_name,omitempty"` // of the new CA, or of the server certificate (one server)
	KeyType    string    `json:"key_type,omitempty"`
	Years      int       `json:"years,omitempty"`     // validity of a new internal CA
	DNSNames   []string  `json:"dns_names,omitempty"` // added to every server certificate's SAN
	Servers    []string  `json:"servers,omitempty"`   // server names or IDs (remint-servers); empty means all
	CAServer   string    `json:"ca_server,omitempty"` // change-ca-internal: which server holds the new CA
	External   bool      `json:"external,omitempty"`
	ChainPEM   string    `json:"chain_pem,omitempty"` // change-ca-external: the root, or the chain ending in it
	Manual     bool      `json:"manual,omitempty"`    // external: the administrator places certificates in remint-repo
	// Subject fields for CSRs to an external CA.
	Organization       string `json:"organization,omitempty"`
	OrganizationalUnit string `json:"organizational_unit,omitempty"`
	Locality           string `json:"locality,omitempty"`
	State              string `json:"state,omitempty"`
	Country            string `json:"country,omitempty"`
}

// CertificateChange answers GET /api/v1/certificate-changes/current and
// the routes that start one.
type CertificateChange struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	Actor      string    `json:"actor"`
	Started    time.Time `json:"started"`
	Activation time.Time `json:"activation"`
	Immediate  bool      `json:"immediate,omitempty"`
	Cancelable bool      `json:"cancelable"`
	// Stalled: due, but a server still has no future certificate; it can
	// be cancelled (and a new change started).
	Stalled   bool           `json:"stalled,omitempty"`
	FutureCA  *CertSummary   `json:"future_ca,omitempty"`
	Servers   []FutureServer `json:"servers"`
	LastError string         `json:"last_error,omitempty"`
	// ActivatedAt once: with kind "activated", the kind of the change that
	// took effect before the answer (activation now, or an expired CA),
	// and whether devices must re-establish trust (a new CA).
	Activated string `json:"activated,omitempty"`
	Retrust   bool   `json:"retrust,omitempty"`
	CAExpired bool   `json:"ca_expired,omitempty"`
	// Warnings of the request that answered this (a certificate accepted
	// with -f that drops names in use).
	Warnings []string `json:"warnings,omitempty"`
}

// CertSummary describes a certificate briefly.
type CertSummary struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Key       string    `json:"key"`
	SHA256    string    `json:"sha256_fingerprint"`
	PEM       string    `json:"pem,omitempty"`
	Warnings  []string  `json:"warnings,omitempty"`
}

// FutureServer is one server's part in a certificate change.
type FutureServer struct {
	Server string       `json:"server"`
	Status string       `json:"status"`
	Error  string       `json:"error,omitempty"`
	Cert   *CertSummary `json:"certificate,omitempty"`
	HasCSR bool         `json:"has_csr"`
}

// CertificateUpload is the body of POST
// /api/v1/server-certificates/{server}/import and .../certificate (sacert):
// a certificate or chain in PEM, DER or PKCS#7.
type CertificateUpload struct {
	Data  []byte `json:"data"`
	Force bool   `json:"force,omitempty"`
}

// Trust answers GET /api/v1/trust, unauthenticated: what an agent needs to
// decide whether to trust the zone's current CA.
type Trust struct {
	Zone      string   `json:"zone"`
	CAPEM     string   `json:"ca_pem"`
	FuturePEM string   `json:"future_ca_pem,omitempty"`
	CrossPEMs []string `json:"cross_cert_pems,omitempty"`
	ServerPEM string   `json:"server_pem"`
}

// DeviceCertificateRequest renews a device certificate: POST
// /api/v1/device/certificate (device certificate) or /api/v1/device/retrust
// (administrator credentials, for a device whose trust is broken).
type DeviceCertificateRequest struct {
	DeviceID string `json:"device_id,omitempty"` // retrust only
	CSR      string `json:"csr"`
}

// DeviceCertificate answers those routes.
type DeviceCertificate struct {
	Certificate string   `json:"certificate"`
	TrustedCAs  []string `json:"trusted_ca_pems"`
}

// HeaderCertExpiry, on admin answers, names each zone certificate that
// expires within 90 days or has expired, one header value each, earliest
// first: "RFC3339-time what".
const HeaderCertExpiry = "X-Zonekit-Certificate-Expiry"

// CPKSignRequest asks the zone CA to sign a CPK's manifest digest:
// POST /api/v1/cpk-signatures.
type CPKSignRequest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// CPKSignature answers it.
type CPKSignature struct {
	Algorithm string `json:"algorithm"`
	Value     []byte `json:"value"`
	CAPEM     string `json:"ca_pem"`
}

// CertificateCheck answers GET /api/v1/certificate-changes/check:
// what clients would see of each server at At (the activation of the
// change under way, or now when there is none).
type CertificateCheck struct {
	Change  string        `json:"change,omitempty"` // empty: the certificates in use
	At      time.Time     `json:"at"`
	CA      string        `json:"ca"`
	Servers []ServerCheck `json:"servers"`
}

// ServerCheck is one server's result; no problems means it would work.
type ServerCheck struct {
	Server   string    `json:"server"`
	SHA256   string    `json:"sha256_fingerprint,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Problems []string  `json:"problems,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
}

// CSRRegenerate is the body of POST /api/v1/server-certificates/{server}/csr:
// the server makes a new key and CSR for the change under way, with these
// DNS names added.
type CSRRegenerate struct {
	DNSNames []string `json:"dns_names,omitempty"`
}
