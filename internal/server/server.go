// Package server is the zone server: the HTTPS API that zman, zac and peer
// servers talk to. It is the only code that opens the zone store for
// writing while a zone is running.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"zonekit/internal/background"
	"zonekit/internal/config"
	"zonekit/internal/metrics"
	"zonekit/internal/pki"
	"zonekit/internal/replica"
	"zonekit/internal/server/certificates"
	"zonekit/internal/server/cluster"
	"zonekit/internal/server/contentrepl"
	"zonekit/internal/server/spksecrets"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

// Options configure a zone server.
type Options struct {
	Paths  config.Paths
	Config config.Server
	DB     *zone.DB
	Logger *slog.Logger
	Now    func() time.Time // nil for the wall clock
	// Metrics is the server's metric set; nil makes one.
	Metrics *metrics.ZoneServer
}

// Server serves the zone API.
type Server struct {
	opts     Options
	db       *zone.DB
	log      *slog.Logger
	ca       atomic.Pointer[pki.CA] // nil unless this server holds the CertAuth role and its key
	devCA    *certificates.DeviceCA // the device CA, which issues under an external zone CA
	signer   *certificates.Signing  // signs device and joining servers' certificates, here or on the CertAuth server
	trust    atomic.Pointer[trustState]
	self     zone.Server
	zone     zone.Zone
	auth     *adminAuth
	now      func() time.Time
	handler  http.Handler
	apiMux   *http.ServeMux // the API's routes, which the OpenAPI test lists
	shutdown time.Duration
	pkg      *localContent        // package content: repository, ids being built
	content  *contentrepl.Content // content replication and scrub
	spk      *spksecrets.Keyring  // the SPK values keys
	rep      *replica.Node        // store replication; nil until SetReplica
	cluster  *cluster.Cluster     // this server's part in the replication cluster
	peers    peerClient
	peerAuth peerAuthCache
	metrics  *metrics.ZoneServer
	health   *metrics.Health

	changes  *certificates.Changes // certificate changes: their loop step and routes
	restored atomic.Bool           // set after a restore: answer nothing until restarted
	// ocsWork records OCS agents' contacts off the request path; Serve
	// closes it, and the content replication's, once requests are done.
	ocsWork *background.Group
}

// New loads this server's certificates and identity and builds its routes.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, db: opts.DB, log: opts.Logger, now: opts.Now, shutdown: opts.Config.ShutdownTimeout, metrics: opts.Metrics}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.shutdown == 0 {
		s.shutdown = 30 * time.Second
	}
	var err error
	if s.zone, err = s.db.Zone(); err != nil {
		return nil, fmt.Errorf("read zone: %w", err)
	}
	if s.self, err = s.db.Server(opts.Config.ServerID); err != nil {
		return nil, fmt.Errorf("this server (server.id %q in %s): %w", opts.Config.ServerID, opts.Paths.ConfigFile(), err)
	}
	s.changes = &certificates.Changes{Zone: s.db, TLS: tlsTrust{s}, CA: &s.ca, Self: s.self, Paths: opts.Paths, Now: s.now, Log: s.log}
	// A change that activated while this server was down is finished
	// first, so that it starts with the certificates the zone expects.
	if err := s.changes.FinishActivation(); err != nil {
		s.log.Error("finishing a certificate change", "err", err)
	}
	if err := s.loadTrust(); err != nil {
		return nil, err
	}
	if s.self.HasRole(zone.RoleCertAuth) {
		ca, err := pki.LoadCA(opts.Paths.CACert(), opts.Paths.CAKey())
		if err != nil {
			return nil, fmt.Errorf("this server holds the CertAuth role but its CA is unusable: %w", err)
		}
		s.ca.Store(ca)
	}
	if s.pkg, err = s.openContent(); err != nil {
		return nil, err
	}
	s.pkg.repo.CPKTrust = s.cpkTrust
	s.content = contentrepl.New(&contentrepl.Content{Zone: s.db, Repo: s.pkg.repo, Peers: serverPeers{s}, Self: s.self,
		ContentPort: opts.Config.ContentPort, ScrubInterval: opts.Config.ScrubInterval, Paths: opts.Paths,
		Building: s.pkg.isBuilding, PackSets: s.packSets, Log: s.log, Now: s.now})
	s.ocsWork = background.New(maxOCSContacts)
	s.spk = &spksecrets.Keyring{Dir: filepath.Join(opts.Paths.Security(), "spk-values"), Zone: s.db, Peers: serverPeers{s}, Self: s.self, Log: s.log}
	s.devCA = &certificates.DeviceCA{Zone: s.db, TLS: tlsTrust{s}, CA: &s.ca, Sealer: s.spk, Self: s.self, Now: s.now, Log: s.log}
	s.signer = &certificates.Signing{Zone: s.db, TLS: tlsTrust{s}, CA: &s.ca, DeviceCA: s.devCA, Peers: clusterPeers{s},
		Self: s.self, ZoneName: s.zone.Name, Now: s.now, Log: s.log}
	s.cluster = s.newCluster()
	s.auth = newAdminAuth(s.db, s.now)
	s.setupMetrics()
	s.handler = s.routes()
	return s, nil
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// ZoneID is the id of the zone this server belongs to.
func (s *Server) ZoneID() string { return s.zone.ID }

// Serve answers on ln until ctx is cancelled, then lets in-flight requests
// finish (up to the shutdown timeout) before returning. Once it answers it
// calls listening, if not nil: there the daemon starts the server's
// background loops (Loops), which it owns and stops after Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, listening func()) error {
	if s.rep == nil {
		if err := s.db.ServerStarted(s.self.ID, version.String(), ""); err != nil {
			return fmt.Errorf("record server start: %w", err)
		}
	}
	hs := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(ln, hs.TLSConfig)) }()
	if listening != nil {
		listening()
	}
	s.log.Info("zone server started", "zone", s.zone.Name, "server", s.self.Name, "addr", ln.Addr().String(), "version", version.String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("zone server stopping", "timeout", s.shutdown.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// What requests started in the background is cancelled and waited
	// for before the daemon closes the store under it.
	for _, g := range []*background.Group{s.ocsWork, s.content.Background} {
		if err := g.Close(sctx); err != nil {
			s.log.Warn("background work still running at shutdown", "err", err)
		}
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("zone server stopped")
	return nil
}
