package contentrepl

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// Register mounts the routes of content replication, closest-server
// rules and scrub.
func (c *Content) Register(r httpapi.Routes) {
	r.Admin("GET "+api.Prefix+"/content-replication", c.replicationStatus)
	r.Admin("GET "+api.Prefix+"/content-replication/schedule", c.getReplicationSchedule)
	r.Admin("PUT "+api.Prefix+"/content-replication/schedule", c.putReplicationSchedule)
	r.Admin("POST "+api.Prefix+"/content-replication/now", c.replicateNow)
	r.Admin("GET "+api.Prefix+"/closest-server-rules", c.listClosestRules)
	r.Admin("PUT "+api.Prefix+"/closest-server-rules", c.setClosestRule)
	r.Admin("DELETE "+api.Prefix+"/closest-server-rules", c.clearClosestRule)
	r.Admin("POST "+api.Prefix+"/content/scrub", c.postScrub)
	// Peers only (their zone server certificate): images are pulled by
	// the servers, never by agents or administrators.
	r.Peer("GET "+api.Prefix+"/replication/images", c.peerImages)
	r.Peer("GET "+api.Prefix+"/replication/images/{name}", c.peerImage)
	r.Peer("POST "+api.Prefix+"/cluster/content/suspect", c.peerSuspect)
}

func apiSchedule(sc zone.ReplicationSchedule) api.ReplicationSchedule {
	return api.ReplicationSchedule{Interval: sc.Interval.String(), IntervalSeconds: int64(sc.Interval / time.Second), Requested: sc.Requested}
}

