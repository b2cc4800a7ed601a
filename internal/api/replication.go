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
