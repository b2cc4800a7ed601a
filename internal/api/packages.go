package api

import "time"

// Package deployment wire types (issue 5). The content itself (info files
// and fragments) is not JSON: it is served under ContentPrefix in the
// layout of OCS Inventory NG, described in docs/content-repo.md.

// ContentPrefix is the path under which zone servers serve the content
// repository: /content/<ID>/info over HTTPS, /content/<ID>/<ID>-<n> over
// HTTP and HTTPS.
const ContentPrefix = "/content"

// PackageSpec describes a package to build. It is the "package" part of
// the multipart body of POST /api/v1/packages; the optional "archive" part
// that follows it is the zip or tar.gz itself.
type PackageSpec struct {
	Name           string `json:"name"`
	OS             string `json:"os"`       // linux or windows
	Priority       int    `json:"priority"` // 0 (absolute) to 10; 5 is the default
	Action         string `json:"action"`   // launch, execute or store
	Command        string `json:"command,omitempty"`
	Path           string `json:"path,omitempty"` // store: where the files go
	NotifyUser     bool   `json:"notify_user,omitempty"`
	NotifyText     string `json:"notify_text,omitempty"`
	NotifyCount    int    `json:"notify_countdown,omitempty"` // seconds; 0 waits for the user
	NotifyCanAbort bool   `json:"notify_can_abort,omitempty"`
	NotifyCanDelay bool   `json:"notify_can_delay,omitempty"`
	NeedDoneAction bool   `json:"need_done_action,omitempty"`
	DoneActionText string `json:"need_done_action_text,omitempty"`
	FragmentSize   int64  `json:"fragment_size"` // bytes
}

// Package is a built package as listed and shown.
type Package struct {
	PackageSpec
	ID        string      `json:"id"`               // digits, as OCS Inventory NG names packages
	Format    string      `json:"format,omitempty"` // tar.gz or zip; empty without archive
	Size      int64       `json:"size"`
	Fragments int         `json:"fragments"`
	MD5       string      `json:"md5,omitempty"`
	SHA256    string      `json:"sha256,omitempty"`
	Created   time.Time   `json:"created"`
	CreatedBy string      `json:"created_by"`
	Active    *Activation `json:"activation,omitempty"`
	Assigned  int         `json:"assigned"` // devices with a deployment record
	// Of those: not notified yet, notified (no result yet), succeeded, failed.
	NotNotified int `json:"not_notified"`
	Notified    int `json:"notified"`
	Succeeded   int `json:"succeeded"`
	Failed      int `json:"failed"`
}

// Activation says where agents fetch a package: the info file over HTTPS
// from InfoLocation, the fragments over HTTP from PackLocation. Locations
// are OCS-style host[:port]/path, without scheme and trailing slash.
type Activation struct {
	InfoLocation string    `json:"info_location"`
	PackLocation string    `json:"pack_location"`
	Activated    time.Time `json:"activated,omitzero"`
	ActivatedBy  string    `json:"activated_by,omitempty"`
}

// PackageAssign is the body of POST /api/v1/packages/{id}/assign and
// .../unassign. The targets add up: named devices (ids or unambiguous
// names), the current members of groups, and, when All, OS or NamePattern
// is set, every device matching all the filters given.
type PackageAssign struct {
	Devices     []string `json:"devices,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	All         bool     `json:"all,omitempty"`
	OS          string   `json:"os,omitempty"`           // substring of the device's OS, case-insensitive
	NamePattern string   `json:"name_pattern,omitempty"` // shell pattern (path.Match) on the device name
	// From the inventory: installed software (a name pattern, optionally a
	// version constraint), an IP range (zone.DeviceFilter).
	Software string `json:"software,omitempty"`
	Version  string `json:"version,omitempty"`
	IPRange  string `json:"ip_range,omitempty"`
}

// PackageAssignResult answers assign and unassign.
type PackageAssignResult struct {
	Package string   `json:"package"`
	Changed []string `json:"changed"` // device ids newly assigned or unassigned
	Already int      `json:"already"` // devices that were already in the wanted state
	// OtherOS counts the devices of a group or filter left out because
	// they run another OS than the package's.
	OtherOS int `json:"other_os,omitempty"`
}

// Deployment statuses of the reference. A device's record starts WAITING
// NOTIFICATION, becomes NOTIFIED when the device next asks for its
// packages, and then takes the result the agent reports.
const (
	StatusWaiting  = "WAITING NOTIFICATION"
	StatusNotified = "NOTIFIED"
	StatusSuccess  = "SUCCESS"
)

// Deployment is one device's record for one package.
type Deployment struct {
	Package    string    `json:"package"`
	DeviceID   string    `json:"device_id"`
	DeviceName string    `json:"device_name"`
	Status     string    `json:"status"`
	Assigned   time.Time `json:"assigned"`
	Updated    time.Time `json:"updated"`
	Detail     string    `json:"detail,omitempty"` // why it failed, as the agent said
	// Output and ExitCode come with a single device's view (package-stats
	// --device, device-package-list): the tail of the action's output,
	// secrets masked, and its exit code.
	Output   string `json:"output,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	// PackageName, Attempts, History and LastError: the per-device view.
	PackageName string         `json:"package_name,omitempty"`
	Attempts    int            `json:"attempts,omitempty"`
	History     []StatusChange `json:"history,omitempty"`
	LastError   string         `json:"last_error,omitempty"`
}

