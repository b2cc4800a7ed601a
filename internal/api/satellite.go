package api

import "time"

// Satellite roles a managed device can hold, both served by zac
// satellite-serve (the names travel in Satellite.Roles and
// SatelliteRoleAdd.Role).
const (
	SatelliteContent        = "Content"
	SatelliteAuthentication = "Authentication"
)

// Satellite is a device holding satellite roles, as listed by GET
// /api/v1/satellites.
type Satellite struct {
	DeviceID   string   `json:"device_id"`
	DeviceName string   `json:"device_name"`
	Address    string   `json:"address"`
	Roles      []string `json:"roles"`
	ContentURL string   `json:"content_url,omitempty"`
	Parent     string   `json:"parent,omitempty"`
	// Parents are where the satellite pulls from, in order: its Parent,
	// then the content ports of the zone's Primary Servers, so that a
	// parent deleted from the zone (or down) is not the end of it.
	Parents  []string `json:"parents,omitempty"`
	Prefetch string   `json:"prefetch_interval,omitempty"` // Go duration; empty: on first request only
	AuthURL  string   `json:"auth_url,omitempty"`          // https://HOST:PORT of the Authentication role
	// CertNotAfter is when the certificate the zone CA last issued for it
	// expires (zero: none issued; an imported one is not known here).
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	Added        time.Time `json:"added"`
}

// SatelliteRoleAdd is the body of POST /api/v1/satellites/{device}/roles.
type SatelliteRoleAdd struct {
	Role       string `json:"role"`
	ContentURL string `json:"content_url,omitempty"`
	Parent     string `json:"parent,omitempty"`
	Prefetch   string `json:"prefetch_interval,omitempty"` // Go duration, e.g. 30m
	AuthURL    string `json:"auth_url,omitempty"`          // https://HOST:PORT (Authentication role)
}

// SatelliteCertRequest is the body of POST
// /api/v1/device/satellite/certificate: a CSR made on the satellite (its
// key never leaves it).
type SatelliteCertRequest struct {
	CSR string `json:"csr"` // PEM
}

// SatelliteCert answers it: a server certificate from the zone CA for the
// names of all the satellite's roles.
type SatelliteCert struct {
	Certificate string    `json:"certificate"` // PEM, leaf first, then the zone CA
	Names       []string  `json:"names"`
	NotAfter    time.Time `json:"not_after"`
}

// SatellitePackage is one active package a content satellite prefetches,
// as listed by GET /api/v1/device/satellite/packages.
type SatellitePackage struct {
	ID        string `json:"id"`
	Fragments int    `json:"fragments"`
	Size      int64  `json:"size"`
}

// Headers an authentication satellite sets on the calls it relays to a
// zone server. A zone server honours them only from a device holding the
// Authentication role; a satellite drops any an agent sends.
const (
	// HeaderRelayedFor is the agent's address. Its presence marks the call
	// as relayed: without HeaderRelayedCert the agent is anonymous.
	HeaderRelayedFor = "Zonekit-Relayed-For"
	// HeaderRelayedCert is the agent's device certificate (base64 DER), as
	// the satellite verified it in its TLS handshake.
	HeaderRelayedCert = "Zonekit-Relayed-Certificate"
)
