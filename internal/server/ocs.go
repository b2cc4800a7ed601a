package server

import (
	"net/http"

	"zonekit/internal/errkind"
	"zonekit/internal/server/ocsendpoint"
)

// ocsHandler answers OCS Inventory NG agents (internal/server/ocsendpoint).
func (s *Server) ocsHandler(overTLS bool) http.HandlerFunc {
	return ocsendpoint.Handler(ocsendpoint.Options{Config: s.opts.Config.OCS, Zone: s.db, Log: s.log, Now: s.now, OverTLS: overTLS, Background: s.ocsWork})
}

// maxOCSContacts bounds the OCS agents' contacts being recorded at once;
// past it a contact goes unrecorded until the agent's next one.
const maxOCSContacts = 16

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
	writeJSON(w, http.StatusOK, inv)
	return nil
}
