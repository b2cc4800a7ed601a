package zone

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Package is a built package of the content repository.
type Package struct {
	ID string `json:"id"`
	content.Spec
	Format     string      `json:"format,omitempty"`
	Size       int64       `json:"size"`
	Frags      int         `json:"fragments"`
	MD5        string      `json:"md5,omitempty"`
	SHA256     string      `json:"sha256,omitempty"`
	Created    time.Time   `json:"created"`
	CreatedBy  string      `json:"created_by"`
	Activation *Activation `json:"activation,omitempty"`
}

// Activation says where agents fetch a package (OCS-style host:port/path).
type Activation struct {
	InfoLocation string    `json:"info_location"`
	PackLocation string    `json:"pack_location"`
	Activated    time.Time `json:"activated"`
	ActivatedBy  string    `json:"activated_by"`
}

// Deployment is one device's record for one package: it exists from the
// assignment until the package is unassigned or its status validated.
type Deployment struct {
	Package  string    `json:"package"`
	Device   string    `json:"device"`
	Status   string    `json:"status"`
	Assigned time.Time `json:"assigned"`
	Updated  time.Time `json:"updated"`
	// Detail is the agent's account of a failure (a CPK's step, message
	// and last lines of output); cleared by the next status.
	Detail string `json:"detail,omitempty"`
	// Now is "deploy now" (zman package-deploy-now): the device's agent
	// ignores the download latencies for this package.
	Now bool `json:"now,omitempty"`
	// Output is the tail of the action's output (at most
	// MaxStatusOutput bytes, secrets masked by the agent) and ExitCode its
	// exit code, from the last result.
	Output   string `json:"output,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	// Attempts counts the results the device reported since the
	// assignment; History is the last MaxHistory status changes; LastError
	// the last ERR_ result (kept when a later one succeeds).
	Attempts  int            `json:"attempts,omitempty"`
	History   []StatusChange `json:"history,omitempty"`
	LastError string         `json:"last_error,omitempty"`
}

// StatusChange is one step of a deployment's history.
type StatusChange struct {
	Status string    `json:"status"`
	Time   time.Time `json:"time"`
}

// Bounds of what a deployment record keeps.
const (
	MaxStatusOutput = 64 << 10
	MaxHistory      = 20
)

// record appends a status change to the history, keeping the last MaxHistory.
func (d *Deployment) record(status string, t time.Time) {
	d.History = append(d.History, StatusChange{Status: status, Time: t})
	if n := len(d.History); n > MaxHistory {
		d.History = append([]StatusChange(nil), d.History[n-MaxHistory:]...)
	}
}

// Deployment statuses set by the server; agents report the others.
const (
	StatusWaiting  = "WAITING NOTIFICATION"
	StatusNotified = "NOTIFIED"
)

// ReportableStatus reports whether an agent may report s as a result:
// SUCCESS (with an exit code or ALREADY_SETUP after it, as OCS agents send
// them), ERR_EXIT_CODE_<n>, or one of the reference's ERR_ codes.
func ReportableStatus(s string) bool {
	switch s {
	case "SUCCESS", "SUCCESS_ALREADY_SETUP", "ERR_ALREADY_SETUP", "ERR_BAD_ID", "ERR_BAD_DIGEST", "ERR_DOWNLOAD_INFO",
		"ERR_DOWNLOAD_PACK", "ERR_BUILD", "ERR_UNZIP", "ERR_OUT_OF_SPACE", "ERR_BAD_PARAM", "ERR_EXECUTE_PACK",
		"ERR_EXECUTE", "ERR_CLEAN", "ERR_DONE_FAILED", "ERR_TIMEOUT", "ERR_ABORTED":
		return true
	}
	for _, p := range []string{"SUCCESS_", "ERR_EXIT_CODE_"} {
		if n, ok := strings.CutPrefix(s, p); ok && n != "" && len(n) <= 11 {
			if _, err := strconv.Atoi(n); err == nil {
				return true
			}
		}
	}
	return false
}

// CanonicalStatus is the one mapping of agents' results onto the statuses
// the zone keeps, whichever agent sent them (docs/content-repo.md):
//   - LAUNCH: the OCS Unix agent reports the exit code as SUCCESS_<n>;
//     the zone keeps SUCCESS for 0 and ERR_EXIT_CODE_<n> otherwise, as
//     zac reports it.
//   - EXECUTE: SUCCESS or ERR_EXECUTE from both (the OCS agent reports no
//     code; zac's goes home with the command's output).
//   - A package assigned again after it succeeded: SUCCESS_ALREADY_SETUP,
//     the OCS agent's word (older zac versions said ERR_ALREADY_SETUP), so
//     that package-validate --success clears both.
func CanonicalStatus(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if n, ok := strings.CutPrefix(s, "SUCCESS_"); ok {
		if code, err := strconv.Atoi(n); err == nil {
			if code == 0 {
				return "SUCCESS"
			}
			return "ERR_EXIT_CODE_" + strconv.Itoa(code)
		}
	}
	if s == "ERR_ALREADY_SETUP" {
		return "SUCCESS_ALREADY_SETUP"
	}
	return s
}

// IsSuccess reports whether a status is a success of any kind.
func IsSuccess(s string) bool { return strings.HasPrefix(s, "SUCCESS") }

// DownloadConfig is the zone-wide download configuration sent to agents.
type DownloadConfig struct {
	Enabled          bool `json:"enabled"`
	PeriodLength     int  `json:"period_length"`
	FragLatency      int  `json:"frag_latency"`
	CycleLatency     int  `json:"cycle_latency"`
	PeriodLatency    int  `json:"period_latency"`
	Timeout          int  `json:"timeout"`
	ExecutionTimeout int  `json:"execution_timeout"`
}

// DefaultDownloadConfig is the reference's defaults: periods of 10 cycles,
// 10 s after each fragment, 60 s after each cycle, none after a period, 7
// days before a package times out, 120 minutes for a command.
func DefaultDownloadConfig() DownloadConfig {
	return DownloadConfig{Enabled: true, PeriodLength: 10, FragLatency: 10, CycleLatency: 60, PeriodLatency: 0,
		Timeout: 7, ExecutionTimeout: 120}
}

// Validate refuses values agents cannot work with.
func (c DownloadConfig) Validate() error {
	switch {
	case c.PeriodLength < 1 || c.PeriodLength > 1000:
		return errkind.New(errkind.Usage, "period length %d: want 1 to 1000 cycles", c.PeriodLength)
	case c.FragLatency < 0 || c.CycleLatency < 0 || c.PeriodLatency < 0 || c.FragLatency > 86400 || c.CycleLatency > 86400 || c.PeriodLatency > 86400:
		return errkind.New(errkind.Usage, "latencies are 0 to 86400 seconds")
	case c.Timeout < 1 || c.Timeout > 365:
		return errkind.New(errkind.Usage, "timeout %d: want 1 to 365 days", c.Timeout)
	case c.ExecutionTimeout < 1 || c.ExecutionTimeout > 10080:
		return errkind.New(errkind.Usage, "execution timeout %d: want 1 to 10080 minutes", c.ExecutionTimeout)
	}
	return nil
}

// Package command names.
const (
	CmdPackageCreate     = "package.create"
	CmdPackageDelete     = "package.delete"
	CmdPackageActivate   = "package.activate"
	CmdPackageDeactivate = "package.deactivate"
	CmdPackageAssign     = "package.assign"
	CmdPackageUnassign   = "package.unassign"
	CmdPackageNotify     = "package.notify"
	CmdPackageStatus     = "package.status"
	CmdPackageValidate   = "package.validate"
	CmdPackageDeployNow  = "package.deploy-now"
	CmdDownloadConfigure = "download.configure"
)

// PackageActivate is the data of package.activate.
type PackageActivate struct {
	ID         string     `json:"id"`
	Activation Activation `json:"activation"`
}

// PackageDevices is the data of package.assign and package.unassign.
type PackageDevices struct {
	Package string    `json:"package"`
	Devices []string  `json:"devices"`
	Time    time.Time `json:"time"`
}

// PackageNotify is the data of package.notify: the device has been told
// of these packages.
type PackageNotify struct {
	Device   string    `json:"device"`
	Packages []string  `json:"packages"`
	Time     time.Time `json:"time"`
}

// PackageStatus is the data of package.status: a result a device reports.
type PackageStatus struct {
	Device  string    `json:"device"`
	Package string    `json:"package"`
	Status  string    `json:"status"`
	Time    time.Time `json:"time"`
	Detail  string    `json:"detail,omitempty"`
	// Output and ExitCode: the action's output tail and exit code.
	Output   string `json:"output,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
}

