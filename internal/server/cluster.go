package server

// The core's side of the replication cluster (the cluster itself is
// internal/server/cluster): the peer link (this server's certificate
// both ways, peer routes, calls to other servers), the raft link, and
// certificates signed for peers and devices by the CertAuth server.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/replica"
	"zonekit/internal/server/cluster"
	"zonekit/internal/server/satellites"
	"zonekit/internal/zone"
)

// SetReplica makes this server a member of the zone's replication cluster:
// every command goes through it from now on. Call before Serve.
func (s *Server) SetReplica(n *replica.Node) {
	s.rep = n
	s.db.SetProposer(n)
	s.metrics.Registry.MustRegister(s.replicationMetrics())
	s.cluster.SetReplica(n)
}

// newCluster is this server's part in the replication cluster
// (internal/server/cluster) over its store, peer link and CA.
func (s *Server) newCluster() *cluster.Cluster {
	return &cluster.Cluster{Zone: s.db, Peers: clusterPeers{s}, Signer: s.signer,
		SatellitesOf: func(sv zone.Server) []string { return satellites.Of(s.db, sv) },
		Self:         s.self, ZoneName: s.zone.Name, Config: s.opts.Config, Paths: s.opts.Paths, Log: s.log}
}

// Advertise is host:port where peers reach this server.
func (s *Server) Advertise() string { return s.cluster.Advertise() }

// MayBootstrap says whether this server, should it have no replication
// state, may start a cluster of its own (cluster.Cluster.MayBootstrap).
func (s *Server) MayBootstrap() bool { return s.cluster.MayBootstrap() }

// Bootstrapped is called once replication started: a one-shot order to
// start a new cluster has been carried out.
func (s *Server) Bootstrapped() { s.cluster.Bootstrapped() }

// FetchStore reads a consistent copy of the zone store from the zone
// server at addr, over the peer link.
func (s *Server) FetchStore(ctx context.Context, addr string) (io.ReadCloser, error) {
	return s.cluster.FetchStore(ctx, addr)
}

// Forward is the replica's route to the leader for commands proposed here.
func (s *Server) Forward(ctx context.Context, leader string, c zone.Command, token []byte) (replica.Entry, error) {
	return s.cluster.Forward(ctx, leader, c, token)
}

// clusterPeers is the cluster's link to the other servers.
type clusterPeers struct{ s *Server }

func (p clusterPeers) Call(ctx context.Context, addr, method, path string, in, out any) error {
	return p.s.peerCall(ctx, addr, method, path, in, out)
}

func (p clusterPeers) CallRetry(ctx context.Context, addr, method, path string, in, out any) error {
	return p.s.peerCallRetry(ctx, addr, method, path, in, out, true)
}

func (p clusterPeers) Stream() *http.Client { return p.s.peerHTTPStream() }

// PeerTLSConfig is the client side of links to other zone servers: this
// server's current certificate, and a peer accepted when its certificate
// is a server certificate from the zone CA. Names are not checked: peers
// are reached at addresses (cluster.advertise) that need not be in their
// certificates, and any server of the zone may speak for the zone.
func (s *Server) PeerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := s.trust.Load().cert
			return &c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("peer sent no certificate")
			}
			_, err := s.verifyServerCert(cs.PeerCertificates[0], cs.PeerCertificates[1:])
			return err
		},
	}
}

// verifyServerCert accepts a zone server certificate: issued by the zone
// CA (or one whose device certificates are still accepted) for server use.
func (s *Server) verifyServerCert(leaf *x509.Certificate, inter []*x509.Certificate) ([][]*x509.Certificate, error) {
	st := s.trust.Load()
	pool := x509.NewCertPool()
	for _, c := range inter {
		pool.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: st.config.ClientCAs, Intermediates: pool, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, fmt.Errorf("peer certificate %q is not a server certificate of this zone: %w", leaf.Subject.CommonName, err)
	}
	// The device CA signs devices' and satellites' certificates, never a
	// zone server's.
	for _, c := range chains {
		if !s.devCA.Issued(c) {
			return chains, nil
		}
	}
	return nil, fmt.Errorf("peer certificate %q is from the zone's device CA, not a server certificate of this zone", leaf.Subject.CommonName)
}

