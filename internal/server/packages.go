package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

// packages is the zone server's side of package deployment: the content
// repository and the allocation of package ids.
type packages struct {
	repo     *content.Repo
	repl     *replicator
	mu       sync.Mutex
	last     uint64          // highest id handed out by this process
	building map[string]bool // ids being built here, not yet recorded
}

func newPackages(dir string, db *zone.DB) (*packages, error) {
	repo, err := content.NewRepo(dir)
	if err != nil {
		return nil, err
	}
	// Builds and removals interrupted by a crash leave staging directories,
	// and a crash between a build's rename and its record a package that
	// the zone does not know: neither may be served.
	if err := repo.Sweep(); err != nil {
		return nil, err
	}
	ids, err := repo.IDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := db.Package(id); errkind.Of(err) == errkind.NotFound {
			if err := repo.Remove(id); err != nil {
				return nil, err
			}
		}
	}
	return &packages{repo: repo, repl: newReplicator(), building: map[string]bool{}}, nil
}

// nextID hands out a package id as OCS Inventory NG does (the build time
// in seconds), moved on past every id in the store, the repository and
// this process, so that two builds in one second still differ.
func (s *Server) nextPackageID() (string, error) {
	p := s.pkg
	p.mu.Lock()
	defer p.mu.Unlock()
	last, err := s.db.LastPackageID()
	if err != nil {
		return "", err
	}
	id := max(uint64(s.now().Unix()), last+1, p.last+1)
	for p.repo.Exists(strconv.FormatUint(id, 10)) {
		id++
	}
	p.last = id
	p.building[strconv.FormatUint(id, 10)] = true
	return strconv.FormatUint(id, 10), nil
}

// built ends the build of id (recorded or failed).
func (p *packages) built(id string) {
	p.mu.Lock()
	delete(p.building, id)
	p.mu.Unlock()
}

// isBuilding reports whether package id is being built here: its content
// may exist before its record, and replication must leave it alone.
func (p *packages) isBuilding(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.building[id]
}