// StatusChange is one step of a deployment's history.
type StatusChange struct {
	Status string    `json:"status"`
	Time   time.Time `json:"time"`
}

// PackageStats answers GET /api/v1/packages/{id}/stats.
type PackageStats struct {
	Package  string        `json:"package"`
	Name     string        `json:"name"`
	Total    int           `json:"total"`
	Statuses []StatusCount `json:"statuses"`
	// Devices is filled when the request names a status (?status=S).
	Devices []Deployment `json:"devices,omitempty"`
}

// StatusCount is how many devices have one status.
type StatusCount struct {
	Status  string  `json:"status"`
	Count   int     `json:"count"`
	Percent float64 `json:"percent"`
}

// Validate modes of POST /api/v1/packages/{id}/validate.
const (
	ValidateSuccess     = "success"      // clear SUCCESS records
	ValidateNotNotified = "not-notified" // unassign devices still WAITING NOTIFICATION
	ValidateAll         = "all"          // both of the above, and clear error records
)

// PackageValidate is the body of POST /api/v1/packages/{id}/validate.
type PackageValidate struct {
	Mode string `json:"mode"`
}

// PackageValidateResult answers it.
type PackageValidateResult struct {
	Package string `json:"package"`
	Removed int    `json:"removed"`
}

// DownloadConfig is the zone-wide download configuration of the
// reference, sent to every agent with its packages.
type DownloadConfig struct {
	Enabled          bool `json:"enabled"`           // ON
	PeriodLength     int  `json:"period_length"`     // cycles per period
	FragLatency      int  `json:"frag_latency"`      // seconds after each fragment
	CycleLatency     int  `json:"cycle_latency"`     // seconds after each cycle
	PeriodLatency    int  `json:"period_latency"`    // seconds after each period
	Timeout          int  `json:"timeout"`           // days before a package fails with ERR_TIMEOUT
	ExecutionTimeout int  `json:"execution_timeout"` // minutes a package command may run
}

// DevicePackages answers GET /api/v1/device/packages: what the device is
// to deploy now, and how.
type DevicePackages struct {
	Config   DownloadConfig  `json:"config"`
	Packages []DevicePackage `json:"packages"`
}

// DevicePackage is one package a device is to deploy. The agent fetches
// https://InfoLocation/ID/info (and manifest.json beside it for the
// SHA-256 of every fragment), then the fragments from PackLocation.
//
// InfoLocations and PackLocations, when present, are the same kinds of
// locations in the order the agent should try them (closest satellite or
// server first, InfoLocation/PackLocation among them); the agent fails over
// to the next on a connection error, a 5xx or a 404. Older servers send
// only the single locations.
type DevicePackage struct {
	ID            string   `json:"id"`
	Priority      int      `json:"priority"`
	InfoLocation  string   `json:"info_location"`
	PackLocation  string   `json:"pack_location"`
	InfoLocations []string `json:"info_locations,omitempty"`
	PackLocations []string `json:"pack_locations,omitempty"`
	Fragments     int      `json:"fragments"`
	Size          int64    `json:"size"`
	SHA256        string   `json:"sha256,omitempty"`
	Status        string   `json:"status"`
	// Now asks the agent to ignore the download latencies for this
	// package (zman package-deploy-now).
	Now bool `json:"now,omitempty"`
}

// PackageStatusReport is the body of POST
// /api/v1/device/packages/{id}/status: the result an agent reports.
type PackageStatusReport struct {
	Status string `json:"status"`
	// Detail says why a deployment failed (a CPK's step, message and last
	// lines of output), secrets masked; at most MaxStatusDetail bytes.
	Detail string `json:"detail,omitempty"`
	// Output is the tail of a launch or execute action's output (at most
	// MaxStatusOutput bytes, secrets masked on the device) and ExitCode
	// its exit code.
	Output   string `json:"output,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
}

// MaxStatusDetail bounds a reported failure's detail.
const MaxStatusDetail = 2048

// MaxStatusOutput bounds the output an agent sends home with a result.
const MaxStatusOutput = 64 << 10
