package server

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
	"zonekit/internal/zone"
)

func (s *Server) replicationRoutes(mux *http.ServeMux, admin adminRoute) {
	admin("GET "+api.Prefix+"/content-replication", s.replicationStatus)
	admin("GET "+api.Prefix+"/content-replication/schedule", s.getReplicationSchedule)
	admin("PUT "+api.Prefix+"/content-replication/schedule", s.putReplicationSchedule)
	admin("POST "+api.Prefix+"/content-replication/now", s.replicateNow)
	admin("GET "+api.Prefix+"/closest-server-rules", s.listClosestRules)
	admin("PUT "+api.Prefix+"/closest-server-rules", s.setClosestRule)
	admin("DELETE "+api.Prefix+"/closest-server-rules", s.clearClosestRule)
	// Peers only (their zone server certificate): images are pulled by
	// the servers, never by agents or administrators.
	mux.HandleFunc("GET "+api.Prefix+"/replication/images", s.wrap(s.peerImages))
	mux.HandleFunc("GET "+api.Prefix+"/replication/images/{name}", s.wrap(s.peerImage))
}

func apiSchedule(sc zone.ReplicationSchedule) api.ReplicationSchedule {
	return api.ReplicationSchedule{Interval: sc.Interval.String(), IntervalSeconds: int64(sc.Interval / time.Second), Requested: sc.Requested}
}

func (s *Server) replicationStatus(w http.ResponseWriter, r *http.Request, _ string) error {
	sched, err := s.db.ReplicationSchedule()
	if err != nil {
		return err
	}
	servers, err := s.db.Servers()
	if err != nil {
		return err
	}
	pkgs, err := s.db.Packages()
	if err != nil {
		return err
	}
	states, err := s.db.ContentStates()
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
			e.Stale = st.State == zone.ContentInFlight && s.now().Sub(st.Updated) > inFlightStale
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
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getReplicationSchedule(w http.ResponseWriter, r *http.Request, _ string) error {
	sched, err := s.db.ReplicationSchedule()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiSchedule(sched))
	return nil
}

func (s *Server) putReplicationSchedule(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ReplicationSchedule
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	d := time.Duration(req.IntervalSeconds) * time.Second
	if req.IntervalSeconds == 0 && req.Interval != "" {
		var err error
		if d, err = time.ParseDuration(req.Interval); err != nil {
			return errkind.New(errkind.Usage, "interval %q: want a duration such as 15m or 2h", req.Interval)
		}
	}
	if err := s.db.Exec(actor, zone.CmdContentScheduleSet, zone.ReplicationSchedule{Interval: d}); err != nil {
		return err
	}
	return s.getReplicationSchedule(w, r, actor)
}

func (s *Server) replicateNow(w http.ResponseWriter, r *http.Request, actor string) error {
	if err := s.db.Exec(actor, zone.CmdContentReplicateNow, map[string]any{"time": s.db.Now()}); err != nil {
		return err
	}
	s.pkg.repl.trigger()
	return s.getReplicationSchedule(w, r, actor)
}

func (s *Server) listClosestRules(w http.ResponseWriter, r *http.Request, _ string) error {
	rules, err := s.db.ClosestServerRules()
	if err != nil {
		return err
	}
	servers, err := s.db.Servers()
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
			dev, err := s.db.Device(rule.Target)
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
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ruleScope resolves a request's scope and target (a device by id or name).
func (s *Server) ruleScope(scope, target string) (string, error) {
	switch scope {
	case zone.ScopeZone:
		return "", nil
	case zone.ScopeGroup:
		if target == "" {
			return "", errkind.New(errkind.Usage, "--group needs the group's name")
		}
		return target, nil
	case zone.ScopeDevice:
		dev, err := s.db.ResolveDevice(target)
		if err != nil {
			return "", err
		}
		return dev.ID, nil
	}
	return "", errkind.New(errkind.Usage, "scope %q: want zone, group or device (--zone, --group G, --device D)", scope)
}

func (s *Server) setClosestRule(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ClosestServerRule
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	target, err := s.ruleScope(req.Scope, req.Target)
	if err != nil {
		return err
	}
	servers, err := s.db.Servers()
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
	rule := zone.ClosestServerRule{Scope: req.Scope, Target: target, Servers: ids, Set: s.db.Now()}
	if err := s.db.Exec(actor, zone.CmdClosestServerRuleSet, rule); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) clearClosestRule(w http.ResponseWriter, r *http.Request, actor string) error {
	scope, target := r.URL.Query().Get("scope"), r.URL.Query().Get("target")
	target, err := s.ruleScope(scope, target)
	if err != nil {
		return err
	}
	if err := s.db.Exec(actor, zone.CmdClosestServerRuleDrop, zone.ClosestServerRule{Scope: scope, Target: target}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) peerImages(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.peerFromTLS(r); err != nil {
		return err
	}
	imgs, err := imaging.List(s.imagesDir())
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if imgs == nil {
		imgs = []imaging.Image{}
	}
	writeJSON(w, http.StatusOK, imgs)
	return nil
}

func (s *Server) peerImage(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.peerFromTLS(r); err != nil {
		return err
	}
	name := r.PathValue("name")
	if !validImageName(name) {
		return errkind.New(errkind.NotFound, "no image %q", name)
	}
	p := filepath.Join(s.imagesDir(), name)
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
