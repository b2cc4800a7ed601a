package api

import "time"

// Preboot wire types (issue 8): the work a machine does at its next
// network boot, by MAC address.

// PrebootAssign is the body of PUT /api/v1/preboot/work/{mac}.
type PrebootAssign struct {
	Action string `json:"action"`           // menu, image or take-image
	Image  string `json:"image,omitempty"`  // for image and take-image
	Menu   string `json:"menu,omitempty"`   // for menu
	Device string `json:"device,omitempty"` // optional: a registered device's name or ID
	// Session makes a restore part of a multicast session: Clients
	// machines restore together, or those that joined Wait seconds after
	// the first.
	Session string `json:"session,omitempty"`
	Clients int    `json:"clients,omitempty"`
	Wait    int    `json:"wait,omitempty"`
}

// PrebootWork is an assignment.
type PrebootWork struct {
	MAC        string    `json:"mac"`
	Action     string    `json:"action"`
	Image      string    `json:"image,omitempty"`
	Menu       string    `json:"menu,omitempty"`
	Device     string    `json:"device,omitempty"`      // device ID
	DeviceName string    `json:"device_name,omitempty"` // its name, when it is registered
	Session    string    `json:"session,omitempty"`
	Clients    int       `json:"clients,omitempty"`
	Wait       int       `json:"wait,omitempty"`
	Assigned   time.Time `json:"assigned"`
	Actor      string    `json:"actor"`
	// An imaging task's state: queued, running, done or failed (menus
	// have none), with when it ran, the bytes moved and the error.
	Status   string    `json:"status,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Bytes    int64     `json:"bytes,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// PrebootReport is the body of POST /api/v1/preboot/work/{mac}/report,
// sent by an imaging service (server certificate) for a machine's task.
type PrebootReport struct {
	Status string `json:"status"` // running, done or failed
	Bytes  int64  `json:"bytes,omitempty"`
	Error  string `json:"error,omitempty"`
}
