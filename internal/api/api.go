// Package api holds the zone server's versioned JSON wire types, shared by
// the server and its clients. Fields only ever get added within a version.
package api

import "time"

// Prefix is the path prefix of this API version.
const Prefix = "/api/v1"

// Version answers GET /api/version.
type Version struct {
	APIVersions []string `json:"api_versions"`
	Server      string   `json:"server_version"`
	Zone        string   `json:"zone"`
	// Servers are the zone's Primary Servers, https://NAME:PORT (what
	// agents learn at registration anyway; install packs list them).
	Servers []string `json:"servers,omitempty"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody names the kind of failure for clients and says it for people.
type ErrorBody struct {
	Code    string `json:"code"` // auth, not_found, exists, usage, refused, unavailable, invalid, failure
	Message string `json:"message"`
}

// TokenResponse answers POST /api/v1/sessions.
type TokenResponse struct {
	Token string `json:"token"`
	Admin string `json:"admin"`
}

// CA summarises the zone certificate authority.
type CA struct {
	Subject      string    `json:"subject"`
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
	Key          string    `json:"key"`
	SHA256       string    `json:"sha256_fingerprint"`
	Status       string    `json:"status"`
	Internal     bool      `json:"internal"`
	CertAuthRole string    `json:"cert_auth_server"`
}

// Server is one Primary Server as the API shows it.
type Server struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	DNSNames     []string  `json:"dns_names"`
	IPs          []string  `json:"ips"`
	Port         int       `json:"port"`
	Roles        []string  `json:"roles"`
	Version      string    `json:"version"`
	CertNotAfter time.Time `json:"cert_not_after"`
	Address      string    `json:"address,omitempty"` // where peers reach it
	// Replication is the server's own report, absent when it did not answer.
	Replication *Replication `json:"replication,omitempty"`
	// Warnings, in answers to changes, are what the change affects
	// elsewhere (server-delete: satellites that pulled from it).
	Warnings []string `json:"warnings,omitempty"`
}

// ZoneInfo answers GET /api/v1/zone.
type ZoneInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Created     time.Time `json:"created"`
	CA          CA        `json:"ca"`
	Servers     []Server  `json:"servers"`
	DeviceCount int       `json:"device_count"`
}

// Admin is an administrator as listed.
type Admin struct {
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

// AdminCreate is the body of POST /api/v1/admins.
type AdminCreate struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Device is a registered device as listed.
type Device struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Kind         string    `json:"kind"` // zac, or ocs for an OCS Inventory NG agent
	OS           string    `json:"os"`
	Registered   time.Time `json:"registered"`
	LastContact  time.Time `json:"last_contact,omitzero"`
	Address      string    `json:"address"`
	CertNotAfter time.Time `json:"cert_not_after"`
	Groups       []string  `json:"groups"`
}

// Group is a device group as listed. A dynamic group has a Filter, and
// its Members are the devices that match it now.
type Group struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Created     time.Time     `json:"created"`
	Members     []string      `json:"members"`
	Filter      *DeviceFilter `json:"filter,omitempty"`
}

// GroupCreate is the body of POST /api/v1/groups; with a Filter the group
// is dynamic.
type GroupCreate struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Filter      *DeviceFilter `json:"filter,omitempty"`
}

// DeviceFilter picks devices by their record and inventory (zone.DeviceFilter).
type DeviceFilter struct {
	OS          string `json:"os,omitempty"`
	NamePattern string `json:"name_pattern,omitempty"`
	Software    string `json:"software,omitempty"`
	Version     string `json:"version,omitempty"`
	IPRange     string `json:"ip_range,omitempty"`
}

// GroupAddDevices is the body of POST /api/v1/groups/{name}/devices; devices
// are ids or unambiguous names.
type GroupAddDevices struct {
	Devices []string `json:"devices"`
}

// RegistrationKey is a registration key as listed and created.
type RegistrationKey struct {
	Key         string    `json:"key"`
	Description string    `json:"description,omitempty"`
	Group       string    `json:"group,omitempty"`
	Limit       int       `json:"limit"`
	Uses        int       `json:"uses"`
	Created     time.Time `json:"created,omitzero"`
}

// RegisterRequest is the body of POST /api/v1/registrations.
type RegisterRequest struct {
	Key      string `json:"key,omitempty"`
	CSR      string `json:"csr"` // PEM
	Hostname string `json:"hostname"`
	OS       string `json:"os"`
}

// Registration answers a registration and GET /api/v1/device/zone.
type Registration struct {
	DeviceID    string `json:"device_id"`
	Certificate string `json:"certificate,omitempty"` // PEM, at registration only
	// IssuerPEM is the CA that signed Certificate (at registration only):
	// the zone CA, or under an external zone CA the zone's device CA,
	// which the agent then learns over the TLS it verified.
	IssuerPEM string   `json:"issuer_pem,omitempty"`
	ZoneName  string   `json:"zone_name"`
	ZoneID    string   `json:"zone_id"`
	Servers   []string `json:"servers"` // base URLs, preferred first
	// ContentSatellites are the content URLs of the zone's content
	// satellites, closest to the device first.
	ContentSatellites []string `json:"content_satellites,omitempty"`
	// AuthSatellites are the https://HOST:PORT of the zone's
	// authentication satellites, closest first: agents try them before
	// Servers.
	AuthSatellites []string `json:"auth_satellites,omitempty"`
}

// Refresh answers POST /api/v1/device/refresh.
type Refresh struct {
	Registration
	Contact time.Time `json:"contact"`
	// TrustedCAs are the CAs agents trust: the zone CA, then the future
	// one while a change is under way.
	TrustedCAs []string `json:"trusted_ca_pems,omitempty"`
	// RenewCertificate asks the agent for a new device certificate (its
	// own is from a replaced CA or expires soon).
	RenewCertificate bool `json:"renew_certificate,omitempty"`
}

// Backup response headers describe what the streamed payload holds.
const (
	HeaderZone   = "X-Zonekit-Zone"
	HeaderServer = "X-Zonekit-Server"
)

// RestoreChange is one difference a restore makes.
type RestoreChange struct {
	Path   string `json:"path"`
	Action string `json:"action"` // add, change, remove, replace
}

// RestoreResult answers POST /api/v1/restore.
type RestoreResult struct {
	DryRun         bool            `json:"dry_run"`
	Zone           string          `json:"zone"`
	Server         string          `json:"server"`
	ZonekitVersion string          `json:"zonekit_version"`
	Created        time.Time       `json:"created"`
	Files          int             `json:"files"`
	Changes        []RestoreChange `json:"changes"`
	Restart        string          `json:"restart,omitempty"`
}

// CertificateAuthority answers GET /api/v1/certificate-authority.
type CertificateAuthority struct {
	Subject        string    `json:"subject"`
	Issuer         string    `json:"issuer"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	Key            string    `json:"key"` // type and length: "ECDSA P-256", "RSA 2048"
	MD5            string    `json:"md5_fingerprint"`
	SHA1           string    `json:"sha1_fingerprint"`
	SHA256         string    `json:"sha256_fingerprint"`
	Status         string    `json:"status"` // valid, expiring, expired
	Internal       bool      `json:"internal"`
	CertAuthServer string    `json:"cert_auth_server"`
	PEM            string    `json:"pem"`
	// FutureCA is the CA a change under way will activate.
	FutureCA *CertSummary `json:"future_ca,omitempty"`
	// Change names the certificate change under way, if any.
	Change string `json:"change,omitempty"`
	// DeviceCA is the CA that issues device and satellite certificates:
	// the zone CA itself under an internal CA (then DeviceCAIsZoneCA),
	// the zone's own device-issuing CA under an external one; nil when an
	// external zone has none yet.
	DeviceCA         *CertSummary `json:"device_ca,omitempty"`
	DeviceCAIsZoneCA bool         `json:"device_ca_is_zone_ca"`
}

