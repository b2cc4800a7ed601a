// Package ocsendpoint answers OCS Inventory NG agents at /ocsinventory
// (docs/ocs.md): existing OCS agents take part in the zone as devices of
// kind "ocs": they send a PROLOG, get the packages assigned to them,
// report results, and send inventories. It is a world apart from the
// API: nothing it accepts is an administrator or a zonekit device, and it
// answers only the OCS queries.
package ocsendpoint

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"zonekit/internal/background"
	"zonekit/internal/config"
	"zonekit/internal/ocs"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// Zone is what the endpoint needs of the zone's state (*zone.DB).
type Zone interface {
	Now() time.Time
	Device(id string) (zone.Device, error)
	OCSContact(dev zone.Device) error
	SetInventory(id string, inv zone.Inventory) error
	Inventory(id string) (*zone.Inventory, error)
	DownloadConfig() (zone.DownloadConfig, error)
	DevicePackages(dev string) ([]zone.Deployment, []zone.Package, error)
	ExecBatch(actor, name string, data any) error
}

// Options are the endpoint's configuration and dependencies.
type Options struct {
	Config config.OCS
	Zone   Zone
	Log    *slog.Logger
	Now    func() time.Time // the clock deciding when an inventory is due
	// OverTLS is whether the listener is the HTTPS one: client
	// certificates can only be required there.
	OverTLS bool
	// Background records known agents' contacts off the request path,
	// a bounded number at once, stopped and waited for at shutdown; nil:
	// in the request.
	Background *background.Group
}

type endpoint struct {
	cfg      config.OCS
	zone     Zone
	log      *slog.Logger
	now      func() time.Time
	once     sync.Once
	password string
	pwErr    error
	bg       *background.Group
}

