package server

import (
	"fmt"
	"strings"

	"zonekit/internal/api"
	"zonekit/internal/zone"
)

// serverOrderFor orders the zone's servers for device dev by the
// closest-server rules (device, then its groups, then the zone), first
// (a server id, may be "") ahead of the servers no rule names.
func (s *Server) serverOrderFor(dev zone.Device, first string) []zone.Server {
	servers, err := s.db.Servers()
	if err != nil || len(servers) == 0 {
		return []zone.Server{s.self}
	}
	rules, err := s.db.ClosestServerRules()
	if err != nil {
		rules = nil
	}
	var groups []zone.Group
	for _, r := range rules {
		// Groups are read only when a group rule may apply.
		if r.Scope == zone.ScopeGroup {
			groups, _ = s.db.Groups()
			break
		}
	}
	return zone.ServerOrder(servers, rules, groups, dev, first)
}

// serverURLsFor is the server list an agent gets (registration and
// refresh answers): its base URLs, in the order the device should try
// them; without a rule, the server answering first.
func (s *Server) serverURLsFor(dev zone.Device) []string {
	order := s.serverOrderFor(dev, s.self.ID)
	out := make([]string, 0, len(order))
	for _, sv := range order {
		out = append(out, s.urlOf(sv))
	}
	return out
}

// primaryLocations are the Primary Servers that hold package p (per
// their content-replication records), as info and fragment locations in
// the order dev should try them: closest-server rules, else the server
// that activated p first, then the others by name. A server serves
// fragments to agents only when its plain-HTTP content port is on.
func (s *Server) primaryLocations(dev zone.Device, p zone.Package) (info, pack []string) {
	if p.Activation == nil {
		return nil, nil
	}
	ids, err := s.db.ContentHolders(p.ID)
	if err != nil {
		return nil, nil
	}
	holds := map[string]bool{}
	for _, id := range ids {
		holds[id] = true
	}
	if len(holds) == 0 {
		return nil, nil
	}
	first := ""
	host, _, _ := strings.Cut(p.Activation.InfoLocation, "/")
	if servers, err := s.db.Servers(); err == nil {
		for _, sv := range servers {
			if strings.EqualFold(host, fmt.Sprintf("%s:%d", sv.Name, sv.Port)) {
				first = sv.ID
			}
		}
	}
	for _, sv := range s.serverOrderFor(dev, first) {
		if !holds[sv.ID] {
			continue
		}
		info = append(info, fmt.Sprintf("%s:%d%s", sv.Name, sv.Port, api.ContentPrefix))
		if sv.ContentPort > 0 {
			pack = append(pack, fmt.Sprintf("%s:%d%s", sv.Name, sv.ContentPort, api.ContentPrefix))
		}
	}
	return info, pack
}
