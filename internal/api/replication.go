package api

import "time"

// Content replication wire types (issue 10): every Primary Server pulls
// the package content and preboot images it lacks from its peers.

// Content states of one package or image on one server.
const (
	ContentPresent  = "present"
	ContentMissing  = "missing"
	ContentInFlight = "in-flight"
)

// ReplicationSchedule is the body of GET and PUT
// /api/v1/content-replication/schedule.
type ReplicationSchedule struct {
	Interval        string    `json:"interval"` // Go duration, e.g. 15m0s
	IntervalSeconds int64     `json:"interval_seconds"`
	Requested       time.Time `json:"requested,omitzero"` // last pass asked for on every server (POST .../now)
}

// ReplicationEntry is what one server holds of one package or image.
type ReplicationEntry struct {
	Server   string    `json:"server"`
	ServerID string    `json:"server_id"`
	Kind     string    `json:"kind"` // package or image
	Package  string    `json:"package,omitempty"`
	Name     string    `json:"name"` // package or image name
	State    string    `json:"state"`
	Bytes    int64     `json:"bytes"` // held, or received so far while in flight
	Size     int64     `json:"size"`
	Peer     string    `json:"peer,omitempty"` // server it is pulled from
	Error    string    `json:"error,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
	// Stale marks an in-flight record without progress for a minute: the
	// pull died with its server, or hangs.
	Stale bool `json:"stale,omitempty"`
}

// ScrubReport answers POST /api/v1/content/scrub: what a scrub of one
// server's stored packages and images found and did.
type ScrubReport struct {
	Server   string        `json:"server"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Packages int           `json:"packages"`
	Images   int           `json:"images"`
	Bytes    int64         `json:"bytes"`
	Damaged  []ScrubDamage `json:"damaged"`
}

// ScrubDamage is one damaged copy: its fragments (packages), whether a
// good copy was pulled from a peer, and why not.
type ScrubDamage struct {
	Kind      string   `json:"kind"` // package or image
	Item      string   `json:"item"` // package id or image name
	Fragments []string `json:"fragments,omitempty"`
	Repaired  bool     `json:"repaired"`
	Error     string   `json:"error,omitempty"`
}

// ReplicationStatus answers GET /api/v1/content-replication.
type ReplicationStatus struct {
	Schedule ReplicationSchedule `json:"schedule"`
	Entries  []ReplicationEntry  `json:"entries"`
}

// ClosestServerRule orders the zone's servers for the devices it applies
// to: those of the device, of a group's members, or of the whole zone.
type ClosestServerRule struct {
	Scope   string    `json:"scope"`            // zone, group or device
	Target  string    `json:"target,omitempty"` // group name; device id or name
	Name    string    `json:"name,omitempty"`   // device name (answers)
	Servers []string  `json:"servers"`          // server names (or ids, in requests), closest first
	Set     time.Time `json:"set,omitzero"`
}