// peerFromTLS returns the zone server that presented the request's client
// certificate, or an Auth error: peer routes are for the zone's servers only.
// The answer is kept for the connection (peerAuth) while the trust state,
// the server list and the certificates' validity stay the same.
func (s *Server) peerFromTLS(r *http.Request) (zone.Server, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return zone.Server{}, errkind.New(errkind.Auth, "peer routes need the certificate of a server of this zone")
	}
	leaf := r.TLS.PeerCertificates[0]
	st := s.trust.Load()
	version, err := s.db.ServersVersion()
	if err != nil {
		return zone.Server{}, err
	}
	now := s.now()
	if sv, ok := s.peerAuth.get(leaf, st, version, now); ok {
		return sv, nil
	}
	chains, err := s.verifyServerCert(leaf, r.TLS.PeerCertificates[1:])
	if err != nil {
		return zone.Server{}, errkind.Wrap(errkind.Auth, err)
	}
	servers, err := s.db.Servers()
	if err != nil {
		return zone.Server{}, err
	}
	for _, sv := range servers {
		// By name, or by the certificate the zone recorded for it (a
		// server whose name changed with a remint).
		if sv.Name == leaf.Subject.CommonName || sameCert(sv.CertPEM, leaf) {
			s.peerAuth.put(leaf, peerAuthEntry{trust: st, servers: version, valid: validity(chains), server: sv})
			return sv, nil
		}
	}
	return zone.Server{}, errkind.New(errkind.Auth, "%q is not a server of zone %s", leaf.Subject.CommonName, s.zone.Name)
}

// peerAuthCache keeps which zone server each peer connection's certificate
// is, so that a forwarded write does not verify the chain and read the
// server list again (about 0.3 ms). An entry holds only for the trust
// state and the server list (by its ServersVersion) it was found with, and
// within the validity of the chain it was verified by: a removed server,
// a replaced CA or an expired certificate is refused at its next request.
type peerAuthCache struct {
	mu sync.Mutex
	// By the connection's leaf certificate, the same pointer for every
	// request of one TLS connection.
	m map[*x509.Certificate]peerAuthEntry
}

// maxPeerAuth bounds the cache: it starts again empty when more
// connections than that were seen (peers reconnect rarely).
const maxPeerAuth = 256

type peerAuthEntry struct {
	trust   *trustState
	servers uint64
	valid   [2]time.Time // notBefore, notAfter: the chain's common validity
	server  zone.Server
}

func (c *peerAuthCache) get(leaf *x509.Certificate, st *trustState, version uint64, now time.Time) (zone.Server, bool) {
	c.mu.Lock()
	e, ok := c.m[leaf]
	c.mu.Unlock()
	if !ok || e.trust != st || e.servers != version || now.Before(e.valid[0]) || now.After(e.valid[1]) {
		return zone.Server{}, false
	}
	return e.server, true
}

func (c *peerAuthCache) put(leaf *x509.Certificate, e peerAuthEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxPeerAuth {
		c.m = make(map[*x509.Certificate]peerAuthEntry)
	}
	c.m[leaf] = e
}

// validity is the time span within which every certificate of chains is
// valid (narrower than needed when there are several chains, never wider).
func validity(chains [][]*x509.Certificate) [2]time.Time {
	var v [2]time.Time
	first := true
	for _, chain := range chains {
		for _, c := range chain {
			if first || c.NotBefore.After(v[0]) {
				v[0] = c.NotBefore
			}
			if first || c.NotAfter.Before(v[1]) {
				v[1] = c.NotAfter
			}
			first = false
		}
	}
	return v
}

type peerHandler func(w http.ResponseWriter, r *http.Request, peer zone.Server) error

func (s *Server) peer(h peerHandler) http.HandlerFunc {
	return s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.peerFromTLS(r)
		if err != nil {
			return err
		}
		setActor(r, "server:"+p.Name)
		return h(w, r, p)
	})
}