func (s *Server) packageRoutes(admin func(string, func(http.ResponseWriter, *http.Request, string) error), device func(string, deviceHandler)) {
	admin("POST "+api.Prefix+"/packages", s.createPackage)
	admin("GET "+api.Prefix+"/packages", s.listPackages)
	admin("GET "+api.Prefix+"/packages/{id}", s.getPackage)
	admin("DELETE "+api.Prefix+"/packages/{id}", s.deletePackage)
	admin("POST "+api.Prefix+"/packages/{id}/activate", s.activatePackage)
	admin("POST "+api.Prefix+"/packages/{id}/deactivate", s.deactivatePackage)
	admin("POST "+api.Prefix+"/packages/{id}/assign", s.assignPackage(true))
	admin("POST "+api.Prefix+"/packages/{id}/unassign", s.assignPackage(false))
	admin("GET "+api.Prefix+"/packages/{id}/stats", s.packageStats)
	admin("POST "+api.Prefix+"/packages/{id}/validate", s.validatePackage)
	admin("POST "+api.Prefix+"/packages/{id}/deploy-now", s.deployNow)
	admin("GET "+api.Prefix+"/devices/{ref}/packages", s.devicePackageList)
	admin("GET "+api.Prefix+"/download-config", s.getDownloadConfig)
	admin("PUT "+api.Prefix+"/download-config", s.putDownloadConfig)
	device("GET "+api.Prefix+"/device/packages", s.devicePackages)
	device("POST "+api.Prefix+"/device/packages/{id}/status", s.devicePackageStatus)
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
func (s *Server) createPackage(w http.ResponseWriter, r *http.Request, actor string) error {
	mr, err := r.MultipartReader()
	if err != nil {
		return errkind.New(errkind.Usage, "package-create wants a multipart body with a package part: %v", err)
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "package" {
		return errkind.New(errkind.Usage, "the first part of the body must be the package description")
	}
	var spec content.Spec
	if err := json.NewDecoder(io.LimitReader(part, maxBody)).Decode(&spec); err != nil {
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
	id, err := s.nextPackageID()
	if err != nil {
		return err
	}
	defer s.pkg.built(id)
	m, err := s.pkg.repo.Build(id, spec, archive, s.now())
	if err != nil {
		return err
	}
	p := zone.Package{ID: id, Spec: spec, Format: m.Format, Size: m.Size, Frags: len(m.Fragments), MD5: m.MD5,
		SHA256: m.SHA256, Created: m.Created, CreatedBy: actor}
	if err := s.db.Exec(actor, zone.CmdPackageCreate, p); err != nil {
		s.pkg.repo.Remove(id)
		return err
	}
	s.pkg.repl.trigger()
	writeJSON(w, http.StatusCreated, toAPIPackage(p, 0))
	return nil
}

func (s *Server) listPackages(w http.ResponseWriter, r *http.Request, actor string) error {
	pkgs, err := s.db.Packages()
	if err != nil {
		return err
	}
	counts, err := s.db.DeploymentStatusCounts()
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
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) packageOf(r *http.Request) (zone.Package, error) {
	id := r.PathValue("id")
	if !content.ValidID(id) {
		return zone.Package{}, errkind.New(errkind.NotFound, "package %q not found: package ids are digits (zman package-list)", id)
	}
	return s.db.Package(id)
}

func (s *Server) getPackage(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := s.packageOf(r)
	if err != nil {
		return err
	}
	deps, err := s.db.Deployments(p.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPIPackage(p, len(deps)))
	return nil
}

// deletePackage removes the record (with its activation and assignments)
// first, then the content, so that no agent is sent to a missing package.
func (s *Server) deletePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := s.packageOf(r)
	if err != nil {
		return err
	}
	if err := s.db.Exec(actor, zone.CmdPackageDelete, map[string]string{"name": p.ID}); err != nil {
		return err
	}
	if err := s.pkg.repo.Remove(p.ID); err != nil {
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

func (s *Server) activatePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.Activation
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	p, err := s.packageOf(r)
	if err != nil {
		return err
	}
	if req.InfoLocation == "" {
		req.InfoLocation = fmt.Sprintf("%s:%d%s", s.self.Name, s.self.Port, api.ContentPrefix)
	}
	if req.PackLocation == "" {
		if s.opts.Config.ContentPort == 0 {
			return errkind.New(errkind.Usage, "this zone server serves no plain-HTTP content: give --pack-location, or set 'zconfigure -D server.content-port=80' and restart")
		}
		req.PackLocation = fmt.Sprintf("%s:%d%s", s.self.Name, s.opts.Config.ContentPort, api.ContentPrefix)
	}
	if req.InfoLocation, err = location(req.InfoLocation, "--info-location"); err != nil {
		return err
	}
	if req.PackLocation, err = location(req.PackLocation, "--pack-location"); err != nil {
		return err
	}
	if err := s.checkLocations(r.Context(), p, req.InfoLocation, req.PackLocation); err != nil {
		return err
	}
	a := zone.Activation{InfoLocation: req.InfoLocation, PackLocation: req.PackLocation, Activated: s.db.Now(), ActivatedBy: actor}
	if err := s.db.Exec(actor, zone.CmdPackageActivate, zone.PackageActivate{ID: p.ID, Activation: a}); err != nil {
		return err
	}
	p.Activation = &a
	s.pkg.repl.trigger()
	writeJSON(w, http.StatusOK, toAPIPackage(p, 0))
	return nil
}

// checkLocations fetches the info file over HTTPS (trusting the zone CA,
// as agents do) and compares it with ours, and asks the fragment location
// for the first fragment over HTTP, so that a typo in a location fails
// here rather than on every device.
func (s *Server) checkLocations(ctx context.Context, p zone.Package, infoLoc, packLoc string) error {
	want, err := s.pkg.repo.Info(p.ID)
	if err != nil {
		return fmt.Errorf("package %s: %w", p.ID, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.zoneCA())
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
	m, err := s.pkg.repo.Manifest(p.ID)
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

func (s *Server) deactivatePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := s.packageOf(r)
	if err != nil {
		return err
	}
	if p.Activation == nil {
		return errkind.New(errkind.Usage, "package %s is not active", p.ID)
	}
	if err := s.db.Exec(actor, zone.CmdPackageDeactivate, zone.PackageActivate{ID: p.ID}); err != nil {
		return err
	}
	p.Activation = nil
	writeJSON(w, http.StatusOK, toAPIPackage(p, 0))
	return nil
}

// targets resolves an assignment's devices, groups and filter to device
// ids, sorted and without duplicates.
func (s *Server) targets(req api.PackageAssign) ([]string, error) {
	ids := map[string]bool{}
	for _, ref := range req.Devices {
		dev, err := s.db.ResolveDevice(ref)
		if err != nil {
			return nil, err
		}
		ids[dev.ID] = true
	}
	if len(req.Groups) > 0 {
		groups, err := s.db.Groups()
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
						if members, err = s.matching(*g.Filter); err != nil {
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
		match, err := s.matching(f)
		if err != nil {
			return nil, err
		}
		for _, id := range match {
			ids[id] = true
		}
	} else if len(req.Devices) == 0 && len(req.Groups) == 0 {
		return nil, errkind.New(errkind.Usage, "name devices, --group, or a filter (--all, --os, --name, --software, --ip-range)")
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// matching lists the devices f matches now, reading the inventory only
// when f asks about software or addresses.
func (s *Server) matching(f zone.DeviceFilter) ([]string, error) {
	devs, err := s.db.Devices()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range devs {
		var inv *zone.Inventory
		if f.Software != "" || f.IPRange != "" {
			if inv, err = s.db.Inventory(d.ID); err != nil {
				return nil, err
			}
		}
		if f.Match(d, inv) {
			out = append(out, d.ID)
		}
	}
	return out, nil
}

// targetsOf reads a request naming a package and its target devices: the
// request, the package, the devices' ids and the package's deployments.
func (s *Server) targetsOf(w http.ResponseWriter, r *http.Request) (api.PackageAssign, zone.Package, []string, []zone.Deployment, error) {
	var req api.PackageAssign
	if err := readJSON(w, r, &req); err != nil {
		return req, zone.Package{}, nil, nil, err
	}
	p, err := s.packageOf(r)
	if err != nil {
		return req, p, nil, nil, err
	}
	ids, err := s.targets(req)
	if err != nil {
		return req, p, nil, nil, err
	}
	deps, err := s.db.Deployments(p.ID)
	return req, p, ids, deps, err
}

func (s *Server) assignPackage(assign bool) func(http.ResponseWriter, *http.Request, string) error {
	return func(w http.ResponseWriter, r *http.Request, actor string) error {
		req, p, ids, deps, err := s.targetsOf(w, r)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, d := range deps {
			have[d.Device] = true
		}
		res := api.PackageAssignResult{Package: p.ID, Changed: []string{}}
		if assign {
			if ids, err = s.sameOS(p, req, ids, &res); err != nil {
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
			if err := s.db.Exec(actor, name, zone.PackageDevices{Package: p.ID, Devices: res.Changed, Time: s.db.Now()}); err != nil {
				return err
			}
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	}
}

// deployNow marks the targets' deployments of a package "deploy now":
// their agents ignore the download latencies for it at their next
// refresh. Targets not assigned the package are counted, not changed.
func (s *Server) deployNow(w http.ResponseWriter, r *http.Request, actor string) error {
	_, p, ids, deps, err := s.targetsOf(w, r)
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
		if err := s.db.Exec(actor, zone.CmdPackageDeployNow, zone.PackageDevices{Package: p.ID, Devices: res.Changed, Time: s.db.Now()}); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// sameOS keeps the devices whose OS can run p (content.RunsOn), the rule
// zac applies: a device named in the request that cannot is an error,
// one reached through a group or filter is left out and counted.
func (s *Server) sameOS(p zone.Package, req api.PackageAssign, ids []string, res *api.PackageAssignResult) ([]string, error) {
	named := map[string]bool{}
	for _, ref := range req.Devices {
		if dev, err := s.db.ResolveDevice(ref); err == nil {
			named[dev.ID] = true
		}
	}
	var keep []string
	for _, id := range ids {
		dev, err := s.db.Device(id)
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

func (s *Server) packageStats(w http.ResponseWriter, r *http.Request, actor string) error {
	p, err := s.packageOf(r)
	if err != nil {
		return err
	}
	deps, err := s.db.Deployments(p.ID)
	if err != nil {
		return err
	}
	want := r.URL.Query().Get("status")
	var one string // ?device=: that device's record, with its output
	if ref := r.URL.Query().Get("device"); ref != "" {
		dev, err := s.db.ResolveDevice(ref)
		if err != nil {
			return err
		}
		one = dev.ID
	}
	counts := map[string]int{}
	out := api.PackageStats{Package: p.ID, Name: p.Name, Total: len(deps), Statuses: []api.StatusCount{}}
	var names map[string]string
	if want != "" || one != "" {
		devs, err := s.db.Devices()
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
	writeJSON(w, http.StatusOK, out)
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
func (s *Server) devicePackageList(w http.ResponseWriter, r *http.Request, actor string) error {
	dev, err := s.db.ResolveDevice(r.PathValue("ref"))
	if err != nil {
		return err
	}
	deps, pkgs, err := s.db.DevicePackages(dev.ID)
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
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) validatePackage(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.PackageValidate
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	p, err := s.packageOf(r)
	if err != nil {
		return err
	}
	before, err := s.db.Deployments(p.ID)
	if err != nil {
		return err
	}
	if err := s.db.Exec(actor, zone.CmdPackageValidate, zone.PackageValidate{Package: p.ID, Mode: req.Mode}); err != nil {
		return err
	}
	after, err := s.db.Deployments(p.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.PackageValidateResult{Package: p.ID, Removed: len(before) - len(after)})
	return nil
}

func toAPIConfig(c zone.DownloadConfig) api.DownloadConfig { return api.DownloadConfig(c) }

func (s *Server) getDownloadConfig(w http.ResponseWriter, r *http.Request, actor string) error {
	c, err := s.db.DownloadConfig()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPIConfig(c))
	return nil
}

func (s *Server) putDownloadConfig(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.DownloadConfig
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	c := zone.DownloadConfig(req)
	if err := s.db.Exec(actor, zone.CmdDownloadConfigure, c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

// devicePackages tells a device what to deploy: its packages that are
// active and not yet done, with the download configuration. Packages
// still WAITING NOTIFICATION become NOTIFIED.
func (s *Server) devicePackages(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	cfg, err := s.db.DownloadConfig()
	if err != nil {
		return err
	}
	out := api.DevicePackages{Config: toAPIConfig(cfg), Packages: []api.DevicePackage{}}
	deps, pkgs, err := s.db.DevicePackages(dev.ID)
	if err != nil {
		return err
	}
	offers, notify := zone.Offers(cfg, deps, pkgs)
	for _, o := range offers {
		p := o.Package
		info, pack := s.packLocations(dev, p)
		out.Packages = append(out.Packages, api.DevicePackage{ID: p.ID, Priority: p.Priority, InfoLocation: p.Activation.InfoLocation,
			PackLocation: p.Activation.PackLocation, InfoLocations: info, PackLocations: pack,
			Fragments: p.Frags, Size: p.Size, SHA256: p.SHA256, Status: zone.StatusNotified, Now: o.Deployment.Now})
	}
	if len(notify) > 0 {
		if err := s.db.ExecBatch("device:"+dev.ID, zone.CmdPackageNotify, zone.PackageNotify{Device: dev.ID, Packages: notify, Time: s.db.Now()}); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) devicePackageStatus(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	var req api.PackageStatusReport
	if err := readJSON(w, r, &req); err != nil {
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
	if err := s.db.ExecBatch("device:"+dev.ID, zone.CmdPackageStatus, zone.PackageStatus{Device: dev.ID, Package: id, Status: st, Time: s.db.Now(),
		Detail: detail, Output: output, ExitCode: req.ExitCode}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