// Handler answers OCS agents; refusals are logged and answered with a
// plain-text reason.
func Handler(o Options) http.HandlerFunc {
	e := &endpoint{cfg: o.Config, zone: o.Zone, log: o.Log, now: o.Now, bg: o.Background}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	return func(w http.ResponseWriter, r *http.Request) {
		status, msg := e.serve(w, r, o.OverTLS)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="zonekit OCS"`)
			}
			http.Error(w, msg, status)
			e.log.Warn("OCS request refused", "remote", r.RemoteAddr, "status", status, "reason", msg)
		}
	}
}

// serve answers one request; a non-zero status is a refusal.
func (e *endpoint) serve(w http.ResponseWriter, r *http.Request, overTLS bool) (int, string) {
	cfg := e.cfg
	if !cfg.Enabled {
		return http.StatusNotFound, "the OCS endpoint is switched off (ocs.enabled=false)"
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "OCS agents POST their requests"
	}
	if len(cfg.Networks) > 0 {
		ip := net.ParseIP(httpapi.ClientIP(r))
		allowed := false
		for _, n := range cfg.Networks {
			if ip != nil && n.Contains(ip) {
				allowed = true
			}
		}
		if !allowed {
			return http.StatusForbidden, "this network may not use the OCS endpoint (ocs.networks)"
		}
	}
	if cfg.RequireClientCert {
		if !overTLS {
			return http.StatusForbidden, "the OCS endpoint needs HTTPS with a client certificate here (ocs.require-client-cert)"
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return http.StatusForbidden, "a client certificate from the zone CA is required (ocs.require-client-cert)"
		}
	}
	if cfg.User != "" {
		e.once.Do(func() {
			data, err := os.ReadFile(cfg.PasswordFile)
			e.password, e.pwErr = strings.TrimRight(string(data), "\r\n"), err
		})
		if e.pwErr != nil {
			e.log.Error("OCS password file unreadable", "file", cfg.PasswordFile, "err", e.pwErr)
			return http.StatusInternalServerError, "the OCS endpoint is misconfigured"
		}
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(cfg.User)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(e.password)) != 1 {
			return http.StatusUnauthorized, "OCS agent credentials required"
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, ocs.MaxCompressed+1)
	body, err := ocs.ReadBody(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, ocs.ErrTooLarge) || errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, "request too large"
		}
		return http.StatusBadRequest, err.Error()
	}
	req, err := ocs.ParseRequest(body)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	switch req.Kind() {
	case "PROLOG":
		reply, err := e.prolog(r, req)
		if err != nil {
			e.log.Error("OCS prolog", "agent", req.ID(), "err", err)
			return http.StatusInternalServerError, "internal error"
		}
		writeCompressed(w, reply)
	case "INVENTORY":
		if err := e.inventory(r, req); err != nil {
			e.log.Error("OCS inventory", "agent", req.ID(), "err", err)
			return http.StatusInternalServerError, "internal error"
		}
		writeCompressed(w, ocs.NoAccountUpdate())
	case "DOWNLOAD":
		if code, msg := e.result(req); code != 0 {
			return code, msg
		}
		w.WriteHeader(http.StatusOK)
	default:
		return http.StatusBadRequest, "unsupported OCS query " + strconv.Quote(req.Kind())
	}
	return 0, ""
}

func writeCompressed(w http.ResponseWriter, reply []byte) {
	w.Header().Set("Content-Type", "application/x-compress")
	w.Write(ocs.Compress(reply))
}

// device returns the zone's device for an agent, creating it on first
// contact; later contacts are recorded without holding up the answer, in
// the background group. When that is full (a burst of agents) or shut
// down, the contact goes unrecorded: the agent's next one records it.
func (e *endpoint) device(r *http.Request, agentID string) (zone.Device, error) {
	id := zone.OCSDeviceID(agentID)
	now := e.zone.Now()
	dev, err := e.zone.Device(id)
	if err == nil {
		dev.LastContact, dev.Address = now, httpapi.ClientIP(r)
		record := func(context.Context) {
			if err := e.zone.OCSContact(dev); err != nil {
				e.log.Error("OCS contact", "device", id, "err", err)
			}
		}
		if e.bg == nil {
			record(r.Context())
		} else if !e.bg.Go(record) {
			e.log.Warn("OCS contact not recorded: too many being recorded, or shutting down", "device", id)
		}
		return dev, nil
	}
	dev = zone.Device{ID: id, Name: ocs.HostName(agentID), Kind: zone.KindOCS, Registered: now, LastContact: now, Address: httpapi.ClientIP(r)}
	if err := e.zone.OCSContact(dev); err != nil {
		return zone.Device{}, err
	}
	e.log.Info("OCS agent joined the zone", "agent", agentID, "device", id, "remote", r.RemoteAddr)
	return dev, nil
}

func (e *endpoint) prolog(r *http.Request, req *ocs.Request) ([]byte, error) {
	dev, err := e.device(r, req.ID())
	if err != nil {
		return nil, err
	}
	cfg, err := e.zone.DownloadConfig()
	if err != nil {
		return nil, err
	}
	deps, pkgs, err := e.zone.DevicePackages(dev.ID)
	if err != nil {
		return nil, err
	}
	offers, notify := zone.Offers(cfg, deps, pkgs)
	packs := make([]ocs.Pack, len(offers))
	for i, o := range offers {
		a := o.Package.Activation
		packs[i] = ocs.Pack{ID: o.Package.ID, InfoLoc: a.InfoLocation, PackLoc: a.PackLocation}
	}
	if len(notify) > 0 {
		if err := e.zone.ExecBatch("ocs:"+dev.ID, zone.CmdPackageNotify, zone.PackageNotify{Device: dev.ID, Packages: notify, Time: e.zone.Now()}); err != nil {
			return nil, err
		}
	}
	send := true
	if inv, err := e.zone.Inventory(dev.ID); err == nil && inv != nil {
		send = e.now().Sub(inv.Time) > time.Duration(e.cfg.InventoryEvery)*time.Hour
	}
	conf := ocs.DownloadConf{On: cfg.Enabled, FragLatency: cfg.FragLatency, CycleLatency: cfg.CycleLatency, PeriodLatency: cfg.PeriodLatency,
		PeriodLength: cfg.PeriodLength, Timeout: cfg.Timeout, ExecutionTimeout: cfg.ExecutionTimeout}
	return ocs.PrologReply(conf, packs, send, e.cfg.PrologFreq), nil
}

func (e *endpoint) inventory(r *http.Request, req *ocs.Request) error {
	dev, err := e.device(r, req.ID())
	if err != nil {
		return err
	}
	if req.Content == nil {
		return nil
	}
	h := req.Content.Hardware
	inv := zone.Inventory{Time: e.zone.Now(), AgentID: req.ID(), Hostname: clean(h.Name), OS: clean(h.OSName),
		OSVersion: clean(h.OSVersion), CPU: clean(h.ProcessorT), IP: clean(h.IPAddr)}
	inv.CPUs, _ = strconv.Atoi(strings.TrimSpace(h.ProcessorN))
	inv.MemoryMB, _ = strconv.Atoi(strings.TrimSpace(h.Memory))
	for _, n := range req.Content.Networks {
		if m := clean(n.MACAddr); m != "" && len(inv.MACs) < 64 {
			inv.MACs = append(inv.MACs, m)
		}
	}
	for _, sw := range req.Content.Softwares {
		if len(inv.Software) >= zone.MaxInventorySoftware {
			break
		}
		if n := clean(sw.Name); n != "" {
			inv.Software = append(inv.Software, zone.InventorySoftware{Name: n, Version: clean(sw.Version)})
		}
	}
	if err := e.zone.SetInventory(dev.ID, inv); err != nil {
		return err
	}
	e.log.Info("OCS inventory", "device", dev.ID, "host", inv.Hostname, "software", len(inv.Software))
	return nil
}

// clean keeps reported text printable and bounded: it is shown to
// administrators.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, strings.TrimSpace(s))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func (e *endpoint) result(req *ocs.Request) (int, string) {
	id := zone.OCSDeviceID(req.ID())
	if _, err := e.zone.Device(id); err != nil {
		return http.StatusForbidden, "unknown OCS agent: send a PROLOG first"
	}
	st := zone.CanonicalStatus(req.Err)
	err := e.zone.ExecBatch("ocs:"+id, zone.CmdPackageStatus, zone.PackageStatus{Device: id, Package: strings.TrimSpace(req.PackageID), Status: st, Time: e.zone.Now()})
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	e.log.Info("OCS result", "device", id, "package", req.PackageID, "status", st)
	return 0, ""
}