// Validate modes.
const (
	ValidateSuccess     = "success"
	ValidateNotNotified = "not-notified"
	ValidateAll         = "all"
)

// PackageValidate is the data of package.validate.
type PackageValidate struct {
	Package string `json:"package"`
	Mode    string `json:"mode"`
}

var keyDownloadConfig = []byte("download")

func applyPackageCreate(tx *bolt.Tx, c Command) (string, error) {
	var p Package
	if err := decode(c, &p); err != nil {
		return "", err
	}
	if exists(tx, store.BucketPackages, p.ID) {
		return "", errkind.New(errkind.Exists, "package %s already exists", p.ID)
	}
	return p.ID, put(tx, store.BucketPackages, p.ID, p)
}

func applyPackageDelete(tx *bolt.Tx, c Command) (string, error) {
	var d byName
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if err := packageExists(tx, d.Name); err != nil {
		return "", err
	}
	if err := tx.Bucket(store.BucketPackages).Delete([]byte(d.Name)); err != nil {
		return "", err
	}
	if err := deleteContentStates(tx, d.Name); err != nil {
		return "", err
	}
	return d.Name, deleteDeployments(tx, d.Name, func(Deployment) bool { return true })
}

func applyPackageActivation(tx *bolt.Tx, c Command) (string, error) {
	var d PackageActivate
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var p Package
	if err := get(tx, store.BucketPackages, d.ID, &p, "package"); err != nil {
		return "", err
	}
	p.Activation = nil
	if c.Name == CmdPackageActivate {
		a := d.Activation
		p.Activation = &a
	}
	return p.ID, put(tx, store.BucketPackages, p.ID, p)
}

