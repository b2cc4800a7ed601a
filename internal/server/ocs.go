package server

import (
	"net/http"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/server/ocsendpoint"
	"zonekit/internal/zone"
)

// ocsHandler answers OCS Inventory NG agents (internal/server/ocsendpoint).
func (s *Server) ocsHandler(overTLS bool) http.HandlerFunc {
	return ocsendpoint.Handler(ocsendpoint.Options{Config: s.opts.Config.OCS, Zone: s.db, Log: s.log, Now: s.now, OverTLS: overTLS})
}

func (s *Server) getInventory(w http.ResponseWriter, r *http.Request, _ string) error {
	dev, err := s.db.ResolveDevice(r.PathValue("ref"))
	if err != nil {
		return err
	}
	inv, err := s.db.Inventory(dev.ID)
	if err != nil {
		return err
	}
	if inv == nil {
		return errkind.New(errkind.NotFound, "device %s has sent no inventory", dev.Name)
	}
	writeJSON(w, http.StatusOK, apiInventory(*inv))
	return nil
}

// apiInventory is the wire form of a stored inventory.
func apiInventory(inv zone.Inventory) api.Inventory {
	out := api.Inventory{Time: inv.Time, AgentID: inv.AgentID, Hostname: inv.Hostname, OS: inv.OS, OSVersion: inv.OSVersion,
		CPU: inv.CPU, CPUs: inv.CPUs, MemoryMB: inv.MemoryMB, IP: inv.IP, MACs: inv.MACs}
	for _, sw := range inv.Software {
		out.Software = append(out.Software, api.InventorySoftware{Name: sw.Name, Version: sw.Version})
	}
	return out
}