// ServerCertificate is one server's certificate as listed by
// GET /api/v1/server-certificates.
type ServerCertificate struct {
	Server       string    `json:"server"`
	IssuedTo     string    `json:"issued_to"`
	Subject      string    `json:"subject"`
	IssuedBy     string    `json:"issued_by"`
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
	MD5          string    `json:"md5_fingerprint"`
	SHA1         string    `json:"sha1_fingerprint"`
	SHA256       string    `json:"sha256_fingerprint"`
	Status       string    `json:"status"`
	FutureStatus string    `json:"future_status"` // e.g. "New certificate created"; empty when no remint is under way
	UpdateStatus string    `json:"update_status"`
	Version      string    `json:"version"`
}

// CAExport is the body of POST /api/v1/certificate-authority/export; the
// answer is the PKCS#12 file itself.
type CAExport struct {
	Passphrase string `json:"passphrase"`
	Legacy     bool   `json:"legacy,omitempty"`
}

// CAImport is the body of POST /api/v1/certificate-authority/import.
type CAImport struct {
	PKCS12     []byte `json:"pkcs12"`
	Passphrase string `json:"passphrase"`
}

// CARoleDisable is the body of POST /api/v1/certificate-authority/role-disable.
type CARoleDisable struct {
	DeleteKey bool `json:"delete_key,omitempty"`
}

// CARole answers the role and import routes.
type CARole struct {
	Server   string `json:"server"`
	CertAuth bool   `json:"cert_auth"`
	KeyKept  bool   `json:"key_kept"`
}
