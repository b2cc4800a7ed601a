// Package prebootwork serves the preboot work of machines
// (/api/v1/preboot/work): administrators assign, list and clear it; the
// imaging services of the zone's servers (their server certificate) read
// one machine's and report an imaging task's progress.
package prebootwork

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
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// Zone is what the routes need of the zone's state (*zone.DB).
type Zone interface {
	Exec(actor, name string, data any) error
	PrebootWork(mac string) (zone.PrebootWork, error)
	PrebootWorks() ([]zone.PrebootWork, error)
	Device(id string) (zone.Device, error)
	ResolveDevice(ref string) (zone.Device, error)
}

// Handlers serve the preboot work routes.
type Handlers struct {
	Zone Zone
	// Home is this server's zonekit home: assignments are checked
	// against the menus and images of the preboot services beside it.
	Home   string
	routes httpapi.Routes
}

// Register mounts the routes.
func (h *Handlers) Register(r httpapi.Routes) {
	h.routes = r
	r.ServerOrAdmin("GET "+api.Prefix+"/preboot/work", h.listPrebootWork)
	r.Admin("PUT "+api.Prefix+"/preboot/work/{mac}", h.assignPrebootWork)
	r.Admin("DELETE "+api.Prefix+"/preboot/work/{mac}", h.clearPrebootWork)
	r.ServerOrAdmin("GET "+api.Prefix+"/preboot/work/{mac}", h.getPrebootWork)
	r.Open("POST "+api.Prefix+"/preboot/work/{mac}/report", h.reportPrebootTask)
}

// reportPrebootTask records an imaging task's progress. Only the zone's
// imaging services report (their server certificate): a machine reports
// to its imaging service with its task token, which this server never
// sees.
func (h *Handlers) reportPrebootTask(w http.ResponseWriter, r *http.Request, _ string) error {
	if !h.routes.ZoneServer(r) {
		return errkind.New(errkind.Auth, "only the zone's servers report imaging tasks")
	}
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	var req api.PrebootReport
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Error) > 4096 {
		req.Error = req.Error[:4096]
	}
	actor := "server:" + r.TLS.VerifiedChains[0][0].Subject.CommonName
	if err := h.Zone.Exec(actor, zone.CmdPrebootReport, zone.PrebootReport{MAC: mac, Status: req.Status, Bytes: req.Bytes, Error: req.Error}); err != nil {
		return err
	}
	saved, err := h.Zone.PrebootWork(mac)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, h.prebootOut(saved))
	return nil
}

// checkPrebootNames refuses work that cannot run: a restore of an image
// this server's imaging service does not hold, a capture onto a name it
// already holds, or a menu the policy service does not have. The image
// directory and menus are this server's (pbserv runs beside the zone
// server); a zone whose imaging runs elsewhere assigns there.
func (h *Handlers) checkPrebootNames(work zone.PrebootWork) error {
	l := conf.Layout{Home: h.Home}
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

func (h *Handlers) prebootOut(w zone.PrebootWork) api.PrebootWork {
	out := api.PrebootWork{MAC: w.MAC, Action: w.Action, Image: w.Image, Menu: w.Menu, Device: w.Device, Assigned: w.Assigned, Actor: w.Actor,
		Session: w.Session, Clients: w.Clients, Wait: w.Wait,
		Status: w.State(), Started: w.Started, Finished: w.Finished, Bytes: w.Bytes, Error: w.Error}
	if w.Device != "" {
		if dev, err := h.Zone.Device(w.Device); err == nil {
			out.DeviceName = dev.Name
		}
	}
	return out
}

func (h *Handlers) listPrebootWork(w http.ResponseWriter, r *http.Request, _ string) error {
	works, err := h.Zone.PrebootWorks()
	if err != nil {
		return err
	}
	out := make([]api.PrebootWork, 0, len(works))
	for _, pw := range works {
		out = append(out, h.prebootOut(pw))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handlers) assignPrebootWork(w http.ResponseWriter, r *http.Request, actor string) error {
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	var req api.PrebootAssign
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
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
	if err := h.checkPrebootNames(work); err != nil {
		return err
	}
	if req.Device != "" {
		dev, err := h.Zone.ResolveDevice(req.Device)
		if err != nil {
			return err
		}
		work.Device = dev.ID
	}
	if err := h.Zone.Exec(actor, zone.CmdPrebootAssign, work); err != nil {
		return err
	}
	saved, err := h.Zone.PrebootWork(mac)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, h.prebootOut(saved))
	return nil
}

func (h *Handlers) clearPrebootWork(w http.ResponseWriter, r *http.Request, actor string) error {
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	if err := h.Zone.Exec(actor, zone.CmdPrebootClear, map[string]string{"mac": mac}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getPrebootWork answers a zone server's imaging service (authenticated by
// its server certificate) or an administrator.
func (h *Handlers) getPrebootWork(w http.ResponseWriter, r *http.Request, _ string) error {
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	work, err := h.Zone.PrebootWork(mac)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, h.prebootOut(work))
	return nil
}
