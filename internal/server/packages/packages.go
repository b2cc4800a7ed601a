// Package packages serves package deployment (/api/v1/packages...,
// /api/v1/download-config, a device's packages and its status reports,
// and the zone CA's signature of CPK packages): administrators build,
// activate and assign packages; agents learn what to deploy and report
// how it went. The content repository and the ids of packages being
// built are the zone server's, shared with content replication.
package packages

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// Zone is what the routes need of the zone's state (*zone.DB).
type Zone interface {
	Exec(actor, name string, data any) error
	ExecBatch(actor, name string, data any) error
	Now() time.Time
	Package(id string) (zone.Package, error)
	Packages() ([]zone.Package, error)
	Deployments(pkg string) ([]zone.Deployment, error)
	DeploymentStatusCounts() (map[string]zone.StatusCounts, error)
	DevicePackages(dev string) ([]zone.Deployment, []zone.Package, error)
	DownloadConfig() (zone.DownloadConfig, error)
	Device(id string) (zone.Device, error)
	Devices() ([]zone.Device, error)
	ResolveDevice(ref string) (zone.Device, error)
	Groups() ([]zone.Group, error)
	Matching(f zone.DeviceFilter) ([]string, error)
}

// CA is the zone's certificate authority as this server sees it.
type CA interface {
	// ZoneCA is the zone CA certificate agents trust: an activation's
	// locations are checked as agents will fetch from them.
	ZoneCA() *x509.Certificate
	// CPKSigner is the CA whose signature of a CPK package agents
	// accept, with its key, or an error saying why this server cannot
	// sign (it does not hold the CertAuth role).
	CPKSigner(ctx context.Context) (*pki.CA, error)
}

// Content is the distribution of packages' content among the zone's
// servers and satellites.
type Content interface {
	// Locations says where dev fetches package p, in the order its
	// agent tries them (api.DevicePackage.InfoLocations/PackLocations).
	Locations(dev zone.Device, p zone.Package) (info, pack []string)
	// Changed wakes content replication: a package was built or
	// activated here.
	Changed()
}

// Handlers serve the package routes.
type Handlers struct {
	Zone    Zone
	Repo    *content.Repo // this server's content repository
	IDs     *IDs          // the ids of packages built here
	CA      CA
	Content Content
	// Self is this server: an activation's default locations name it,
	// on its API port and on ContentPort (0: no plain-HTTP content).
	Self        zone.Server
	ContentPort int
	Now         func() time.Time
	Log         *slog.Logger
}

// Register mounts the routes.
func (h *Handlers) Register(r httpapi.Routes) {
	r.Admin("POST "+api.Prefix+"/packages", h.createPackage)
	r.Admin("GET "+api.Prefix+"/packages", h.listPackages)
	r.Admin("GET "+api.Prefix+"/packages/{id}", h.getPackage)
	r.Admin("DELETE "+api.Prefix+"/packages/{id}", h.deletePackage)
	r.Admin("POST "+api.Prefix+"/packages/{id}/activate", h.activatePackage)
	r.Admin("POST "+api.Prefix+"/packages/{id}/deactivate", h.deactivatePackage)
	r.Admin("POST "+api.Prefix+"/packages/{id}/assign", h.assignPackage(true))
	r.Admin("POST "+api.Prefix+"/packages/{id}/unassign", h.assignPackage(false))
	r.Admin("GET "+api.Prefix+"/packages/{id}/stats", h.packageStats)
	r.Admin("POST "+api.Prefix+"/packages/{id}/validate", h.validatePackage)
	r.Admin("POST "+api.Prefix+"/packages/{id}/deploy-now", h.deployNow)
	r.Admin("GET "+api.Prefix+"/devices/{ref}/packages", h.devicePackageList)
	r.Admin("GET "+api.Prefix+"/download-config", h.getDownloadConfig)
	r.Admin("PUT "+api.Prefix+"/download-config", h.putDownloadConfig)
	r.Admin("POST "+api.Prefix+"/cpk-signatures", h.signCPK)
	r.Device("GET "+api.Prefix+"/device/packages", h.devicePackages)
	r.Device("POST "+api.Prefix+"/device/packages/{id}/status", h.devicePackageStatus)
}

