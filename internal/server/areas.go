package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/pki"
	"zonekit/internal/server/backuprestore"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// areaRoutes is how the core and the areas under internal/server mount
// their routes (httpapi.Routes) behind this server's authentication.
type areaRoutes struct {
	s   *Server
	mux *http.ServeMux
}

// Admin authenticates an administrator and adds the headers every
// administrator answer carries: certificates near expiry, a stale store.
func (a areaRoutes) Admin(pattern string, h httpapi.Handler) {
	s := a.s
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		actor, err := s.adminOf(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		setActor(r, actor)
		for _, e := range s.certExpiry() {
			w.Header().Add(api.HeaderCertExpiry, e)
		}
		if st := s.cluster.StaleSince(); st != "" {
			w.Header().Set(api.HeaderStale, st)
		}
		if err := h(w, r, actor); err != nil {
			s.fail(w, r, err)
		}
	})
}

func (a areaRoutes) ServerOrAdmin(pattern string, h httpapi.Handler) {
	a.mux.HandleFunc(pattern, a.s.wrap(a.s.serverOrAdmin(h)))
}

func (a areaRoutes) Open(pattern string, h httpapi.Handler) {
	a.mux.HandleFunc(pattern, a.s.wrap(func(w http.ResponseWriter, r *http.Request) error { return h(w, r, "") }))
}

// Device authenticates an enrolled device by its device certificate.
func (a areaRoutes) Device(pattern string, h func(http.ResponseWriter, *http.Request, zone.Device) error) {
	s := a.s
	a.mux.HandleFunc(pattern, s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		dev, err := s.deviceFromTLS(r)
		if err != nil {
			return err
		}
		setActor(r, "device:"+dev.ID)
		return h(w, r, dev)
	}))
}

func (a areaRoutes) Peer(pattern string, h func(http.ResponseWriter, *http.Request, zone.Server) error) {
	a.mux.HandleFunc(pattern, a.s.peer(h))
}

func (a areaRoutes) ZoneServer(r *http.Request) bool { return a.s.isZoneServer(r) }

// caIssuer is the CA that signs the satellites' certificates here: the
// zone CA where this server holds it, or under an external zone CA the
// device CA, on any server (certificates.DeviceCA).
type caIssuer struct{ s *Server }

func (c caIssuer) Held() error {
	_, err := c.s.devCA.LocalIssuer(context.Background(), "a satellite certificate")
	return err
}

func (c caIssuer) IssueServer(req pki.ServerRequest, now time.Time) (*x509.Certificate, error) {
	ca, err := c.s.devCA.LocalIssuer(context.Background(), "a satellite certificate")
	if err != nil {
		return nil, err
	}
	return ca.IssueServer(req, now)
}

func (c caIssuer) Chain() []*x509.Certificate { return []*x509.Certificate{c.s.devCA.Issuer()} }

// replication is this server's store replication for the areas, nil when
// it has none.
func (s *Server) replication() backuprestore.Replica {
	if s.rep == nil {
		return nil
	}
	return s.rep
}

// serverPeers is how areas reach this server's peers (cluster.go).
type serverPeers struct{ s *Server }

func (p serverPeers) TLSConfig() *tls.Config { return p.s.PeerTLSConfig() }

func (p serverPeers) URL(peer zone.Server) string { return "https://" + peerAddr(peer) }

func (p serverPeers) Call(ctx context.Context, peer zone.Server, method, path string, in, out any) error {
	return p.s.peerCall(ctx, peerAddr(peer), method, path, in, out)
}