func (c *Content) replicationStatus(w http.ResponseWriter, r *http.Request, _ string) error {
	sched, err := c.Zone.ReplicationSchedule()
	if err != nil {
		return err
	}
	servers, err := c.Zone.Servers()
	if err != nil {
		return err
	}
	pkgs, err := c.Zone.Packages()
	if err != nil {
		return err
	}
	states, err := c.Zone.ContentStates()
	if err != nil {
		return err
	}
	wantServer, wantPkg := r.URL.Query().Get("server"), r.URL.Query().Get("package")
	names := map[string]string{}
	for _, sv := range servers {
		names[sv.ID] = sv.Name
	}
	have := map[string]zone.ContentState{}
	imageSize := map[string]int64{}
	for _, st := range states {
		if _, ok := names[st.Server]; !ok {
			continue // a deleted server's records
		}
		have[st.Server+"/"+st.Package] = st
		if img, ok := strings.CutPrefix(st.Package, zone.ImagePrefix); ok && st.State == zone.ContentPresent {
			imageSize[img] = max(imageSize[img], st.Size)
		}
	}
	images := make([]string, 0, len(imageSize))
	for n := range imageSize {
		images = append(images, n)
	}
	sort.Strings(images)
	out := api.ReplicationStatus{Schedule: apiSchedule(sched), Entries: []api.ReplicationEntry{}}
	add := func(sv zone.Server, key, kind, pkg, name string, size int64) {
		e := api.ReplicationEntry{Server: sv.Name, ServerID: sv.ID, Kind: kind, Package: pkg, Name: name, State: api.ContentMissing, Size: size}
		if st, ok := have[sv.ID+"/"+key]; ok {
			e.State, e.Bytes, e.Error, e.Updated, e.Peer = st.State, st.Bytes, st.Error, st.Updated, names[st.Peer]
			e.Stale = st.State == zone.ContentInFlight && c.Now().Sub(st.Updated) > inFlightStale
			if st.Size > 0 {
				e.Size = st.Size
			}
		}
		out.Entries = append(out.Entries, e)
	}
	for _, sv := range servers {
		if wantServer != "" && wantServer != sv.Name && wantServer != sv.ID {
			continue
		}
		for _, p := range pkgs {
			if wantPkg == "" || wantPkg == p.ID {
				add(sv, p.ID, "package", p.ID, p.Name, p.Size)
			}
		}
		for _, img := range images {
			if wantPkg == "" || wantPkg == zone.ImagePrefix+img {
				add(sv, zone.ImagePrefix+img, "image", "", img, imageSize[img])
			}
		}
	}
	if wantServer != "" && len(out.Entries) == 0 {
		found := false
		for _, sv := range servers {
			found = found || sv.Name == wantServer || sv.ID == wantServer
		}
		if !found {
			return errkind.New(errkind.NotFound, "server %q not found (zman server-list)", wantServer)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (c *Content) getReplicationSchedule(w http.ResponseWriter, r *http.Request, _ string) error {
	sched, err := c.Zone.ReplicationSchedule()
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, apiSchedule(sched))
	return nil
}

func (c *Content) putReplicationSchedule(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ReplicationSchedule
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	d := time.Duration(req.IntervalSeconds) * time.Second
	if req.IntervalSeconds == 0 && req.Interval != "" {
		var err error
		if d, err = time.ParseDuration(req.Interval); err != nil {
			return errkind.New(errkind.Usage, "interval %q: want a duration such as 15m or 2h", req.Interval)
		}
	}
	if err := c.Zone.Exec(actor, zone.CmdContentScheduleSet, zone.ReplicationSchedule{Interval: d}); err != nil {
		return err
	}
	return c.getReplicationSchedule(w, r, actor)
}

func (c *Content) replicateNow(w http.ResponseWriter, r *http.Request, actor string) error {
	if err := c.Zone.Exec(actor, zone.CmdContentReplicateNow, map[string]any{"time": c.Zone.Now()}); err != nil {
		return err
	}
	c.Trigger()
	return c.getReplicationSchedule(w, r, actor)
}

func (c *Content) listClosestRules(w http.ResponseWriter, r *http.Request, _ string) error {
	rules, err := c.Zone.ClosestServerRules()
	if err != nil {
		return err
	}
	servers, err := c.Zone.Servers()
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, sv := range servers {
		names[sv.ID] = sv.Name
	}
	out := []api.ClosestServerRule{}
	for _, rule := range rules {
		a := api.ClosestServerRule{Scope: rule.Scope, Target: rule.Target, Set: rule.Set, Servers: []string{}}
		if rule.Scope == zone.ScopeDevice {
			dev, err := c.Zone.Device(rule.Target)
			if err != nil {
				continue // the device was deleted: its rule no longer applies
			}
			a.Name = dev.Name
		}
		for _, id := range rule.Servers {
			if n, ok := names[id]; ok {
				a.Servers = append(a.Servers, n)
			}
		}
		out = append(out, a)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// ruleScope resolves a request's scope and target (a device by id or name).
func (c *Content) ruleScope(scope, target string) (string, error) {
	switch scope {
	case zone.ScopeZone:
		return "", nil
	case zone.ScopeGroup:
		if target == "" {
			return "", errkind.New(errkind.Usage, "a group scope needs the group's name")
		}
		return target, nil
	case zone.ScopeDevice:
		dev, err := c.Zone.ResolveDevice(target)
		if err != nil {
			return "", err
		}
		return dev.ID, nil
	}
	return "", errkind.New(errkind.Usage, "scope %q: want zone, group or device", scope)
}

func (c *Content) setClosestRule(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ClosestServerRule
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	target, err := c.ruleScope(req.Scope, req.Target)
	if err != nil {
		return err
	}
	servers, err := c.Zone.Servers()
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(req.Servers))
	for _, ref := range req.Servers {
		id := ""
		for _, sv := range servers {
			if sv.Name == ref || sv.ID == ref {
				id = sv.ID
			}
		}
		if id == "" {
			return errkind.New(errkind.NotFound, "server %q not found (zman server-list)", ref)
		}
		ids = append(ids, id)
	}
	rule := zone.ClosestServerRule{Scope: req.Scope, Target: target, Servers: ids, Set: c.Zone.Now()}
	if err := c.Zone.Exec(actor, zone.CmdClosestServerRuleSet, rule); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Content) clearClosestRule(w http.ResponseWriter, r *http.Request, actor string) error {
	scope, target := r.URL.Query().Get("scope"), r.URL.Query().Get("target")
	target, err := c.ruleScope(scope, target)
	if err != nil {
		return err
	}
	if err := c.Zone.Exec(actor, zone.CmdClosestServerRuleDrop, zone.ClosestServerRule{Scope: scope, Target: target}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Content) peerImages(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	imgs, err := imaging.List(c.ImagesDir())
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if imgs == nil {
		imgs = []imaging.Image{}
	}
	httpapi.WriteJSON(w, http.StatusOK, imgs)
	return nil
}

func (c *Content) peerImage(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	name := r.PathValue("name")
	if !validImageName(name) {
		return errkind.New(errkind.NotFound, "no image %q", name)
	}
	p := filepath.Join(c.ImagesDir(), name)
	sum, err := os.ReadFile(p + ".sha256")
	if err != nil {
		return errkind.New(errkind.NotFound, "no image %q", name)
	}
	f, err := os.Open(p)
	if err != nil {
		return errkind.New(errkind.NotFound, "no image %q", name)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return errkind.New(errkind.NotFound, "no image %q", name)
	}
	w.Header().Set(imaging.DigestHeader, strings.TrimSpace(string(sum)))
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}
