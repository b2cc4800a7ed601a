package console

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"

	"slices"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/zone"
)

// Thresholds of the overview's warnings and device states.
const (
	seenRecently   = 24 * time.Hour
	staleDevice    = 7 * 24 * time.Hour
	expiryWarning  = 60 * 24 * time.Hour
	maxSearchShown = 500
)

type deviceCounts struct {
	Total, Recent, Quiet, Stale, Never, CertExpiring int
}

type overviewData struct {
	Zone     string
	Servers  []api.Server
	Devices  deviceCounts
	Deploy   zone.StatusCounts
	Timeline timeline
	Change   *api.CertificateChange
	Warnings []string
	Now      time.Time
}

func (h *Handlers) overview(w http.ResponseWriter, r *http.Request, req request) {
	now := h.Now()
	d := overviewData{Now: now}
	z, err := h.Zone.Zone()
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Zone = z.Name
	if err := h.Backend.Call(r, req.admin, http.MethodGet, api.Prefix+"/servers", nil, &d.Servers); err != nil {
		h.failed(w, r, req, err)
		return
	}
	devs, err := h.allDevices()
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Devices = countDevices(devs, now)
	counts, err := h.Zone.DeploymentStatusCounts()
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	for _, c := range counts {
		d.Deploy.NotNotified += c.NotNotified
		d.Deploy.Notified += c.Notified
		d.Deploy.Success += c.Success
		d.Deploy.Error += c.Error
	}
	certs, err := h.certs(r, req, z)
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Change = certs.Change
	d.Timeline = certs.timeline(now)
	d.Warnings = warnings(now, d, certs, h.Backend.StaleSince())
	h.render(w, r, http.StatusOK, "overview", h.page(req, "overview", "Overview", d))
}

func countDevices(devs []zone.Device, now time.Time) deviceCounts {
	c := deviceCounts{Total: len(devs)}
	for i := range devs {
		dev := &devs[i]
		switch since := now.Sub(dev.LastContact); {
		case dev.LastContact.IsZero():
			c.Never++
		case since < seenRecently:
			c.Recent++
		case since < staleDevice:
			c.Quiet++
		default:
			c.Stale++
		}
		if !dev.CertNotAfter.IsZero() && dev.CertNotAfter.Sub(now) < expiryWarning {
			c.CertExpiring++
		}
	}
	return c
}

func warnings(now time.Time, d overviewData, c certInfo, stale string) []string {
	var out []string
	if stale != "" {
		out = append(out, "This server's copy of the zone is stale since "+stale+": it is not following the leader.")
	}
	for _, s := range d.Servers {
		switch {
		case s.Replication == nil && len(d.Servers) > 1:
			out = append(out, "Server "+s.Name+" did not answer: unreachable.")
		case s.Replication != nil && s.Replication.State == "unreachable":
			out = append(out, "Server "+s.Name+" is unreachable.")
		case s.Replication != nil && s.Replication.Problem != "":
			out = append(out, "Server "+s.Name+": "+s.Replication.Problem)
		}
	}
	for _, b := range c.bars() {
		if b.Future {
			continue
		}
		if left := b.NotAfter.Sub(now); left < expiryWarning {
			if left <= 0 {
				out = append(out, b.Label+" expired on "+b.NotAfter.Format(time.DateOnly)+".")
			} else {
				out = append(out, fmt.Sprintf("%s expires on %s (in %d days).", b.Label, b.NotAfter.Format(time.DateOnly), int(left.Hours()/24)))
			}
		}
	}
	if c.Change != nil && c.Change.Stalled {
		out = append(out, "The certificate change "+c.Change.Name+" is due but stalled: a server has no future certificate.")
	}
	if c.Change != nil && c.Change.LastError != "" {
		out = append(out, "Certificate change: "+c.Change.LastError)
	}
	if d.Devices.Stale > 0 {
		out = append(out, fmt.Sprintf("%d devices have not been in contact for over %d days.", d.Devices.Stale, int(staleDevice.Hours()/24)))
	}
	if d.Devices.CertExpiring > 0 {
		out = append(out, fmt.Sprintf("%d device certificates expire within %d days.", d.Devices.CertExpiring, int(expiryWarning.Hours()/24)))
	}
	return out
}

