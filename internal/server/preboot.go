package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/zone"
)

type adminRoute = func(pattern string, h func(w http.ResponseWriter, r *http.Request, actor string) error)

// prebootRoutes serves the preboot work of machines: administrators
// assign and list it; the imaging services of the zone's servers (their
// server certificate) or administrators read one machine's.
func (s *Server) prebootRoutes(mux *http.ServeMux, admin adminRoute) {
	mux.HandleFunc("GET "+api.Prefix+"/preboot/work", s.wrap(s.serverOrAdmin(s.listPrebootWork)))
	admin("PUT "+api.Prefix+"/preboot/work/{mac}", s.assignPrebootWork)
	admin("DELETE "+api.Prefix+"/preboot/work/{mac}", s.clearPrebootWork)
	mux.HandleFunc("GET "+api.Prefix+"/preboot/work/{mac}", s.wrap(s.getPrebootWork))
	mux.HandleFunc("POST "+api.Prefix+"/preboot/work/{mac}/report", s.wrap(s.reportPrebootTask))
}

// serverOrAdmin admits the zone's servers (pbserv status lists tasks with
// its server's certificate) and administrators.
func (s *Server) serverOrAdmin(h func(http.ResponseWriter, *http.Request, string) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.isZoneServer(r) {
			return h(w, r, "")
		}
		actor, err := s.auth.authenticate(r)
		if err != nil {
			return err
		}
		setActor(r, actor)
		return h(w, r, actor)
	}
}

// reportPrebootTask records an imaging task's progress. Only the zone's
// imaging services report (their server certificate): a machine reports
// to its imaging service with its task token, which this server never
// sees.
func (s *Server) reportPrebootTask(w http.ResponseWriter, r *http.Request) error {
	if !s.isZoneServer(r) {
		return errkind.New(errkind.Auth, "only the zone's servers report imaging tasks")
	}
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	var req api.PrebootReport
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Error) > 4096 {
		req.Error = req.Error[:4096]
	}
	actor := "server:" + r.TLS.VerifiedChains[0][0].Subject.CommonName
	if err := s.db.Exec(actor, zone.CmdPrebootReport, zone.PrebootReport{MAC: mac, Status: req.Status, Bytes: req.Bytes, Error: req.Error}); err != nil {
		return err
	}
	saved, err := s.db.PrebootWork(mac)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.prebootOut(saved))
	return nil
}

