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
}

// PrebootWork is an assignment.
type PrebootWork struct {
	MAC        string    `json:"mac"`
	Action     string    `json:"action"`
	Image      string    `json:"image,omitempty"`
	Menu       string    `json:"menu,omitempty"`
	Device     string    `json:"device,omitempty"`      // device ID
	DeviceName string    `json:"device_name,omitempty"` // its name, when it is registered
	Assigned   time.Time `json:"assigned"`
	Actor      string    `json:"actor"`
}