// certInfo is the zone's certificates as the API shows them.
type certInfo struct {
	CA       api.CA
	Servers  []api.ServerCertificate
	Change   *api.CertificateChange
	DeviceCA *x509.Certificate
}

func (h *Handlers) certs(r *http.Request, req request, z zone.Zone) (certInfo, error) {
	var c certInfo
	if err := h.Backend.Call(r, req.admin, http.MethodGet, api.Prefix+"/certificate-authority", nil, &c.CA); err != nil {
		return c, err
	}
	if err := h.Backend.Call(r, req.admin, http.MethodGet, api.Prefix+"/server-certificates", nil, &c.Servers); err != nil {
		return c, err
	}
	var ch api.CertificateChange
	switch err := h.Backend.Call(r, req.admin, http.MethodGet, api.Prefix+"/certificate-changes/current", nil, &ch); {
	case err == nil:
		c.Change = &ch
	case !isNotFound(err):
		return c, err
	}
	if z.DeviceCA != "" {
		if b, _ := pem.Decode([]byte(z.DeviceCA)); b != nil {
			c.DeviceCA, _ = x509.ParseCertificate(b.Bytes)
		}
	}
	return c, nil
}

// bar is one certificate on the timeline.
type bar struct {
	Label               string
	NotBefore, NotAfter time.Time
	Future              bool // the change in progress's
}

func (c certInfo) bars() []bar {
	out := []bar{{Label: "Zone CA", NotBefore: c.CA.NotBefore, NotAfter: c.CA.NotAfter}}
	if c.DeviceCA != nil {
		out = append(out, bar{Label: "Device CA", NotBefore: c.DeviceCA.NotBefore, NotAfter: c.DeviceCA.NotAfter})
	}
	for _, s := range c.Servers {
		out = append(out, bar{Label: "Server " + s.Server, NotBefore: s.NotBefore, NotAfter: s.NotAfter})
	}
	if c.Change != nil && c.Change.FutureCA != nil {
		out = append(out, bar{Label: "Future CA (" + c.Change.Name + ")", NotBefore: c.Change.FutureCA.NotBefore,
			NotAfter: c.Change.FutureCA.NotAfter, Future: true})
	}
	return out
}

// timeline is the certificate chart's geometry, computed here so the
// template only places numbers and escaped labels.
type timeline struct {
	Width, Height int
	Rows          []timelineRow
	Marks         []timelineMark
	Ticks         []timelineMark
}

type timelineRow struct {
	Label         string
	Y, X, W       int
	Class, Period string
}

type timelineMark struct {
	Label string
	X     int
	Class string
}

const (
	chartWidth  = 720
	labelWidth  = 200
	rowHeight   = 26
	chartMargin = 30
)

func (c certInfo) timeline(now time.Time) timeline {
	bars := c.bars()
	start, end := now.AddDate(0, -1, 0), now.AddDate(1, 0, 0)
	for _, b := range bars {
		if !b.NotBefore.IsZero() && b.NotBefore.Before(start) {
			start = b.NotBefore
		}
		if b.NotAfter.After(end) {
			end = b.NotAfter
		}
	}
	span := float64(end.Sub(start))
	x := func(t time.Time) int {
		f := float64(t.Sub(start)) / span
		f = min(max(f, 0), 1)
		return labelWidth + int(f*float64(chartWidth-labelWidth-10))
	}
	t := timeline{Width: chartWidth, Height: chartMargin + rowHeight*len(bars) + 20}
	for i, b := range bars {
		cls := "ok"
		switch left := b.NotAfter.Sub(now); {
		case b.Future:
			cls = "future"
		case left <= 0:
			cls = "expired"
		case left < expiryWarning:
			cls = "expiring"
		}
		x0, x1 := x(b.NotBefore), x(b.NotAfter)
		t.Rows = append(t.Rows, timelineRow{Label: b.Label, Y: chartMargin + i*rowHeight, X: x0, W: max(x1-x0, 2), Class: cls,
			Period: b.NotBefore.Format(time.DateOnly) + " to " + b.NotAfter.Format(time.DateOnly)})
	}
	for y := start.Year() + 1; y <= end.Year(); y++ {
		t.Ticks = append(t.Ticks, timelineMark{Label: fmt.Sprint(y), X: x(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC))})
	}
	t.Marks = append(t.Marks, timelineMark{Label: "now", X: x(now), Class: "now"})
	if c.Change != nil && !c.Change.Activation.IsZero() {
		t.Marks = append(t.Marks, timelineMark{Label: "activation " + c.Change.Activation.Format(time.DateOnly), X: x(c.Change.Activation), Class: "activation"})
	}
	return t
}

