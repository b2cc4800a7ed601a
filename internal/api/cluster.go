package api

import "time"

// ClusterJoin is the body of POST /api/v1/cluster/join: a server asking to
// join the zone (zconfigure -c JoinZone), with a CSR for its key.
type ClusterJoin struct {
	DNSNames  []string `json:"dns_names"` // the first is the server's name
	IPs       []string `json:"ips"`
	Port      int      `json:"port"`
	Advertise string   `json:"advertise"` // host:port peers reach it at
	CSR       string   `json:"csr_pem"`
	Version   string   `json:"version"`
}

// ClusterJoined answers a join: the server's identity and certificate.
type ClusterJoined struct {
	ServerID string `json:"server_id"`
	ZoneID   string `json:"zone_id"`
	ZoneName string `json:"zone_name"`
	CertPEM  string `json:"cert_pem"` // server certificate, then the zone CA
	CAPEM    string `json:"ca_pem"`
	Join     string `json:"join"` // where to ask for membership (https://host:port)
}

// ClusterMember names a replication member (peer routes).
type ClusterMember struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
	Version string `json:"version,omitempty"` // the asking server's zonekit version
	Voter   bool   `json:"voter,omitempty"`   // in answers: a voter now
}

// ClusterApplied answers a forwarded command with its log entry: the
// follower applies it from its own log once that holds the entry of this
// term (older leaders send no term).
type ClusterApplied struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term,omitempty"`
}

// ClusterSign asks the CertAuth server to sign a CSR for a peer.
type ClusterSign struct {
	Kind     string   `json:"kind"` // device or server
	ID       string   `json:"id,omitempty"`
	CSR      string   `json:"csr_pem"`
	DNSNames []string `json:"dns_names,omitempty"`
	IPs      []string `json:"ips,omitempty"`
}

// ClusterSigned carries the signed certificate.
type ClusterSigned struct {
	CertPEM string `json:"cert_pem"`
}

// Replication is one server's replication state in server listings.
type Replication struct {
	State       string    `json:"state"` // Leader, Follower, Candidate, unreachable
	Term        uint64    `json:"term"`
	Commit      uint64    `json:"commit_index"`
	Applied     uint64    `json:"applied_index"`
	Behind      uint64    `json:"behind"` // entries behind the leader's commit index
	LastContact time.Time `json:"last_contact,omitzero"`
	Voter       bool      `json:"voter"`
	LeaderID    string    `json:"leader_id,omitempty"` // the leader this server follows
	Incarnation string    `json:"incarnation,omitempty"`
	Problem     string    `json:"problem,omitempty"` // the last replication problem it saw
}

// ServerAddress is the body of POST /api/v1/servers/{name}/address: what
// changes (empty fields stay as they are).
type ServerAddress struct {
	DNSNames  []string `json:"dns_names,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	Advertise string   `json:"advertise,omitempty"`
}

// HeaderStale, on admin answers from a server that has lost touch with the
// replication leader, says since when: what it reads may be out of date.
const HeaderStale = "X-Zonekit-Stale"