func applyPackageAssign(tx *bolt.Tx, c Command) (string, error) {
	d, err := decodePackageDevices(tx, c)
	if err != nil {
		return "", err
	}
	for _, dev := range d.Devices {
		if !exists(tx, store.BucketDevices, dev) {
			return "", errkind.New(errkind.NotFound, "device %q not found", dev)
		}
		if tx.Bucket(store.BucketDeployments).Get(deploymentKey(d.Package, dev)) != nil {
			continue
		}
		dep := Deployment{Package: d.Package, Device: dev, Status: StatusWaiting, Assigned: d.Time, Updated: d.Time}
		if err := putDeployment(tx, dep); err != nil {
			return "", err
		}
	}
	return d.Package, nil
}

func applyPackageDeployNow(tx *bolt.Tx, c Command) (string, error) {
	// Devices not assigned the package are skipped: the request
	// names targets as assignments do, and may reach more devices.
	d, err := decodePackageDevices(tx, c)
	if err != nil {
		return "", err
	}
	for _, dev := range d.Devices {
		var dep Deployment
		if tx.Bucket(store.BucketDeployments).Get(deploymentKey(d.Package, dev)) == nil {
			continue
		}
		if err := getDeployment(tx, d.Package, dev, &dep); err != nil {
			return "", err
		}
		dep.Now = true
		if err := putDeployment(tx, dep); err != nil {
			return "", err
		}
	}
	return d.Package, nil
}