// Devices.

type deviceQuery struct {
	Name, Group, OS, Software, IPRange string
}

type devicesData struct {
	Query   deviceQuery
	Groups  []string
	Devices []zone.Device
	Found   int
	Shown   int
	Message string
}

func (h *Handlers) devices(w http.ResponseWriter, r *http.Request, req request) {
	v := r.URL.Query()
	q := deviceQuery{Name: strings.TrimSpace(v.Get("name")), Group: v.Get("group"), OS: strings.TrimSpace(v.Get("os")),
		Software: strings.TrimSpace(v.Get("software")), IPRange: strings.TrimSpace(v.Get("ip"))}
	d := devicesData{Query: q}
	groups, err := h.Zone.Groups()
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	for _, g := range groups {
		d.Groups = append(d.Groups, g.Name)
	}
	found, err := h.search(q, groups)
	if err != nil {
		if errkind.Of(err) == errkind.Usage {
			d.Message = err.Error()
			h.render(w, r, http.StatusBadRequest, "devices", h.page(req, "devices", "Devices", d))
			return
		}
		h.failed(w, r, req, err)
		return
	}
	d.Found = len(found)
	d.Devices = firstByName(found, maxSearchShown)
	d.Shown = len(d.Devices)
	h.render(w, r, http.StatusOK, "devices", h.page(req, "devices", "Devices", d))
}

// firstByName is the first n devices by name (case-insensitive), then
// ID. Each name is lowered once, not at every comparison: a search can
// match tens of thousands of devices.
func firstByName(devs []zone.Device, n int) []zone.Device {
	type keyed struct {
		key string
		dev *zone.Device
	}
	ks := make([]keyed, len(devs))
	for i := range devs {
		ks[i] = keyed{strings.ToLower(devs[i].Name), &devs[i]}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmpOr(strings.Compare(a.key, b.key), strings.Compare(a.dev.ID, b.dev.ID))
	})
	out := make([]zone.Device, 0, min(n, len(ks)))
	for _, k := range ks[:min(n, len(ks))] {
		out = append(out, *k.dev)
	}
	return out
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// search picks the devices matching q: a substring of the name
// (case-insensitive), a group's members (or its filter), the OS and the
// inventory (zone.DeviceFilter: software pattern, IP range).
func (h *Handlers) search(q deviceQuery, groups []zone.Group) ([]zone.Device, error) {
	f := zone.DeviceFilter{OS: q.OS, Software: q.Software, IPRange: q.IPRange}
	if err := f.Check(); err != nil {
		return nil, err
	}
	var members map[string]bool
	var groupFilter *zone.DeviceFilter
	if q.Group != "" {
		i := slices.IndexFunc(groups, func(g zone.Group) bool { return g.Name == q.Group })
		if i < 0 {
			return nil, errkind.New(errkind.Usage, "no group %q", q.Group)
		}
		groupFilter = groups[i].Filter
		members = map[string]bool{}
		for _, id := range groups[i].Members {
			members[id] = true
		}
	}
	devs, err := h.allDevices()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(q.Name)
	needInv := f.Software != "" || f.IPRange != "" || (groupFilter != nil && (groupFilter.Software != "" || groupFilter.IPRange != ""))
	var out []zone.Device // not in devs: it is the cache's
	for _, dev := range devs {
		if name != "" && !containsFold(dev.Name, name) {
			continue
		}
		if groupFilter == nil && members != nil && !members[dev.ID] {
			continue
		}
		var inv *zone.Inventory
		if needInv {
			if inv, err = h.Zone.Inventory(dev.ID); err != nil && !isNotFound(err) {
				return nil, err
			}
		}
		if groupFilter != nil && !groupFilter.Match(dev, inv) {
			continue
		}
		if !f.Match(dev, inv) {
			continue
		}
		out = append(out, dev)
	}
	return out, nil
}