// serveRaft hands a peer's upgraded connection to raft. It runs outside
// the access log's wrapper, which cannot be hijacked.
func (s *Server) serveRaft(w http.ResponseWriter, r *http.Request) {
	if s.rep == nil {
		s.fail(w, r, errkind.New(errkind.Unavailable, "server %s does not replicate", s.self.Name))
		return
	}
	p, err := s.peerFromTLS(r)
	if err != nil && s.rep.LogEmpty() && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		// A server with no log of its own (restored from a backup, or
		// that lost its log) may hold a store older than the zone's
		// servers: it takes the stream of any server certificate of the
		// zone CA, whose zone and incarnation the replica then checks.
		if _, verr := s.verifyServerCert(r.TLS.PeerCertificates[0], r.TLS.PeerCertificates[1:]); verr == nil {
			p, err = zone.Server{Name: r.TLS.PeerCertificates[0].Subject.CommonName}, nil
			s.log.Info("replication link from a server this store does not list yet (it has no log of its own)", "peer", p.Name, "remote", r.RemoteAddr)
		}
	}
	if err != nil {
		s.log.Warn("replication link refused", "remote", r.RemoteAddr, "err", err)
		s.fail(w, r, err)
		return
	}
	s.log.Debug("replication link", "peer", p.Name, "remote", r.RemoteAddr)
	s.rep.ServeUpgrade(w, r)
}

// peerClient talks to other zone servers with this server's certificate.
type peerClient struct {
	once sync.Once
	http *http.Client
}

// peerHTTPStream is peerHTTP without an overall timeout, for store copies.
func (s *Server) peerHTTPStream() *http.Client {
	c := *s.peerHTTP()
	c.Timeout = 0
	return &c
}

func (s *Server) peerHTTP() *http.Client {
	s.peers.once.Do(func() {
		tr := &http.Transport{
			TLSClientConfig:     s.PeerTLSConfig(),
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 16,
			// Below the peers' own idle timeout (2 minutes): a quiet
			// connection is dropped here first, never closed by the peer
			// just as a forwarded write goes out on it.
			IdleConnTimeout: 90 * time.Second,
			Proxy:           nil,
		}
		s.peers.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	})
	return s.peers.http
}

// peerCall sends a JSON request to the zone server at addr (host:port).
// Errors that prove the request never left are wrapped in
// replica.ErrNotDelivered; the peer's answer keeps its error kind.
func (s *Server) peerCall(ctx context.Context, addr, method, path string, in, out any) error {
	return s.peerCallRetry(ctx, addr, method, path, in, out, false)
}

// peerCallRetry is peerCall for requests that are safe to send again
// (retryable): any failure to get an answer is then ErrNotDelivered.
func (s *Server) peerCallRetry(ctx context.Context, addr, method, path string, in, out any, retryable bool) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+api.Prefix+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.rep != nil {
		// Peers tell the zone and cluster incarnation they speak for.
		req.Header.Set(replica.HeaderZone, s.zone.ID)
		req.Header.Set(replica.HeaderIncarnation, s.rep.Incarnation().String())
	}
	wrote := false
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote = true }}))
	resp, err := s.peerHTTP().Do(req)
	if err != nil {
		if !wrote || retryable {
			return fmt.Errorf("%w: %s: %v", replica.ErrNotDelivered, addr, err)
		}
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("zone server %s: %w", addr, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("zone server %s: %w", addr, err))
	}
	if resp.StatusCode == http.StatusMisdirectedRequest {
		return fmt.Errorf("%w: %s is no longer the leader", replica.ErrNotDelivered, addr)
	}
	if resp.StatusCode >= 300 {
		return client.AnswerError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("malformed answer from zone server %s: %w", addr, err)
		}
	}
	return nil
}

func sameCert(recordPEM string, leaf *x509.Certificate) bool {
	c, err := pki.ParseCertPEM([]byte(recordPEM))
	return err == nil && c.Equal(leaf)
}

// peerAddr is where peers reach sv (host:port).
func peerAddr(sv zone.Server) string { return sv.PeerAddress() }