// checkPrebootNames refuses work that cannot run: a restore of an image
// this server's imaging service does not hold, a capture onto a name it
// already holds, or a menu the policy service does not have. The image
// directory and menus are this server's (pbserv runs beside the zone
// server); a zone whose imaging runs elsewhere assigns there.
func (s *Server) checkPrebootNames(work zone.PrebootWork) error {
	l := conf.Layout{Home: s.opts.Paths.Home}
	switch work.Action {
	case zone.PrebootMenu:
		if _, err := os.Stat(filepath.Join(l.MenuDir(), work.Menu+".ipxe")); err != nil {
			return errkind.New(errkind.NotFound, "no preboot menu %s on this server (%s)", work.Menu, filepath.Join(l.MenuDir(), work.Menu+".ipxe"))
		}
	case zone.PrebootImage, zone.PrebootTakeImage:
		v, err := l.Load(conf.Imaging)
		if err != nil {
			return err
		}
		imgs, err := imaging.List(v.String("ImageDirectory"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list this server's images: %w", err)
		}
		have := slices.ContainsFunc(imgs, func(i imaging.Image) bool { return i.Name == work.Image })
		if work.Action == zone.PrebootImage && !have {
			return errkind.New(errkind.NotFound, "no image %s on this server's imaging service", work.Image)
		}
		if work.Action == zone.PrebootTakeImage && have {
			return errkind.New(errkind.Exists, "image %s already exists on this server's imaging service; take the image under another name", work.Image)
		}
	}
	return nil
}

func (s *Server) prebootOut(w zone.PrebootWork) api.PrebootWork {
	out := api.PrebootWork{MAC: w.MAC, Action: w.Action, Image: w.Image, Menu: w.Menu, Device: w.Device, Assigned: w.Assigned, Actor: w.Actor,
		Session: w.Session, Clients: w.Clients, Wait: w.Wait,
		Status: w.State(), Started: w.Started, Finished: w.Finished, Bytes: w.Bytes, Error: w.Error}
	if w.Device != "" {
		if dev, err := s.db.Device(w.Device); err == nil {
			out.DeviceName = dev.Name
		}
	}
	return out
}

func (s *Server) listPrebootWork(w http.ResponseWriter, r *http.Request, _ string) error {
	works, err := s.db.PrebootWorks()
	if err != nil {
		return err
	}
	out := make([]api.PrebootWork, 0, len(works))
	for _, pw := range works {
		out = append(out, s.prebootOut(pw))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) assignPrebootWork(w http.ResponseWriter, r *http.Request, actor string) error {
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	var req api.PrebootAssign
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	work := zone.PrebootWork{MAC: mac, Action: req.Action}
	switch req.Action {
	case zone.PrebootMenu:
		if !policy.ValidName(req.Menu) {
			return errkind.New(errkind.Usage, "menu name %q: use letters, digits, '.', '_' and '-'", req.Menu)
		}
		work.Menu = req.Menu
	case zone.PrebootImage, zone.PrebootTakeImage:
		if !policy.ValidName(req.Image) {
			return errkind.New(errkind.Usage, "image name %q: use letters, digits, '.', '_' and '-'", req.Image)
		}
		work.Image = req.Image
	default:
		return errkind.New(errkind.Usage, "preboot action %q: want menu, image or take-image", req.Action)
	}
	if req.Session != "" {
		if req.Action != zone.PrebootImage {
			return errkind.New(errkind.Usage, "a multicast session restores an image; it cannot take one")
		}
		if !policy.ValidName(req.Session) {
			return errkind.New(errkind.Usage, "session name %q: use letters, digits, '.', '_' and '-'", req.Session)
		}
		if req.Clients < 1 || req.Clients > 256 {
			return errkind.New(errkind.Usage, "a multicast session has 1 to 256 clients (got %d)", req.Clients)
		}
		if req.Wait == 0 {
			req.Wait = 300
		}
		if req.Wait < 1 || req.Wait > 86400 {
			return errkind.New(errkind.Usage, "a multicast session waits 1 to 86400 seconds for its clients (got %d)", req.Wait)
		}
		work.Session, work.Clients, work.Wait = req.Session, req.Clients, req.Wait
	}
	if err := s.checkPrebootNames(work); err != nil {
		return err
	}
	if req.Device != "" {
		dev, err := s.db.ResolveDevice(req.Device)
		if err != nil {
			return err
		}
		work.Device = dev.ID
	}
	if err := s.db.Exec(actor, zone.CmdPrebootAssign, work); err != nil {
		return err
	}
	saved, err := s.db.PrebootWork(mac)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.prebootOut(saved))
	return nil
}

func (s *Server) clearPrebootWork(w http.ResponseWriter, r *http.Request, actor string) error {
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	if err := s.db.Exec(actor, zone.CmdPrebootClear, map[string]string{"mac": mac}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getPrebootWork answers a zone server's imaging service (authenticated by
// its server certificate) or an administrator.
func (s *Server) getPrebootWork(w http.ResponseWriter, r *http.Request) error {
	if !s.isZoneServer(r) {
		actor, err := s.auth.authenticate(r)
		if err != nil {
			return err
		}
		setActor(r, actor)
	}
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	work, err := s.db.PrebootWork(mac)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.prebootOut(work))
	return nil
}

// isZoneServer reports whether the client presented the certificate of
// one of the zone's servers (verified against the zone CA by the TLS
// layer; device certificates carry a random ID, never a server's name).
func (s *Server) isZoneServer(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	servers, err := s.db.Servers()
	if err != nil {
		return false
	}
	for _, sv := range servers {
		if sv.Name == leaf.Subject.CommonName {
			setActor(r, "server:"+sv.Name)
			return true
		}
	}
	return false
}