// containsFold reports whether s contains lower (already lower case),
// without allocating for ASCII names.
func containsFold(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return strings.Contains(strings.ToLower(s), lower)
		}
	}
	n := len(lower)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

type deviceDeployment struct {
	zone.Deployment
	PackageName string
}

type deviceData struct {
	Device      zone.Device
	Groups      []string
	Deployments []deviceDeployment
	Inventory   *zone.Inventory
}

func (h *Handlers) device(w http.ResponseWriter, r *http.Request, req request) {
	dev, err := h.Zone.ResolveDevice(r.PathValue("ref"))
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	d := deviceData{Device: dev}
	deps, pkgs, err := h.Zone.DevicePackages(dev.ID)
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	names := map[string]string{}
	for _, p := range pkgs {
		names[p.ID] = p.Name
	}
	for _, dp := range deps {
		d.Deployments = append(d.Deployments, deviceDeployment{Deployment: dp, PackageName: names[dp.Package]})
	}
	groups, err := h.Zone.Groups()
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	for _, g := range groups {
		if slices.Contains(g.Members, dev.ID) {
			d.Groups = append(d.Groups, g.Name)
		}
	}
	if inv, err := h.Zone.Inventory(dev.ID); err == nil {
		d.Inventory = inv
	} else if !isNotFound(err) {
		h.failed(w, r, req, err)
		return
	}
	h.render(w, r, http.StatusOK, "device", h.page(req, "devices", "Device "+dev.Name, d))
}

// Packages.

// statusBar is one package's deployments by status as a stacked bar.
type statusBar struct {
	Segments []segment
	Total    int
}

type segment struct {
	Label, Class string
	N, X, W      int
}

const barWidth = 400

func statusBarOf(c zone.StatusCounts) statusBar {
	b := statusBar{Total: c.NotNotified + c.Notified + c.Success + c.Error}
	x := 0
	for _, s := range []segment{{Label: "succeeded", Class: "success", N: c.Success}, {Label: "failed", Class: "error", N: c.Error},
		{Label: "notified", Class: "notified", N: c.Notified}, {Label: "waiting", Class: "waiting", N: c.NotNotified}} {
		if s.N == 0 || b.Total == 0 {
			continue
		}
		s.X, s.W = x, max(s.N*barWidth/b.Total, 1)
		x += s.W
		b.Segments = append(b.Segments, s)
	}
	return b
}

type packageRow struct {
	api.Package
	Bar statusBar
}

func (h *Handlers) packages(w http.ResponseWriter, r *http.Request, req request) {
	var pkgs []api.Package
	if err := h.Backend.Call(r, req.admin, http.MethodGet, api.Prefix+"/packages", nil, &pkgs); err != nil {
		h.failed(w, r, req, err)
		return
	}
	rows := make([]packageRow, 0, len(pkgs))
	for _, p := range pkgs {
		rows = append(rows, packageRow{Package: p, Bar: statusBarOf(zone.StatusCounts{NotNotified: p.NotNotified, Notified: p.Notified, Success: p.Succeeded, Error: p.Failed})})
	}
	h.render(w, r, http.StatusOK, "packages", h.page(req, "packages", "Packages", rows))
}

type statusGroup struct {
	Status  string
	Devices []zone.Device
}

type packageData struct {
	Package  api.Package
	Bar      statusBar
	Progress progressChart
	Status   []statusGroup
	Groups   []string
	Confirm  *assignConfirm
	Done     *api.PackageAssignResult
	// The activation and validation steps: what is asked, what was done.
	ConfirmActivate *api.Activation
	Activated       bool
	ConfirmValidate string
	Validated       *api.PackageValidateResult
	ValidateModes   []validateMode
}

// validateMode is one of package-validate's modes, as the form offers it.
type validateMode struct{ Mode, Label string }

var validateModes = []validateMode{
	{api.ValidateSuccess, "clear the records of devices that succeeded"},
	{api.ValidateNotNotified, "unassign the devices not yet notified"},
	{api.ValidateAll, "both, and clear the error records: only devices still deploying keep theirs"},
}