func toAPIPackage(p zone.Package, assigned int) api.Package {
	out := api.Package{ID: p.ID, Format: p.Format, Size: p.Size, Fragments: p.Frags, MD5: p.MD5, SHA256: p.SHA256,
		Created: p.Created, CreatedBy: p.CreatedBy, Assigned: assigned, PackageSpec: api.PackageSpec(p.Spec)}
	if a := p.Activation; a != nil {
		out.Active = &api.Activation{InfoLocation: a.InfoLocation, PackLocation: a.PackLocation, Activated: a.Activated, ActivatedBy: a.ActivatedBy}
	}
	return out
}

// createPackage reads a multipart body: the "package" part (JSON spec),
// then optionally the "archive" part, streamed into the repository.
func (h *Handlers) createPackage(w http.ResponseWriter, r *http.Request, actor string) error {
	mr, err := r.MultipartReader()
	if err != nil {
		return errkind.New(errkind.Usage, "package-create wants a multipart body with a package part: %v", err)
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "package" {
		return errkind.New(errkind.Usage, "the first part of the body must be the package description")
	}
	var spec content.Spec
	if err := json.NewDecoder(io.LimitReader(part, httpapi.MaxBody)).Decode(&spec); err != nil {
		return errkind.New(errkind.Usage, "malformed package description: %v", err)
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return err
	}
	var archive io.Reader
	part, err = mr.NextPart()
	switch {
	case err == io.EOF:
	case err != nil:
		return errkind.New(errkind.Usage, "reading the upload: %v", err)
	case part.FormName() != "archive":
		return errkind.New(errkind.Usage, "unexpected part %q after the package description", part.FormName())
	default:
		archive = part
	}
	id, err := h.IDs.next()
	if err != nil {
		return err
	}
	defer h.IDs.built(id)
	m, err := h.Repo.Build(id, spec, archive, h.Now())
	if err != nil {
		return err
	}
	p := zone.Package{ID: id, Spec: spec, Format: m.Format, Size: m.Size, Frags: len(m.Fragments), MD5: m.MD5,
		SHA256: m.SHA256, Created: m.Created, CreatedBy: actor}
	if err := h.Zone.Exec(actor, zone.CmdPackageCreate, p); err != nil {
		h.Repo.Remove(id)
		return err
	}
	h.Content.Changed()
	httpapi.WriteJSON(w, http.StatusCreated, toAPIPackage(p, 0))
	return nil
}

func (h *Handlers) listPackages(w http.ResponseWriter, r *http.Request, actor string) error {
	pkgs, err := h.Zone.Packages()
	if err != nil {
		return err
	}
	counts, err := h.Zone.DeploymentStatusCounts()
	if err != nil {
		return err
	}
	out := make([]api.Package, 0, len(pkgs))
	for _, p := range pkgs {
		c := counts[p.ID]
		a := toAPIPackage(p, c.NotNotified+c.Notified+c.Success+c.Error)
		a.NotNotified, a.Notified, a.Succeeded, a.Failed = c.NotNotified, c.Notified, c.Success, c.Error
		out = append(out, a)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handlers) packageOf(r *http.Request) (zone.Package, error) {
	id := r.PathValue("id")
	if !content.ValidID(id) {
		return zone.Package{}, errkind.New(errkind.NotFound, "package %q not found: package ids are digits (zman package-list)", id)
	}
	return h.Zone.Package(id)
}

func (h *Handlers) getPackage(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := h.packageOf(r)
	if err != nil {
		return err
	}
	deps, err := h.Zone.Deployments(p.ID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, toAPIPackage(p, len(deps)))
	return nil
}

// deletePackage removes the record (with its activation and assignments)
// first, then the content, so that no agent is sent to a missing package.
func (h *Handlers) deletePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := h.packageOf(r)
	if err != nil {
		return err
	}
	if err := h.Zone.Exec(actor, zone.CmdPackageDelete, map[string]string{"name": p.ID}); err != nil {
		return err
	}
	if err := h.Repo.Remove(p.ID); err != nil {
		return fmt.Errorf("package %s is deleted but its content is not: %w", p.ID, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// location normalises an OCS-style location: host[:port]/path, no scheme,
// no trailing slash.
func location(s, flag string) (string, error) {
	s = strings.TrimSpace(s)
	for _, scheme := range []string{"https://", "http://"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			s = s[len(scheme):]
		}
	}
	s = strings.TrimRight(s, "/")
	host, _, _ := strings.Cut(s, "/")
	if host == "" || strings.ContainsAny(s, " \t\r\n?#\"<>") {
		return "", errkind.New(errkind.Usage, "%s %q: want host[:port]/path", flag, s)
	}
	return s, nil
}

func (h *Handlers) activatePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.Activation
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	p, err := h.packageOf(r)
	if err != nil {
		return err
	}
	if req.InfoLocation == "" {
		req.InfoLocation = fmt.Sprintf("%s:%d%s", h.Self.Name, h.Self.Port, api.ContentPrefix)
	}
	if req.PackLocation == "" {
		if h.ContentPort == 0 {
			return errkind.New(errkind.Usage, "this zone server serves no plain-HTTP content: give the package a pack location (pack_location), or set server.content-port on the server (zconfigure -D server.content-port=80) and restart it")
		}
		req.PackLocation = fmt.Sprintf("%s:%d%s", h.Self.Name, h.ContentPort, api.ContentPrefix)
	}
	if req.InfoLocation, err = location(req.InfoLocation, "--info-location"); err != nil {
		return err
	}
	if req.PackLocation, err = location(req.PackLocation, "--pack-location"); err != nil {
		return err
	}
	if err := h.checkLocations(r.Context(), p, req.InfoLocation, req.PackLocation); err != nil {
		return err
	}
	a := zone.Activation{InfoLocation: req.InfoLocation, PackLocation: req.PackLocation, Activated: h.Zone.Now(), ActivatedBy: actor}
	if err := h.Zone.Exec(actor, zone.CmdPackageActivate, zone.PackageActivate{ID: p.ID, Activation: a}); err != nil {
		return err
	}
	p.Activation = &a
	h.Content.Changed()
	httpapi.WriteJSON(w, http.StatusOK, toAPIPackage(p, 0))
	return nil
}

// checkLocations fetches the info file over HTTPS (trusting the zone CA,
// as agents do) and compares it with ours, and asks the fragment location
// for the first fragment over HTTP, so that a typo in a location fails
// here rather than on every device.
func (h *Handlers) checkLocations(ctx context.Context, p zone.Package, infoLoc, packLoc string) error {
	want, err := h.Repo.Info(p.ID)
	if err != nil {
		return fmt.Errorf("package %s: %w", p.ID, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(h.CA.ZoneCA())
	c := &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			Proxy:               nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer c.CloseIdleConnections()
	fetch := func(method, url string) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return nil, nil, errkind.New(errkind.Usage, "%s: %v", url, err)
		}
		resp, err := c.Do(req)
		if err != nil {
			var uerr interface{ Unwrap() error }
			if errors.As(err, &uerr) {
				err = uerr.Unwrap()
			}
			return nil, nil, errkind.New(errkind.Unavailable, "cannot activate package %s: %s does not answer: %v", p.ID, url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			return nil, nil, errkind.New(errkind.Unavailable, "cannot activate package %s: %s answered %s", p.ID, url, resp.Status)
		}
		return resp, body, nil
	}
	infoURL := "https://" + infoLoc + "/" + p.ID + "/" + content.InfoFile
	_, got, err := fetch(http.MethodGet, infoURL)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errkind.New(errkind.Invalid, "cannot activate package %s: %s serves another info file than this server's (copy the package directory there first)", p.ID, infoURL)
	}
	if p.Frags == 0 {
		return nil // agents fetch no fragments
	}
	m, err := h.Repo.Manifest(p.ID)
	if err != nil {
		return err
	}
	// Every fragment, not only the first: a mirror half copied would
	// otherwise pass here and fail on every device. HEAD requests, a few
	// at a time (the fragment count is bounded, content.MaxFragments).
	var (
		mu      sync.Mutex
		first   error
		firstAt int
		next    int
		wg      sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || i >= len(m.Fragments)
				mu.Unlock()
				if stop {
					return
				}
				fragURL := "http://" + packLoc + "/" + p.ID + "/" + content.FragmentName(p.ID, i+1)
				resp, _, err := fetch(http.MethodHead, fragURL)
				if err == nil && resp.ContentLength != m.Fragments[i].Size {
					err = errkind.New(errkind.Invalid, "cannot activate package %s: %s is %d bytes, want %d (copy the package directory there first)", p.ID, fragURL, resp.ContentLength, m.Fragments[i].Size)
				}
				if err != nil {
					// The lowest fragment that failed is the one named.
					mu.Lock()
					if first == nil || i < firstAt {
						first, firstAt = err, i
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func (h *Handlers) deactivatePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := h.packageOf(r)
	if err != nil {
		return err
	}
	if p.Activation == nil {
		return errkind.New(errkind.Usage, "package %s is not active", p.ID)
	}
	if err := h.Zone.Exec(actor, zone.CmdPackageDeactivate, zone.PackageActivate{ID: p.ID}); err != nil {
		return err
	}
	p.Activation = nil
	httpapi.WriteJSON(w, http.StatusOK, toAPIPackage(p, 0))
	return nil
}

// targets resolves an assignment's devices, groups and filter to device
// ids, sorted and without duplicates.
func (h *Handlers) targets(req api.PackageAssign) ([]string, error) {
	ids := map[string]bool{}
	for _, ref := range req.Devices {
		dev, err := h.Zone.ResolveDevice(ref)
		if err != nil {
			return nil, err
		}
		ids[dev.ID] = true
	}
	if len(req.Groups) > 0 {
		groups, err := h.Zone.Groups()
		if err != nil {
			return nil, err
		}
		for _, name := range req.Groups {
			found := false
			for _, g := range groups {
				if g.Name == name {
					found = true
					members := g.Members
					if g.Filter != nil {
						if members, err = h.Zone.Matching(*g.Filter); err != nil {
							return nil, err
						}
					}
					for _, m := range members {
						ids[m] = true
					}
				}
			}
			if !found {
				return nil, errkind.New(errkind.NotFound, "group %q not found", name)
			}
		}
	}
	f := zone.DeviceFilter{OS: req.OS, NamePattern: req.NamePattern, Software: req.Software, Version: req.Version, IPRange: req.IPRange}
	if req.All || !f.Empty() {
		if err := f.Check(); err != nil {
			return nil, err
		}
		match, err := h.Zone.Matching(f)
		if err != nil {
			return nil, err
		}
		for _, id := range match {
			ids[id] = true
		}
	} else if len(req.Devices) == 0 && len(req.Groups) == 0 {
		return nil, errkind.New(errkind.Usage, "name devices, groups, or a filter (all, os, name, software, ip_range)")
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// targetsOf reads a request naming a package and its target devices: the
// request, the package, the devices' ids and the package's deployments.
func (h *Handlers) targetsOf(w http.ResponseWriter, r *http.Request) (api.PackageAssign, zone.Package, []string, []zone.Deployment, error) {
	var req api.PackageAssign
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return req, zone.Package{}, nil, nil, err
	}
	p, err := h.packageOf(r)
	if err != nil {
		return req, p, nil, nil, err
	}
	ids, err := h.targets(req)
	if err != nil {
		return req, p, nil, nil, err
	}
	deps, err := h.Zone.Deployments(p.ID)
	return req, p, ids, deps, err
}

func (h *Handlers) assignPackage(assign bool) func(http.ResponseWriter, *http.Request, string) error {
	return func(w http.ResponseWriter, r *http.Request, actor string) error {
		req, p, ids, deps, err := h.targetsOf(w, r)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, d := range deps {
			have[d.Device] = true
		}
		res := api.PackageAssignResult{Package: p.ID, Changed: []string{}}
		if assign {
			if ids, err = h.sameOS(p, req, ids, &res); err != nil {
				return err
			}
		}
		for _, id := range ids {
			if have[id] == assign {
				res.Already++
			} else {
				res.Changed = append(res.Changed, id)
			}
		}
		if len(res.Changed) > 0 {
			name := zone.CmdPackageUnassign
			if assign {
				name = zone.CmdPackageAssign
			}
			if err := h.Zone.Exec(actor, name, zone.PackageDevices{Package: p.ID, Devices: res.Changed, Time: h.Zone.Now()}); err != nil {
				return err
			}
		}
		httpapi.WriteJSON(w, http.StatusOK, res)
		return nil
	}
}

// deployNow marks the targets' deployments of a package "deploy now":
// their agents ignore the download latencies for it at their next
// refresh. Targets not assigned the package are counted, not changed.
func (h *Handlers) deployNow(w http.ResponseWriter, r *http.Request, actor string) error {
	_, p, ids, deps, err := h.targetsOf(w, r)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, d := range deps {
		have[d.Device] = d.Status == zone.StatusWaiting || d.Status == zone.StatusNotified
	}
	res := api.PackageAssignResult{Package: p.ID, Changed: []string{}}
	for _, id := range ids {
		if have[id] {
			res.Changed = append(res.Changed, id)
		} else {
			res.Already++
		}
	}
	if len(res.Changed) > 0 {
		if err := h.Zone.Exec(actor, zone.CmdPackageDeployNow, zone.PackageDevices{Package: p.ID, Devices: res.Changed, Time: h.Zone.Now()}); err != nil {
			return err
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// sameOS keeps the devices whose OS can run p (content.RunsOn), the rule
// zac applies: a device named in the request that cannot is an error,
// one reached through a group or filter is left out and counted.
func (h *Handlers) sameOS(p zone.Package, req api.PackageAssign, ids []string, res *api.PackageAssignResult) ([]string, error) {
	named := map[string]bool{}
	for _, ref := range req.Devices {
		if dev, err := h.Zone.ResolveDevice(ref); err == nil {
			named[dev.ID] = true
		}
	}
	var keep []string
	for _, id := range ids {
		dev, err := h.Zone.Device(id)
		if err != nil || content.RunsOn(p.Spec.OS, dev.OS) {
			keep = append(keep, id)
			continue
		}
		if named[id] {
			return nil, errkind.New(errkind.Invalid, "package %s is for %s; device %s runs %s: its agent would refuse it", p.ID, p.Spec.OS, dev.Name, dev.OS)
		}
		res.OtherOS++
	}
	return keep, nil
}

// statusRank orders statuses for display: the pipeline first, then results.
func statusRank(st string) int {
	switch {
	case st == zone.StatusWaiting:
		return 0
	case st == zone.StatusNotified:
		return 1
	case zone.IsSuccess(st):
		return 2
	}
	return 3
}

func (h *Handlers) packageStats(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := h.packageOf(r)
	if err != nil {
		return err
	}
	deps, err := h.Zone.Deployments(p.ID)
	if err != nil {
		return err
	}
	want := r.URL.Query().Get("status")
	var one string // ?device=: that device's record, with its output
	if ref := r.URL.Query().Get("device"); ref != "" {
		dev, err := h.Zone.ResolveDevice(ref)
		if err != nil {
			return err
		}
		one = dev.ID
	}
	counts := map[string]int{}
	out := api.PackageStats{Package: p.ID, Name: p.Name, Total: len(deps), Statuses: []api.StatusCount{}}
	var names map[string]string
	if want != "" || one != "" {
		devs, err := h.Zone.Devices()
		if err != nil {
			return err
		}
		names = make(map[string]string, len(devs))
		for _, d := range devs {
			names[d.ID] = d.Name
		}
		out.Devices = []api.Deployment{}
	}
	for _, d := range deps {
		counts[d.Status]++
		if one != "" && d.Device == one {
			out.Devices = append(out.Devices, apiDeployment(d, names[d.Device], p.Name))
		} else if one == "" && want != "" && strings.EqualFold(d.Status, want) {
			out.Devices = append(out.Devices, api.Deployment{Package: d.Package, DeviceID: d.Device, DeviceName: names[d.Device],
				Status: d.Status, Assigned: d.Assigned, Updated: d.Updated, Detail: d.Detail})
		}
	}
	for st, n := range counts {
		out.Statuses = append(out.Statuses, api.StatusCount{Status: st, Count: n, Percent: math.Round(1000*float64(n)/float64(len(deps))) / 10})
	}
	sort.Slice(out.Statuses, func(i, j int) bool {
		a, b := out.Statuses[i], out.Statuses[j]
		if ra, rb := statusRank(a.Status), statusRank(b.Status); ra != rb {
			return ra < rb
		}
		return a.Status < b.Status
	})
	sort.Slice(out.Devices, func(i, j int) bool { return out.Devices[i].DeviceName < out.Devices[j].DeviceName })
	if one != "" && len(out.Devices) == 0 {
		return errkind.New(errkind.NotFound, "package %s is not assigned to device %s", p.ID, r.URL.Query().Get("device"))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// apiDeployment is one device's whole record for one package.
func apiDeployment(d zone.Deployment, deviceName, packageName string) api.Deployment {
	out := api.Deployment{Package: d.Package, PackageName: packageName, DeviceID: d.Device, DeviceName: deviceName,
		Status: d.Status, Assigned: d.Assigned, Updated: d.Updated, Detail: d.Detail, Output: d.Output, ExitCode: d.ExitCode,
		Attempts: d.Attempts, LastError: d.LastError}
	for _, h := range d.History {
		out.History = append(out.History, api.StatusChange{Status: h.Status, Time: h.Time})
	}
	return out
}

// devicePackageList is the per-device view (zman device-package-list): every
// package assigned to the device, with status, attempts, history and last
// error.
func (h *Handlers) devicePackageList(w http.ResponseWriter, r *http.Request, actor string) error {
	dev, err := h.Zone.ResolveDevice(r.PathValue("ref"))
	if err != nil {
		return err
	}
	deps, pkgs, err := h.Zone.DevicePackages(dev.ID)
	if err != nil {
		return err
	}
	out := make([]api.Deployment, 0, len(deps))
	for i, d := range deps {
		a := apiDeployment(d, dev.Name, pkgs[i].Name)
		a.Output = "" // per package: zman package-stats ID --device D
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Package < out[j].Package })
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handlers) validatePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.PackageValidate
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	p, err := h.packageOf(r)
	if err != nil {
		return err
	}
	before, err := h.Zone.Deployments(p.ID)
	if err != nil {
		return err
	}
	if err := h.Zone.Exec(actor, zone.CmdPackageValidate, zone.PackageValidate{Package: p.ID, Mode: req.Mode}); err != nil {
		return err
	}
	after, err := h.Zone.Deployments(p.ID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.PackageValidateResult{Package: p.ID, Removed: len(before) - len(after)})
	return nil
}

func toAPIConfig(c zone.DownloadConfig) api.DownloadConfig { return api.DownloadConfig(c) }

func (h *Handlers) getDownloadConfig(w http.ResponseWriter, r *http.Request, actor string) error {
	c, err := h.Zone.DownloadConfig()
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, toAPIConfig(c))
	return nil
}

func (h *Handlers) putDownloadConfig(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.DownloadConfig
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	c := zone.DownloadConfig(req)
	if err := h.Zone.Exec(actor, zone.CmdDownloadConfigure, c); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, req)
	return nil
}

// devicePackages tells a device what to deploy: its packages that are
// active and not yet done, with the download configuration. Packages
// still WAITING NOTIFICATION become NOTIFIED.
func (h *Handlers) devicePackages(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	cfg, err := h.Zone.DownloadConfig()
	if err != nil {
		return err
	}
	out := api.DevicePackages{Config: toAPIConfig(cfg), Packages: []api.DevicePackage{}}
	deps, pkgs, err := h.Zone.DevicePackages(dev.ID)
	if err != nil {
		return err
	}
	offers, notify := zone.Offers(cfg, deps, pkgs)
	for _, o := range offers {
		p := o.Package
		info, pack := h.Content.Locations(dev, p)
		out.Packages = append(out.Packages, api.DevicePackage{ID: p.ID, Priority: p.Priority, InfoLocation: p.Activation.InfoLocation,
			PackLocation: p.Activation.PackLocation, InfoLocations: info, PackLocations: pack,
			Fragments: p.Frags, Size: p.Size, SHA256: p.SHA256, Status: zone.StatusNotified, Now: o.Deployment.Now})
	}
	if len(notify) > 0 {
		if err := h.Zone.ExecBatch("device:"+dev.ID, zone.CmdPackageNotify, zone.PackageNotify{Device: dev.ID, Packages: notify, Time: h.Zone.Now()}); err != nil {
			return err
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handlers) devicePackageStatus(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	var req api.PackageStatusReport
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if !content.ValidID(id) {
		return errkind.New(errkind.NotFound, "package %q not found", id)
	}
	st := zone.CanonicalStatus(req.Status)
	detail := strings.ToValidUTF8(req.Detail, "?")
	if len(detail) > api.MaxStatusDetail {
		detail = strings.ToValidUTF8(detail[:api.MaxStatusDetail], "")
	}
	output := req.Output
	if len(output) > api.MaxStatusOutput {
		output = output[len(output)-api.MaxStatusOutput:] // the tail is what tells
	}
	output = strings.ToValidUTF8(output, "?")
	if err := h.Zone.ExecBatch("device:"+dev.ID, zone.CmdPackageStatus, zone.PackageStatus{Device: dev.ID, Package: id, Status: st, Time: h.Zone.Now(),
		Detail: detail, Output: output, ExitCode: req.ExitCode}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
