package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/metrics"
	"zonekit/internal/replica"
	"zonekit/internal/server/backuprestore"
	"zonekit/internal/server/certificates"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/server/prebootwork"
	"zonekit/internal/server/satellites"
	"zonekit/internal/server/spkvalues"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.apiMux = mux
	mux.HandleFunc("GET /api/version", s.getVersion)

	area := areaRoutes{s: s, mux: mux}
	area.Admin("POST "+api.Prefix+"/sessions", s.createToken)
	area.Admin("DELETE "+api.Prefix+"/sessions/current", s.deleteToken)
	area.Admin("GET "+api.Prefix+"/zone", s.getZone)
	area.Admin("GET "+api.Prefix+"/servers", s.listServers)
	area.Admin("GET "+api.Prefix+"/admins", s.listAdmins)
	area.Admin("POST "+api.Prefix+"/admins", s.createAdmin)
	area.Admin("DELETE "+api.Prefix+"/admins/{name}", s.deleteAdmin)
	area.Admin("GET "+api.Prefix+"/devices", s.listDevices)
	area.Admin("DELETE "+api.Prefix+"/devices/{ref}", s.deleteDevice)
	area.Admin("GET "+api.Prefix+"/devices/{ref}/inventory", s.getInventory)
	area.Admin("GET "+api.Prefix+"/groups", s.listGroups)
	area.Admin("POST "+api.Prefix+"/groups", s.createGroup)
	area.Admin("POST "+api.Prefix+"/groups/{name}/devices", s.addGroupDevices)
	area.Admin("GET "+api.Prefix+"/registration-keys", s.listRegKeys)
	area.Admin("POST "+api.Prefix+"/registration-keys", s.createRegKey)
	area.Admin("DELETE "+api.Prefix+"/registration-keys/{key}", s.deleteRegKey)

	// Registration proves nothing but knowledge of the zone CA (and the key,
	// when one is required); everything after it needs the device certificate.
	mux.HandleFunc("POST "+api.Prefix+"/registrations", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return metrics.Count(s.metrics.Registrations, s.register(w, r))
	}))
	// OCS Inventory NG agents (docs/ocs.md): their own protocol, no API access.
	mux.HandleFunc("/ocsinventory", s.ocsHandler(true))
	area.Device("GET "+api.Prefix+"/device/zone", s.deviceZone)
	area.Device("POST "+api.Prefix+"/device/refresh", func(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
		return metrics.Count(s.metrics.Refreshes, s.deviceRefresh(w, r, dev))
	})
	area.Device("DELETE "+api.Prefix+"/device", s.deviceUnregister)
	(&certificates.Handlers{Zone: s.db, Signer: s.signer, Trust: tlsTrust{s}, CA: &s.ca, Self: s.self, Paths: s.opts.Paths,
		ZoneName: s.zone.Name, Now: s.now, Log: s.log}).Register(area)
	s.changes.Register(area)
	s.devCA.Register(area)
	s.signer.Register(area)
	(&satellites.Handlers{Zone: s.db, Issuer: caIssuer{s}, Now: s.now}).Register(area)
	s.spk.Register(area)
	(&spkvalues.Handlers{Zone: s.db, Sealer: s.spk}).Register(area)
	(&prebootwork.Handlers{Zone: s.db, Home: s.opts.Paths.Home}).Register(area)
	s.packageHandlers().Register(area)
	s.content.Register(area)
	(&backuprestore.Handlers{Paths: s.opts.Paths, Zone: s.db, ZoneRecord: s.zone, Self: s.self,
		CertAuth: func() bool { return s.ca.Load() != nil }, Replica: s.replication, Restored: func() { s.restored.Store(true) },
		Backups: s.metrics.Backups, Restores: s.metrics.Restores, Now: s.now, Log: s.log}).Register(area)
	mux.HandleFunc("GET "+api.ContentPrefix+"/{id}/{file}", s.serveContent(false))
	s.setupRoutes(mux)
	s.cluster.Register(area)
	// The web console (docs/console.md): its own sign-in, then the API's
	// routes in process as the signed-in administrator.
	s.consoleHandlers(mux).Register(area)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, errkind.New(errkind.NotFound, "no such API route: %s %s", r.Method, r.URL.Path))
	})
	logged := s.logRequests(s.metrics.HTTP.Handler("api", mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case replica.UpgradePath:
			s.serveRaft(w, r)
		// Load balancers' and systemd's probes, without authentication
		// and out of the access log (docs/metrics.md).
		case "/healthz":
			s.health.Healthz(w, r)
		case "/readyz":
			s.health.Readyz(w, r)
		default:
			logged.ServeHTTP(w, r)
		}
	})
}

func (s *Server) wrap(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	v := api.Version{APIVersions: []string{"v1"}, Server: version.String(), Zone: s.zone.Name}
	if servers, err := s.db.Servers(); err == nil {
		for _, sv := range servers {
			v.Servers = append(v.Servers, "https://"+net.JoinHostPort(sv.Name, strconv.Itoa(sv.Port)))
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// statusOf maps error kinds to HTTP status codes and wire codes.
func statusOf(err error) (int, string) {
	switch errkind.Of(err) {
	case errkind.Auth:
		return http.StatusUnauthorized, "auth"
	case errkind.NotFound:
		return http.StatusNotFound, "not_found"
	case errkind.Exists:
		return http.StatusConflict, "exists"
	case errkind.Usage:
		return http.StatusBadRequest, "usage"
	case errkind.Refused:
		return http.StatusConflict, "refused"
	case errkind.Unavailable:
		return http.StatusServiceUnavailable, "unavailable"
	case errkind.Invalid:
		return http.StatusUnprocessableEntity, "invalid"
	}
	return http.StatusInternalServerError, "failure"
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := statusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, api.Error{Error: api.ErrorBody{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }

func readJSON(w http.ResponseWriter, r *http.Request, v any) error { return httpapi.ReadJSON(w, r, v) }

type statusRecorder struct {
	http.ResponseWriter
	status int
	actor  string
}

func (rec *statusRecorder) WriteHeader(code int) {
	rec.status = code
	rec.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer (a
// handler that flushes its answer before it has returned).
func (rec *statusRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

type actorKey struct{}

// setActor lets the access log name who made the request.
func setActor(r *http.Request, actor string) {
	if rec, ok := r.Context().Value(actorKey{}).(*statusRecorder); ok {
		rec.actor = actor
	}
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(context.WithValue(r.Context(), actorKey{}, rec))
		if s.restored.Load() && r.URL.Path != "/api/version" {
			s.fail(rec, r, errkind.New(errkind.Unavailable, "this zone server was restored from a backup and must be restarted: %s", backuprestore.RestartCommand))
			return
		}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if rec.status == http.StatusOK {
					writeJSON(rec, http.StatusInternalServerError, api.Error{Error: api.ErrorBody{Code: "failure", Message: "internal error"}})
				}
			}
			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr, "actor", rec.actor)
		}()
		next.ServeHTTP(rec, r)
	})
}