type assignConfirm struct {
	Devices, Group string
	All            bool
	Targets        int
}

func (h *Handlers) packageData(r *http.Request, req request, id string) (packageData, error) {
	d := packageData{ValidateModes: validateModes}
	if err := h.Backend.Call(r, req.admin, http.MethodGet, api.Prefix+"/packages/"+url.PathEscape(id), nil, &d.Package); err != nil {
		return d, err
	}
	p := d.Package
	d.Bar = statusBarOf(zone.StatusCounts{NotNotified: p.NotNotified, Notified: p.Notified, Success: p.Succeeded, Error: p.Failed})
	deps, err := h.Zone.Deployments(p.ID)
	if err != nil {
		return d, err
	}
	d.Progress = progressOf(deps, h.Now()).chart()
	byStatus := map[string][]zone.Device{}
	for _, dp := range deps {
		dev, err := h.Zone.ResolveDevice(dp.Device)
		if err != nil {
			dev = zone.Device{ID: dp.Device, Name: dp.Device}
		}
		byStatus[dp.Status] = append(byStatus[dp.Status], dev)
	}
	for st, devs := range byStatus {
		d.Status = append(d.Status, statusGroup{Status: st, Devices: devs})
	}
	slices.SortFunc(d.Status, func(a, b statusGroup) int { return strings.Compare(a.Status, b.Status) })
	groups, err := h.Zone.Groups()
	if err != nil {
		return d, err
	}
	for _, g := range groups {
		d.Groups = append(d.Groups, g.Name)
	}
	return d, nil
}

func (h *Handlers) pkg(w http.ResponseWriter, r *http.Request, req request) {
	d, err := h.packageData(r, req, r.PathValue("id"))
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	h.render(w, r, http.StatusOK, "package", h.page(req, "packages", "Package "+d.Package.Name, d))
}

