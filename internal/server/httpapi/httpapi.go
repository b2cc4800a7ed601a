// Package httpapi is what the zone server's core gives the areas that
// serve parts of its API (internal/server/<area>): the way to mount their
// routes behind the core's authentication, and the JSON conventions of
// the API. It holds no state.
package httpapi

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"

	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

// MaxBody bounds a JSON request body.
const MaxBody = 1 << 20

// Handler serves one request for actor (an administrator's name, or ""
// for a zone server); its error is answered as the API's errors are
// (an errkind kind becomes an HTTP status and wire code).
type Handler func(w http.ResponseWriter, r *http.Request, actor string) error

// Routes mounts an area's handlers on the server's API mux.
type Routes interface {
	// Admin mounts h for authenticated administrators, with the headers
	// every administrator answer carries.
	Admin(pattern string, h Handler)
	// ServerOrAdmin mounts h for the zone's servers (by their server
	// certificate; actor "") and for administrators.
	ServerOrAdmin(pattern string, h Handler)
	// Open mounts h without authentication (actor ""): h checks what
	// it needs, with ZoneServer for instance.
	Open(pattern string, h Handler)
	// Device mounts h for enrolled devices, authenticated by their
	// device certificate (actor "device:ID").
	Device(pattern string, h func(w http.ResponseWriter, r *http.Request, dev zone.Device) error)
	// Peer mounts h for the zone's other servers, authenticated by
	// their server certificate (actor "server:NAME").
	Peer(pattern string, h func(w http.ResponseWriter, r *http.Request, peer zone.Server) error)
	// ZoneServer reports whether r carries the certificate of one of
	// the zone's servers, verified against the zone CA, and if so
	// records "server:NAME" as the request's actor in the access log.
	ZoneServer(r *http.Request) bool
}

// WriteJSON answers v as JSON with status; API answers are never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// ReadJSON decodes a request body of at most MaxBody bytes into v; a bad
// body is a usage error.
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errkind.New(errkind.Usage, "request body larger than %d bytes", MaxBody)
		}
		return errkind.New(errkind.Usage, "malformed JSON request: %v", err)
	}
	return nil
}

// ClientIP is the client's address without its port.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
