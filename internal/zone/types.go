// Package zone is the domain of a management zone: the zone itself, its
// servers and their roles, devices, groups, administrators, registration
// keys and the audit log. Every change is a named Command applied in one
// store transaction, the unit that peers replicate and the audit records.
package zone

import "time"

// Role is a duty a Primary Server holds for the zone.
type Role string

const (
	RoleCertAuth      Role = "CertAuth"
	RoleDatabase      Role = "Database"
	RoleMasterPrimary Role = "MasterPrimary"
)

// Zone is the zone's own record.
type Zone struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Created    time.Time `json:"created"`
	CAInternal bool      `json:"ca_internal"`
	CACertPEM  string    `json:"ca_cert_pem"`
	// PreviousCAs are the zone CAs replaced by remints (newest first):
	// device certificates they issued are still accepted until they expire.
	PreviousCAs []string `json:"previous_ca_pems,omitempty"`
	// CrossCerts certify each new CA with the key of the one it replaced,
	// so that an agent holding only an old CA can re-establish trust.
	CrossCerts []string `json:"cross_cert_pems,omitempty"`
	// DeviceCA is the device-issuing CA kept while the zone CA is
	// external (whose key the zone does not hold): it signs device and
	// satellite certificates and CPKs. DeviceCAKey is its key, sealed
	// with the zone's sealing key (the SPK values key of conf/security).
	// Both are empty under an internal CA, which issues these itself.
	DeviceCA    string `json:"device_ca_pem,omitempty"`
	DeviceCAKey string `json:"device_ca_key_sealed,omitempty"`
}

// Server is a Primary Server of the zone.
type Server struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"` // FQDN, also the certificate's CN
	DNSNames []string `json:"dns_names"`
	IPs      []string `json:"ips"`
	Port     int      `json:"port"`
	// Address is where peers reach the server's HTTPS port (host:port)
	// for replication; empty before the server first started replicating.
	Address      string    `json:"address,omitempty"`
	ContentPort  int       `json:"content_port,omitempty"` // plain-HTTP fragments; 0 when off
	Roles        []Role    `json:"roles"`
	Version      string    `json:"version"`
	CertPEM      string    `json:"cert_pem"`
	CertNotAfter time.Time `json:"cert_not_after"`
	Created      time.Time `json:"created"`
	Started      time.Time `json:"started,omitzero"`
}

// HasRole reports whether s holds r.
func (s Server) HasRole(r Role) bool { return hasRole(s.Roles, r) }

// Admin is a zone administrator.
type Admin struct {
	Name         string    `json:"name"`
	PasswordHash string    `json:"password_hash"`
	Created      time.Time `json:"created"`
	CreatedBy    string    `json:"created_by"`
}

// AdminToken is a stored credential issued to an administrator (zman
// admin-store-credential); only its SHA-256 is kept.
type AdminToken struct {
	Hash    string    `json:"hash"`
	Admin   string    `json:"admin"`
	Created time.Time `json:"created"`
}

// Device is a managed endpoint registered with the zone.
type Device struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	OS           string    `json:"os"`
	CertSerial   string    `json:"cert_serial"`
	CertNotAfter time.Time `json:"cert_not_after"`
	Registered   time.Time `json:"registered"`
	LastContact  time.Time `json:"last_contact,omitzero"`
	Address      string    `json:"address"`
	RegKey       string    `json:"registration_key,omitempty"`
	// Kind is "" for a zonekit agent and "ocs" for an OCS Inventory NG
	// agent, known by its DEVICEID and without a device certificate.
	Kind      string     `json:"kind,omitempty"`
	Satellite *Satellite `json:"satellite,omitempty"`
}

// Group is a named set of devices.
type Group struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Members     []string  `json:"members"` // device IDs
	// Filter makes the group dynamic: its devices are those matching it
	// when the group is used for package targeting; Members stays empty.
	Filter *DeviceFilter `json:"filter,omitempty"`
}

// RegistrationKey lets devices register, optionally into a group and a
// limited number of times.
type RegistrationKey struct {
	Key         string    `json:"key"`
	Description string    `json:"description,omitempty"`
	Group       string    `json:"group,omitempty"`
	Limit       int       `json:"limit"` // 0 means unlimited
	Uses        int       `json:"uses"`
	Created     time.Time `json:"created"`
}

// AuditRecord is one applied command, without its data (which may hold secrets).
type AuditRecord struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Command string    `json:"command"`
	Target  string    `json:"target"`
}