// assign is two steps: the form's first post shows what would be
// assigned and asks to confirm; the confirmation's post assigns, through
// the API's package-assign route as the administrator.
func (h *Handlers) assign(w http.ResponseWriter, r *http.Request, req request) {
	id := r.PathValue("id")
	f := r.PostForm
	a := api.PackageAssign{All: f.Get("all") == "yes"}
	a.Devices = append(a.Devices, strings.FieldsFunc(f.Get("devices"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' })...)
	if g := f.Get("group"); g != "" {
		a.Groups = []string{g}
	}
	d, err := h.packageData(r, req, id)
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	if len(a.Devices) == 0 && len(a.Groups) == 0 && !a.All {
		h.errorPage(w, r, &req, http.StatusBadRequest, "Name devices, a group, or all devices to assign the package to.")
		return
	}
	if f.Get("confirm") != "yes" {
		d.Confirm = &assignConfirm{Devices: strings.Join(a.Devices, ", "), All: a.All}
		if len(a.Groups) > 0 {
			d.Confirm.Group = a.Groups[0]
		}
		h.render(w, r, http.StatusOK, "package", h.page(req, "packages", "Package "+d.Package.Name, d))
		return
	}
	var res api.PackageAssignResult
	if err := h.Backend.Call(r, req.admin, http.MethodPost, api.Prefix+"/packages/"+url.PathEscape(id)+"/assign", a, &res); err != nil {
		h.failed(w, r, req, err)
		return
	}
	// Read again: the page shows the assignment's effect.
	if d, err = h.packageData(r, req, id); err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Done = &res
	h.render(w, r, http.StatusOK, "package", h.page(req, "packages", "Package "+d.Package.Name, d))
}

// activate is two steps as assign is: the first post asks, the
// confirmation's activates through the API's package-activate route (as
// zman package-activate: empty locations default to this zone server).
func (h *Handlers) activate(w http.ResponseWriter, r *http.Request, req request) {
	id := r.PathValue("id")
	a := api.Activation{InfoLocation: strings.TrimSpace(r.PostForm.Get("info_location")),
		PackLocation: strings.TrimSpace(r.PostForm.Get("pack_location"))}
	d, err := h.packageData(r, req, id)
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		d.ConfirmActivate = &a
		h.render(w, r, http.StatusOK, "package", h.page(req, "packages", "Package "+d.Package.Name, d))
		return
	}
	if err := h.Backend.Call(r, req.admin, http.MethodPost, api.Prefix+"/packages/"+url.PathEscape(id)+"/activate", a, &api.Package{}); err != nil {
		h.failed(w, r, req, err)
		return
	}
	if d, err = h.packageData(r, req, id); err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Activated = true
	h.render(w, r, http.StatusOK, "package", h.page(req, "packages", "Package "+d.Package.Name, d))
}

// validate clears deployment records as zman package-validate does,
// after a confirmation, through the API's package-validate route.
func (h *Handlers) validate(w http.ResponseWriter, r *http.Request, req request) {
	id := r.PathValue("id")
	mode := r.PostForm.Get("mode")
	if !slices.ContainsFunc(validateModes, func(m validateMode) bool { return m.Mode == mode }) {
		h.errorPage(w, r, &req, http.StatusBadRequest, "Choose what to clear: success, not-notified or all.")
		return
	}
	d, err := h.packageData(r, req, id)
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		d.ConfirmValidate = mode
		h.render(w, r, http.StatusOK, "package", h.page(req, "packages", "Package "+d.Package.Name, d))
		return
	}
	var res api.PackageValidateResult
	if err := h.Backend.Call(r, req.admin, http.MethodPost, api.Prefix+"/packages/"+url.PathEscape(id)+"/validate", api.PackageValidate{Mode: mode}, &res); err != nil {
		h.failed(w, r, req, err)
		return
	}
	if d, err = h.packageData(r, req, id); err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Validated = &res
	h.render(w, r, http.StatusOK, "package", h.page(req, "packages", "Package "+d.Package.Name, d))
}

// Certificates.

type certificatesData struct {
	certInfo
	Timeline  timeline
	Confirm   bool
	Cancelled bool
}

func (h *Handlers) certificatesData(r *http.Request, req request) (certificatesData, error) {
	z, err := h.Zone.Zone()
	if err != nil {
		return certificatesData{}, err
	}
	c, err := h.certs(r, req, z)
	return certificatesData{certInfo: c, Timeline: c.timeline(h.Now())}, err
}

func (h *Handlers) certificates(w http.ResponseWriter, r *http.Request, req request) {
	d, err := h.certificatesData(r, req)
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Confirm = r.URL.Query().Get("cancel") == "confirm" && d.Change != nil
	h.render(w, r, http.StatusOK, "certificates", h.page(req, "certificates", "Certificates", d))
}

// cancelChange cancels the change in progress (with confirm=yes; without,
// it asks) through the API's route, as zman certificate-change-cancel.
func (h *Handlers) cancelChange(w http.ResponseWriter, r *http.Request, req request) {
	if r.PostForm.Get("confirm") != "yes" {
		http.Redirect(w, r, "/console/certificates?cancel=confirm", http.StatusSeeOther)
		return
	}
	if err := h.Backend.Call(r, req.admin, http.MethodDelete, api.Prefix+"/certificate-changes/current", nil, nil); err != nil {
		h.failed(w, r, req, err)
		return
	}
	d, err := h.certificatesData(r, req)
	if err != nil {
		h.failed(w, r, req, err)
		return
	}
	d.Cancelled = true
	h.render(w, r, http.StatusOK, "certificates", h.page(req, "certificates", "Certificates", d))
}

// Preboot.

type prebootData struct {
	Works  []api.PrebootWork
	Images []imaging.Image
}

func (h *Handlers) preboot(w http.ResponseWriter, r *http.Request, req request) {
	var d prebootData
	if err := h.Backend.Call(r, req.admin, http.MethodGet, api.Prefix+"/preboot/work", nil, &d.Works); err != nil {
		h.failed(w, r, req, err)
		return
	}
	slices.SortFunc(d.Works, func(a, b api.PrebootWork) int { return b.Assigned.Compare(a.Assigned) })
	if h.Images != nil {
		imgs, err := h.Images()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.failed(w, r, req, err)
			return
		}
		d.Images = imgs
	}
	h.render(w, r, http.StatusOK, "preboot", h.page(req, "preboot", "Preboot", d))
}