func applyPackageUnassign(tx *bolt.Tx, c Command) (string, error) {
	d, err := decodePackageDevices(tx, c)
	if err != nil {
		return "", err
	}
	for _, dev := range d.Devices {
		if err := deleteDeployment(tx, d.Package, dev); err != nil {
			return "", err
		}
	}
	return d.Package, nil
}

func applyPackageNotify(tx *bolt.Tx, c Command) (string, error) {
	var d PackageNotify
	if err := decode(c, &d); err != nil {
		return "", err
	}
	for _, id := range d.Packages {
		var dep Deployment
		if err := getDeployment(tx, id, d.Device, &dep); err != nil {
			continue // unassigned meanwhile
		}
		if dep.Status == StatusWaiting {
			dep.Status, dep.Updated = StatusNotified, d.Time
			dep.record(StatusNotified, d.Time)
			if err := putDeployment(tx, dep); err != nil {
				return "", err
			}
		}
	}
	return d.Device, nil
}

func applyPackageStatus(tx *bolt.Tx, c Command) (string, error) {
	var d PackageStatus
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if !ReportableStatus(d.Status) {
		return "", errkind.New(errkind.Usage, "status %q is not a deployment result", d.Status)
	}
	var dep Deployment
	if err := getDeployment(tx, d.Package, d.Device, &dep); err != nil {
		return "", err
	}
	dep.Status, dep.Updated, dep.Detail = d.Status, d.Time, d.Detail
	dep.Output, dep.ExitCode = d.Output, d.ExitCode
	if len(dep.Output) > MaxStatusOutput {
		dep.Output = dep.Output[len(dep.Output)-MaxStatusOutput:]
	}
	dep.Attempts++
	dep.record(d.Status, d.Time)
	if strings.HasPrefix(d.Status, "ERR_") {
		dep.LastError = d.Status
		if d.Detail != "" {
			dep.LastError += ": " + d.Detail
		}
	}
	return d.Package, putDeployment(tx, dep)
}

func applyPackageValidate(tx *bolt.Tx, c Command) (string, error) {
	var d PackageValidate
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if err := packageExists(tx, d.Package); err != nil {
		return "", err
	}
	var match func(Deployment) bool
	switch d.Mode {
	case ValidateSuccess:
		match = func(dep Deployment) bool { return IsSuccess(dep.Status) }
	case ValidateNotNotified:
		match = func(dep Deployment) bool { return dep.Status == StatusWaiting }
	case ValidateAll:
		// Everything but the devices still working on it.
		match = func(dep Deployment) bool { return dep.Status != StatusNotified }
	default:
		return "", errkind.New(errkind.Usage, "validate mode %q: want success, not-notified or all", d.Mode)
	}
	return d.Package, deleteDeployments(tx, d.Package, match)
}

func applyDownloadConfigure(tx *bolt.Tx, c Command) (string, error) {
	var d DownloadConfig
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if err := d.Validate(); err != nil {
		return "", err
	}
	data, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	return "download", tx.Bucket(store.BucketSettings).Put(keyDownloadConfig, data)
}

// decodePackageDevices decodes the package and device list of an
// assign, unassign or deploy-now command; the package must exist.
func decodePackageDevices(tx *bolt.Tx, c Command) (PackageDevices, error) {
	var d PackageDevices
	if err := decode(c, &d); err != nil {
		return d, err
	}
	return d, packageExists(tx, d.Package)
}

func packageExists(tx *bolt.Tx, id string) error {
	if !exists(tx, store.BucketPackages, id) {
		return errkind.New(errkind.NotFound, "package %s not found", id)
	}
	return nil
}

func deploymentKey(pkg, dev string) []byte { return []byte(pkg + "/" + dev) }

func getDeployment(tx *bolt.Tx, pkg, dev string, dep *Deployment) error {
	data := tx.Bucket(store.BucketDeployments).Get(deploymentKey(pkg, dev))
	if data == nil {
		return errkind.New(errkind.NotFound, "package %s is not assigned to device %s", pkg, dev)
	}
	return json.Unmarshal(data, dep)
}

func putDeployment(tx *bolt.Tx, dep Deployment) error {
	data, err := json.Marshal(dep)
	if err != nil {
		return err
	}
	if err := tx.Bucket(store.BucketDeployments).Put(deploymentKey(dep.Package, dep.Device), data); err != nil {
		return err
	}
	return tx.Bucket(store.BucketDevicePackages).Put(deploymentKey(dep.Device, dep.Package), nil)
}

func deleteDeployment(tx *bolt.Tx, pkg, dev string) error {
	if err := tx.Bucket(store.BucketDeployments).Delete(deploymentKey(pkg, dev)); err != nil {
		return err
	}
	return tx.Bucket(store.BucketDevicePackages).Delete(deploymentKey(dev, pkg))
}

// deleteDeployments removes package pkg's records that match.
func deleteDeployments(tx *bolt.Tx, pkg string, match func(Deployment) bool) error {
	var doomed []Deployment
	if err := forDeployments(tx, pkg, func(dep Deployment) error {
		if match(dep) {
			doomed = append(doomed, dep)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, dep := range doomed {
		if err := deleteDeployment(tx, dep.Package, dep.Device); err != nil {
			return err
		}
	}
	return nil
}

// removeDeviceDeployments forgets a deleted device's deployments.
func removeDeviceDeployments(tx *bolt.Tx, dev string) error {
	var pkgs []string
	prefix := []byte(dev + "/")
	c := tx.Bucket(store.BucketDevicePackages).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		pkgs = append(pkgs, string(k[len(prefix):]))
	}
	for _, p := range pkgs {
		if err := deleteDeployment(tx, p, dev); err != nil {
			return err
		}
	}
	return nil
}

func forDeployments(tx *bolt.Tx, pkg string, fn func(Deployment) error) error {
	prefix := []byte(pkg + "/")
	c := tx.Bucket(store.BucketDeployments).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var dep Deployment
		if err := json.Unmarshal(v, &dep); err != nil {
			return fmt.Errorf("deployment %q: corrupt record: %w", k, err)
		}
		if err := fn(dep); err != nil {
			return err
		}
	}
	return nil
}

// Package returns one package.
func (d *DB) Package(id string) (Package, error) {
	var p Package
	err := d.st.View(func(tx *bolt.Tx) error { return get(tx, store.BucketPackages, id, &p, "package") })
	return p, err
}

// Packages lists packages, oldest first.
func (d *DB) Packages() ([]Package, error) {
	out, err := list[Package](d.st, store.BucketPackages)
	sort.SliceStable(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out, err
}

func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// Deployments lists package pkg's records.
func (d *DB) Deployments(pkg string) ([]Deployment, error) {
	out := []Deployment{}
	err := d.st.View(func(tx *bolt.Tx) error {
		return forDeployments(tx, pkg, func(dep Deployment) error { out = append(out, dep); return nil })
	})
	return out, err
}

// DeploymentCounts counts every package's records in one pass.
func (d *DB) DeploymentCounts() (map[string]int, error) {
	out := map[string]int{}
	err := d.st.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketDeployments).ForEach(func(k, _ []byte) error {
			pkg, _, _ := bytes.Cut(k, []byte("/"))
			out[string(pkg)]++
			return nil
		})
	})
	return out, err
}

// StatusCounts counts a package's deployments by where they stand.
type StatusCounts struct {
	NotNotified int // WAITING NOTIFICATION
	Notified    int // NOTIFIED: told, no result yet
	Success     int // SUCCESS*
	Error       int // ERR_*
}

// DeploymentStatusCounts counts every package's deployments by status.
func (d *DB) DeploymentStatusCounts() (map[string]StatusCounts, error) {
	out := map[string]StatusCounts{}
	err := d.st.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketDeployments).ForEach(func(k, v []byte) error {
			pkg, _, _ := bytes.Cut(k, []byte("/"))
			var dep struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(v, &dep); err != nil {
				return err
			}
			c := out[string(pkg)]
			switch {
			case dep.Status == StatusWaiting:
				c.NotNotified++
			case dep.Status == StatusNotified:
				c.Notified++
			case IsSuccess(dep.Status):
				c.Success++
			default:
				c.Error++
			}
			out[string(pkg)] = c
			return nil
		})
	})
	return out, err
}

// DevicePackages returns device dev's deployments with their packages.
func (d *DB) DevicePackages(dev string) ([]Deployment, []Package, error) {
	var deps []Deployment
	var pkgs []Package
	err := d.st.View(func(tx *bolt.Tx) error {
		prefix := []byte(dev + "/")
		c := tx.Bucket(store.BucketDevicePackages).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := string(k[len(prefix):])
			var dep Deployment
			var p Package
			if getDeployment(tx, id, dev, &dep) != nil || get(tx, store.BucketPackages, id, &p, "package") != nil {
				continue
			}
			deps, pkgs = append(deps, dep), append(pkgs, p)
		}
		return nil
	})
	return deps, pkgs, err
}

// DownloadConfig returns the zone's download configuration.
func (d *DB) DownloadConfig() (DownloadConfig, error) {
	c := DefaultDownloadConfig()
	err := d.st.View(func(tx *bolt.Tx) error {
		if data := tx.Bucket(store.BucketSettings).Get(keyDownloadConfig); data != nil {
			return json.Unmarshal(data, &c)
		}
		return nil
	})
	return c, err
}

// LastPackageID is the highest package id in use (0 when none).
func (d *DB) LastPackageID() (uint64, error) {
	var last uint64
	err := d.st.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketPackages).ForEach(func(k, _ []byte) error {
			if n, err := strconv.ParseUint(string(k), 10, 64); err == nil && n > last {
				last = n
			}
			return nil
		})
	})
	return last, err
}

// Notifications and status reports are per-device reports that would
// drown the audit log.
func packageCommands(t *commandTable) {
	t.add(CmdPackageCreate, applyPackageCreate)
	t.add(CmdPackageDelete, applyPackageDelete)
	t.add(CmdPackageActivate, applyPackageActivation)
	t.add(CmdPackageDeactivate, applyPackageActivation)
	t.add(CmdPackageAssign, applyPackageAssign)
	t.add(CmdPackageDeployNow, applyPackageDeployNow)
	t.add(CmdPackageUnassign, applyPackageUnassign)
	t.add(CmdPackageValidate, applyPackageValidate)
	t.add(CmdDownloadConfigure, applyDownloadConfigure)
	t.addUnaudited(CmdPackageNotify, applyPackageNotify)
	t.addUnaudited(CmdPackageStatus, applyPackageStatus)
}

// Offer is a package a device is offered, with its deployment.
type Offer struct {
	Package    Package
	Deployment Deployment
}

// Offers picks, of a device's deployments and their packages (as
// DevicePackages returns them), what the device is offered now: downloads
// are on, the package is active, and the device has not reported a
// result yet. Offers come in priority order (0 first, as agents work
// through them); notify lists the packages still waiting for
// notification, which the offer notifies (CmdPackageNotify).
func Offers(cfg DownloadConfig, deps []Deployment, pkgs []Package) (offers []Offer, notify []string) {
	for i, d := range deps {
		p := pkgs[i]
		if !cfg.Enabled || p.Activation == nil || (d.Status != StatusWaiting && d.Status != StatusNotified) {
			continue
		}
		if d.Status == StatusWaiting {
			notify = append(notify, p.ID)
		}
		offers = append(offers, Offer{Package: p, Deployment: d})
	}
	sort.SliceStable(offers, func(i, j int) bool { return offers[i].Package.Priority < offers[j].Package.Priority })
	return offers, notify
}
