package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	neturl "net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/replica"
	"zonekit/internal/server/satellites"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

// maxCommand bounds a forwarded command (inventories are the largest).
const maxCommand = 32 << 20

// SetReplica makes this server a member of the zone's replication cluster:
// every command goes through it from now on. Call before Serve.
func (s *Server) SetReplica(n *replica.Node) {
	s.rep = n
	s.db.SetProposer(n)
	s.metrics.Registry.MustRegister(s.replicationMetrics())
}

// Advertise is host:port where peers reach this server.
func (s *Server) Advertise() string {
	if a := s.opts.Config.Cluster.Advertise; a != "" {
		return a
	}
	host := s.opts.Config.Address
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = s.self.Name
	}
	return net.JoinHostPort(host, strconv.Itoa(s.opts.Config.Port))
}

// MayBootstrap says whether this server, should it have no replication
// state, may start a cluster of its own. Only when told so (the one-shot
// marker of 'zconfigure -c RecoverCluster' or of the restore of a zone's
// only server, or cluster.bootstrap), or at the first start of a new
// zone: a store that never replicated and lists no other server. A store
// that replicated before (a restored backup, a lost log) never does by
// itself, whatever servers it lists: other servers of the zone may be
// alive and leading, and two clusters would split the zone. It waits for
// them (they reach it while they count it as a member) or asks to join.
func (s *Server) MayBootstrap() bool {
	if s.opts.Config.Cluster.Bootstrap || fileExists(s.opts.Paths.RecoverMarker()) {
		return true
	}
	if s.opts.Config.Cluster.Join != "" {
		return false
	}
	inc, applied, err := s.db.ReplicationState()
	if err != nil || inc.Gen != 0 || applied != 0 {
		return false
	}
	servers, err := s.db.Servers()
	if err != nil {
		return false
	}
	for _, sv := range servers {
		if sv.ID != s.self.ID {
			return false
		}
	}
	return true
}

// Bootstrapped is called once replication started: a one-shot order to
// start a new cluster has been carried out.
func (s *Server) Bootstrapped() {
	if err := os.Remove(s.opts.Paths.RecoverMarker()); err == nil {
		s.log.Warn("replication: started a new cluster of this server alone, as ordered (zconfigure -c RecoverCluster or the restore of the zone's only server)",
			"incarnation", s.rep.Incarnation().String())
	}
}

// FetchStore reads a consistent copy of the zone store from the zone
// server at addr, over the peer link: a store of an older cluster
// incarnation is re-seeded from it.
func (s *Server) FetchStore(ctx context.Context, addr string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+api.Prefix+"/cluster/snapshot", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.peerHTTPStream().Do(req)
	if err != nil {
		return nil, fmt.Errorf("zone server %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, client.AnswerError(resp.StatusCode, data)
	}
	return resp.Body, nil
}

// clusterSnapshot streams a consistent copy of the store to a peer.
func (s *Server) clusterSnapshot(w http.ResponseWriter, r *http.Request, peer zone.Server) error {
	s.log.Info("store copy sent to a peer", "peer", peer.Name)
	return s.clusterStore(w, r, "server:"+peer.Name)
}

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
		if !s.fromDeviceCA(c) {
			return chains, nil
		}
	}
	return nil, fmt.Errorf("peer certificate %q is from the zone's device CA, not a server certificate of this zone", leaf.Subject.CommonName)
}

// peerFromTLS returns the zone server that presented the request's client
// certificate, or an Auth error: peer routes are for the zone's servers only.
func (s *Server) peerFromTLS(r *http.Request) (zone.Server, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return zone.Server{}, errkind.New(errkind.Auth, "peer routes need the certificate of a server of this zone")
	}
	leaf := r.TLS.PeerCertificates[0]
	if _, err := s.verifyServerCert(leaf, r.TLS.PeerCertificates[1:]); err != nil {
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
			return sv, nil
		}
	}
	return zone.Server{}, errkind.New(errkind.Auth, "%q is not a server of zone %s", leaf.Subject.CommonName, s.zone.Name)
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

func (s *Server) clusterRoutes(mux *http.ServeMux, admin func(string, func(http.ResponseWriter, *http.Request, string) error)) {
	mux.HandleFunc("POST "+api.Prefix+"/cluster/apply", s.peer(s.clusterApply))
	mux.HandleFunc("POST "+api.Prefix+"/cluster/members", s.peer(s.clusterAddMember))
	mux.HandleFunc("POST "+api.Prefix+"/cluster/members/remove", s.peer(s.clusterRemoveMember))
	mux.HandleFunc("GET "+api.Prefix+"/cluster/status", s.peer(s.clusterStatus))
	mux.HandleFunc("POST "+api.Prefix+"/cluster/sign", s.peer(s.clusterSign))
	mux.HandleFunc("GET "+api.Prefix+"/cluster/snapshot", s.peer(s.clusterSnapshot))
	admin("POST "+api.Prefix+"/cluster/join", s.clusterJoin)
	admin("GET "+api.Prefix+"/cluster/store", s.clusterStore)
	admin("DELETE "+api.Prefix+"/servers/{name}", s.deleteServer)
	admin("POST "+api.Prefix+"/servers/{name}/address", s.setServerAddress)
	admin("POST "+api.Prefix+"/servers/{name}/leader", s.moveLeader)
	mux.HandleFunc("POST "+api.Prefix+"/cluster/leader", s.peer(s.clusterMoveLeader))
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

var errNotLeader = errkind.New(errkind.Unavailable, "not the replication leader")

// clusterApply applies a command forwarded by a follower.
func (s *Server) clusterApply(w http.ResponseWriter, r *http.Request, peer zone.Server) error {
	if s.rep == nil || !s.rep.IsLeader() {
		writeJSON(w, http.StatusMisdirectedRequest, api.Error{Error: api.ErrorBody{Code: "not_leader", Message: "not the replication leader"}})
		return nil
	}
	// A follower of another cluster incarnation (a store out of step with
	// this log) must not have its writes acknowledged through this one.
	if inc := r.Header.Get(replica.HeaderIncarnation); inc != s.rep.Incarnation().String() {
		return errkind.New(errkind.Unavailable, "server %s follows cluster incarnation %q, the leader %q: it must be re-seeded (see docs/cluster.md, lost replication logs)",
			peer.Name, inc, s.rep.Incarnation().String())
	}
	var c zone.Command
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCommand)).Decode(&c); err != nil {
		return errkind.New(errkind.Usage, "malformed command: %v", err)
	}
	// The followers learn of the commit from the replica at once (a
	// barrier sent as the command reaches the store), not at the next
	// commit timeout: the follower answers its client once it applied the
	// command too.
	idx, err := s.rep.ApplyForwarded(c)
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		writeJSON(w, http.StatusMisdirectedRequest, api.Error{Error: api.ErrorBody{Code: "not_leader", Message: err.Error()}})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ClusterApplied{Index: idx})
	return nil
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
			Proxy:               nil,
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

// Forward is the replica's route to the leader for commands proposed here.
func (s *Server) Forward(ctx context.Context, leader string, c zone.Command) (uint64, error) {
	var out api.ClusterApplied
	// Commands carry ids the store remembers: sending one again is safe.
	if err := s.peerCallRetry(ctx, leader, http.MethodPost, "/cluster/apply", c, &out, true); err != nil {
		return 0, err
	}
	return out.Index, nil
}

// toLeader runs fn here when this server leads, else sends the request to
// the leader, retrying through an election.
func (s *Server) toLeader(ctx context.Context, path string, in any, local func() error) error {
	return s.toLeaderOut(ctx, path, in, nil, local)
}

// toLeaderOut is toLeader that decodes the leader's answer into out.
func (s *Server) toLeaderOut(ctx context.Context, path string, in, out any, local func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if s.rep.IsLeader() {
			err := local()
			if !errors.Is(err, raft.ErrNotLeader) {
				return err
			}
		} else if _, addr := s.rep.Leader(); addr != "" {
			err := s.peerCall(ctx, addr, http.MethodPost, path, in, out)
			if !errors.Is(err, replica.ErrNotDelivered) {
				return err
			}
		}
		if time.Now().After(deadline) {
			return errkind.New(errkind.Unavailable, "the zone's servers have no replication leader: try again shortly")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterAddMember takes the calling server (or the one a follower speaks
// for) into the replication cluster: first as a non-voter, which receives
// the log but counts for no majority, then, once it has caught up and its
// advertised address answers this leader, as a voter. A server joined with
// a wrong address therefore never costs the zone its majority, and can be
// removed without it.
func (s *Server) clusterAddMember(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	var req api.ClusterMember
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	sv, err := s.db.Server(req.ID)
	if err != nil {
		return errkind.New(errkind.NotFound, "server id %s is not in the zone: join it with zconfigure -c JoinZone", req.ID)
	}
	if req.Version != "" {
		if err := version.Compatible(req.Version, version.String()); err != nil {
			return errkind.Wrap(errkind.Invalid, fmt.Errorf("server %s may not replicate: %w", sv.Name, err))
		}
	}
	if s.rep == nil {
		return errkind.New(errkind.Unavailable, "server %s does not replicate", s.self.Name)
	}
	var out api.ClusterMember
	err = s.toLeaderOut(r.Context(), "/cluster/members", req, &out, func() error {
		out = req
		var err error
		out.Voter, err = s.admitMember(r.Context(), sv.Name, req)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// promoteLag is how many log entries a non-voter may still lack when it
// is made a voter.
const promoteLag = 64

// admitMember, on the leader, adds a server as a non-voter, or promotes
// it to voter once it caught up; it reports whether it votes now.
func (s *Server) admitMember(ctx context.Context, name string, req api.ClusterMember) (bool, error) {
	members, err := s.rep.Members()
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(members, func(m replica.Member) bool { return m.ID == req.ID })
	switch {
	case i >= 0 && members[i].Voter && members[i].Address == req.Address:
		return true, nil
	case i >= 0 && members[i].Voter:
		// A voter that moved keeps its vote at its new address. (Taking
		// it out first would make it shut its replication down: raft
		// stops a server it learns was removed.)
		if err := s.rep.AddVoter(req.ID, req.Address); err != nil {
			return false, err
		}
		s.log.Info("replication: a voter's address updated", "server", name, "address", req.Address)
		return true, nil
	case i < 0 || members[i].Address != req.Address:
		if err := s.rep.AddNonvoter(req.ID, req.Address); err != nil {
			return false, err
		}
		s.log.Info("replication: server added as a non-voter until it catches up", "server", name, "address", req.Address)
	}
	// Promote only a server that answers at its advertised address from
	// here and holds (almost) everything committed.
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var st replica.Status
	if err := s.peerCall(cctx, req.Address, http.MethodGet, "/cluster/status", nil, &st); err != nil {
		return false, errkind.New(errkind.Unavailable, "server %s does not answer the leader at its advertised address %s (%v): it stays a non-voter; "+
			"correct its cluster.advertise (or zman server-address-set --advertise), or remove it with zman server-delete", name, req.Address, err)
	}
	if st.ID != req.ID {
		return false, errkind.New(errkind.Unavailable, "the advertised address %s of server %s answers as another server (%s): it stays a non-voter", req.Address, name, st.ID)
	}
	commit := s.rep.Status().CommitIndex
	if st.Applied+promoteLag < commit {
		return false, errkind.New(errkind.Unavailable, "server %s is catching up (change %d of %d): it becomes a voter once it has", name, st.Applied, commit)
	}
	if err := s.rep.AddVoter(req.ID, req.Address); err != nil {
		return false, err
	}
	s.log.Info("replication: server caught up and now votes", "server", name, "address", req.Address)
	return true, nil
}

func (s *Server) clusterRemoveMember(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	var req api.ClusterMember
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if err := s.toLeader(r.Context(), "/cluster/members/remove", req, func() error { return s.rep.RemoveServer(req.ID) }); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	if s.rep == nil {
		return errkind.New(errkind.Unavailable, "server %s does not replicate", s.self.Name)
	}
	writeJSON(w, http.StatusOK, s.rep.Status())
	return nil
}

// clusterSign signs a CSR with the zone CA for another server of the zone:
// only the CertAuth server holds the key.
func (s *Server) clusterSign(w http.ResponseWriter, r *http.Request, peer zone.Server) error {
	var req api.ClusterSign
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	cert, err := s.signLocal(r.Context(), req)
	if err != nil {
		return err
	}
	s.log.Info("certificate signed for a peer", "peer", peer.Name, "kind", req.Kind, "id", req.ID)
	writeJSON(w, http.StatusOK, api.ClusterSigned{CertPEM: string(pki.EncodeCertPEM(cert))})
	return nil
}

func (s *Server) signLocal(ctx context.Context, req api.ClusterSign) (*x509.Certificate, error) {
	if st := s.trust.Load(); st.external {
		// The zone holds no key of an external CA: devices get their
		// certificates from the device CA, on any server; a server's
		// certificate must come from the external CA.
		if req.Kind != "device" {
			return nil, errkind.New(errkind.Unavailable, "the zone CA %s is external and its key is not in the zone, so no server can sign a certificate for a joining server: join servers while the zone CA is internal (change to the external CA afterwards)", st.ca.Subject)
		}
		dca, err := s.deviceSigner(ctx)
		if err != nil {
			return nil, err
		}
		cert, err := dca.SignDeviceCSR([]byte(req.CSR), req.ID, s.now())
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("certificate request: %w", err))
		}
		return cert, nil
	}
	ca := s.ca.Load()
	if ca == nil {
		return nil, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role", s.self.Name)
	}
	switch req.Kind {
	case "device":
		cert, err := ca.SignDeviceCSR([]byte(req.CSR), req.ID, s.now())
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("certificate request: %w", err))
		}
		return cert, nil
	case "server":
		csr, err := pki.ParseCSRPEM([]byte(req.CSR))
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, err)
		}
		var ips []net.IP
		for _, ip := range req.IPs {
			if p := net.ParseIP(ip); p != nil {
				ips = append(ips, p)
			} else {
				return nil, errkind.New(errkind.Usage, "%q is not an IP address", ip)
			}
		}
		if len(req.DNSNames) == 0 {
			return nil, errkind.New(errkind.Usage, "a server certificate needs a DNS name")
		}
		return ca.IssueServer(pki.ServerRequest{CommonName: req.DNSNames[0], DNSNames: req.DNSNames, IPs: ips, PublicKey: csr.PublicKey}, s.now())
	}
	return nil, errkind.New(errkind.Usage, "unknown certificate kind %q", req.Kind)
}

// sign signs here when this server holds the CA, else asks the server
// that does: devices may register with any server of the zone. Under an
// external zone CA every server signs device certificates itself, with
// the device CA.
func (s *Server) sign(ctx context.Context, req api.ClusterSign) (*x509.Certificate, error) {
	if s.ca.Load() != nil || s.trust.Load().external {
		return s.signLocal(ctx, req)
	}
	servers, err := s.db.Servers()
	if err != nil {
		return nil, err
	}
	for _, sv := range servers {
		if !sv.HasRole(zone.RoleCertAuth) || sv.ID == s.self.ID {
			continue
		}
		addr := peerAddr(sv)
		var out api.ClusterSigned
		if err := s.peerCall(ctx, addr, http.MethodPost, "/cluster/sign", req, &out); err != nil {
			if errors.Is(err, replica.ErrNotDelivered) {
				return nil, errkind.New(errkind.Unavailable, "the zone's CertAuth server %s cannot be reached to sign the certificate: try again later", sv.Name)
			}
			return nil, err
		}
		return pki.ParseCertPEM([]byte(out.CertPEM))
	}
	return nil, errkind.New(errkind.Unavailable, "no server of zone %s holds the CertAuth role: enable it where the CA key is (certificate-authority-role-enable)", s.zone.Name)
}

// clusterJoin admits a new Primary Server: its certificate from the zone
// CA, its record in the store. The new server then copies the store
// (clusterStore) and, at its first start, asks to become a member.
func (s *Server) clusterJoin(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ClusterJoin
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.DNSNames) == 0 || req.Port < 1 || req.Port > 65535 || req.CSR == "" {
		return errkind.New(errkind.Usage, "joining needs the server's DNS names, port and certificate request")
	}
	if err := version.Compatible(req.Version, version.String()); err != nil {
		return errkind.Wrap(errkind.Invalid, fmt.Errorf("server %s may not join zone %s: %w", req.DNSNames[0], s.zone.Name, err))
	}
	servers, err := s.db.Servers()
	if err != nil {
		return err
	}
	for _, sv := range servers {
		if sv.Name == req.DNSNames[0] {
			return errkind.New(errkind.Exists, "the zone already has a server named %s (zman server-delete %s first to replace it)", sv.Name, sv.Name)
		}
	}
	cert, err := s.sign(r.Context(), api.ClusterSign{Kind: "server", CSR: req.CSR, DNSNames: req.DNSNames, IPs: req.IPs})
	if err != nil {
		return err
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	now := s.db.Now()
	sv := zone.Server{ID: hex.EncodeToString(idb), Name: req.DNSNames[0], DNSNames: req.DNSNames, IPs: req.IPs, Port: req.Port,
		Address: req.Advertise, Roles: []zone.Role{}, Version: req.Version, CertPEM: string(pki.EncodeCertPEM(cert)),
		CertNotAfter: cert.NotAfter.UTC(), Created: now}
	if err := s.db.JoinServer(actor, sv); err != nil {
		return err
	}
	z, err := s.db.Zone()
	if err != nil {
		return err
	}
	s.log.Info("server joined the zone", "server", sv.Name, "id", sv.ID, "actor", actor)
	writeJSON(w, http.StatusCreated, api.ClusterJoined{ServerID: sv.ID, ZoneID: z.ID, ZoneName: z.Name,
		CertPEM: string(pki.EncodeCertPEM(cert)) + z.CACertPEM, CAPEM: z.CACertPEM,
		Join: "https://" + s.Advertise()})
	return nil
}

// clusterStore streams a consistent copy of the store to a joining server.
func (s *Server) clusterStore(w http.ResponseWriter, r *http.Request, actor string) error {
	return s.db.Snapshot(func(size int64, write func(io.Writer) (int64, error)) error {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, err := write(w)
		return err
	})
}

// deleteServer removes a Primary Server from the zone: its record (so its
// certificate no longer opens peer routes) and its replication membership.
func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request, actor string) error {
	sv, err := s.serverByRef(r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := s.db.DeleteServer(actor, sv.ID); err != nil {
		return err
	}
	if s.rep != nil {
		req := api.ClusterMember{ID: sv.ID}
		if err := s.toLeader(r.Context(), "/cluster/members/remove", req, func() error { return s.rep.RemoveServer(sv.ID) }); err != nil {
			return fmt.Errorf("server %s deleted from the zone but still a replication member: %w", sv.Name, err)
		}
	}
	s.log.Info("server deleted from the zone", "server", sv.Name, "actor", actor)
	out := api.Server{ID: sv.ID, Name: sv.Name}
	if sats := satellites.Of(s.db, sv); len(sats) > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("content satellites %s pulled from %s: they now pull from the zone's other servers; give them a new parent with 'zman satellite-add-role DEVICE Content --parent URL'",
			strings.Join(sats, ", "), sv.Name))
		s.log.Warn("satellites lost their parent server", "server", sv.Name, "satellites", strings.Join(sats, ","))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// replicationOf asks every server for its replication state, in parallel
// and briefly: a server that does not answer is shown as unreachable.
func (s *Server) replicationOf(ctx context.Context, servers []zone.Server) map[string]*replica.Status {
	if s.rep == nil {
		return nil
	}
	out := make(map[string]*replica.Status, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sv := range servers {
		if sv.ID == s.self.ID {
			st := s.rep.Status()
			mu.Lock() // the peers' answers may be arriving already
			out[sv.ID] = &st
			mu.Unlock()
			continue
		}
		addr := peerAddr(sv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var st replica.Status
			if err := s.peerCall(cctx, addr, http.MethodGet, "/cluster/status", nil, &st); err == nil {
				mu.Lock()
				out[sv.ID] = &st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// startReplicating records this server's start and, on a server that
// joined but is not yet a member, asks the zone to add it. It retries in
// the background until it succeeds or ctx ends: the server must answer
// the leader meanwhile.
func (s *Server) startReplicating(ctx context.Context) {
	join := s.opts.Config.Cluster.Join
	for attempt := 0; ; attempt++ {
		err := s.joinOnce(ctx, join)
		if err == nil {
			err = s.db.ServerStarted(s.self.ID, version.String(), s.Advertise())
		}
		if err == nil {
			return
		}
		if attempt%10 == 0 {
			s.log.Warn("replication: not yet a working member", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) joinOnce(ctx context.Context, join string) error {
	if s.rep == nil {
		return nil
	}
	members, err := s.rep.Members()
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.ID == s.self.ID && m.Address == s.Advertise() && m.Voter {
			return nil
		}
	}
	// Not a member yet (a joined server's first start), not yet a voter,
	// or a member at an address that changed: ask the zone, which adds,
	// promotes or updates it.
	if s.rep.IsLeader() {
		return s.rep.AddVoter(s.self.ID, s.Advertise())
	}
	var targets []string
	if _, leader := s.rep.Leader(); leader != "" {
		targets = []string{leader}
	} else if join != "" {
		u, err := joinAddress(join)
		if err != nil {
			return err
		}
		targets = []string{u}
	} else {
		// A restored server: any other server of the zone forwards the
		// request to the leader.
		servers, err := s.db.Servers()
		if err != nil {
			return err
		}
		for _, sv := range servers {
			if sv.ID != s.self.ID {
				targets = append(targets, peerAddr(sv))
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	err = errors.New("no server of the zone answered")
	for _, u := range targets {
		if err = s.askMembership(ctx, u); err == nil {
			return nil
		}
	}
	return err
}

func (s *Server) askMembership(ctx context.Context, u string) error {
	cctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	var out api.ClusterMember
	err := s.peerCall(cctx, u, http.MethodPost, "/cluster/members", api.ClusterMember{ID: s.self.ID, Address: s.Advertise(), Version: version.String()}, &out)
	if err != nil {
		return err
	}
	if !out.Voter {
		return errors.New("a non-voting member of the zone's cluster until it catches up")
	}
	s.log.Info("replication: a member of the zone's cluster", "via", u)
	return nil
}

func sameCert(recordPEM string, leaf *x509.Certificate) bool {
	c, err := pki.ParseCertPEM([]byte(recordPEM))
	return err == nil && c.Equal(leaf)
}

// peerAddr is where peers reach sv (host:port): its replication address,
// else its name and port.
func peerAddr(sv zone.Server) string {
	if sv.Address != "" {
		return sv.Address
	}
	return net.JoinHostPort(sv.Name, strconv.Itoa(sv.Port))
}

// joinAddress turns https://host:port into host:port.
func joinAddress(u string) (string, error) {
	p, err := neturl.Parse(u)
	if err != nil || p.Scheme != "https" || p.Host == "" || p.Port() == "" {
		return "", errkind.New(errkind.Usage, "cluster.join %q: want https://host:port", u)
	}
	return p.Host, nil
}

// setServerAddress records a server's new IP addresses, DNS names or peer
// address (a move to another network). Its certificate follows with
// server-certificate-remint, which takes the names and addresses recorded
// here; the server itself restarts with its new server.address.
func (s *Server) setServerAddress(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ServerAddress
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	for _, ip := range req.IPs {
		if net.ParseIP(ip) == nil {
			return errkind.New(errkind.Usage, "%q is not an IP address", ip)
		}
	}
	if req.Advertise != "" {
		if _, _, err := net.SplitHostPort(req.Advertise); err != nil {
			return errkind.New(errkind.Usage, "--advertise %q: want host:port", req.Advertise)
		}
	}
	sv, err := s.serverByRef(r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := s.db.SetServerAddress(actor, sv.ID, req.DNSNames, req.IPs, req.Advertise); err != nil {
		return err
	}
	if sv, err = s.db.Server(sv.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Server{ID: sv.ID, Name: sv.Name, DNSNames: sv.DNSNames, IPs: sv.IPs, Port: sv.Port, Address: sv.Address})
	return nil
}

// moveLeader moves the Database and MasterPrimary roles, which follow the
// replication leader, to the named server (before maintenance of the
// current leader, for instance).
func (s *Server) moveLeader(w http.ResponseWriter, r *http.Request, actor string) error {
	if s.rep == nil {
		return errkind.New(errkind.Unavailable, "server %s does not replicate", s.self.Name)
	}
	target, err := s.serverByRef(r.PathValue("name"))
	if err != nil {
		return err
	}
	if id, _ := s.rep.Leader(); id == target.ID {
		writeJSON(w, http.StatusOK, api.Server{ID: target.ID, Name: target.Name})
		return nil
	}
	member := api.ClusterMember{ID: target.ID}
	members, err := s.rep.Members()
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.ID == target.ID {
			member.Address = m.Address
		}
	}
	if member.Address == "" {
		return errkind.New(errkind.NotFound, "server %s is not a replication member", target.Name)
	}
	err = s.toLeader(r.Context(), "/cluster/leader", member, func() error { return s.rep.TransferLeadership(member.ID, member.Address) })
	if err != nil {
		return err
	}
	// The roles are where the leader is: wait until this server knows it.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if id, _ := s.rep.Leader(); id == target.ID {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.log.Info("replication leadership moved", "to", target.Name, "actor", actor)
	writeJSON(w, http.StatusOK, api.Server{ID: target.ID, Name: target.Name})
	return nil
}

func (s *Server) clusterMoveLeader(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	var req api.ClusterMember
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	err := s.toLeader(r.Context(), "/cluster/leader", req, func() error { return s.rep.TransferLeadership(req.ID, req.Address) })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

// staleAfter is how long a follower may go without word from the leader
// before its answers are flagged as possibly stale (heartbeats come ten
// times per heartbeat timeout).
const staleAfter = 3 * time.Second

// staleSince says, on a follower cut off from the leader, since when its
// copy of the store may lag behind the zone ("" when it is current).
func (s *Server) staleSince() string {
	if s.rep == nil || s.rep.IsLeader() {
		return ""
	}
	st := s.rep.Status()
	switch {
	case st.LastContact.IsZero():
		return "unknown (no replication leader known)"
	case time.Since(st.LastContact) > staleAfter:
		return st.LastContact.UTC().Format(time.RFC3339)
	}
	return ""
}

// serverByRef finds a server of the zone by name or id.
func (s *Server) serverByRef(ref string) (zone.Server, error) {
	servers, err := s.db.Servers()
	if err != nil {
		return zone.Server{}, err
	}
	i := slices.IndexFunc(servers, func(sv zone.Server) bool { return sv.Name == ref || sv.ID == ref })
	if i < 0 {
		return zone.Server{}, errkind.New(errkind.NotFound, "server %q not found", ref)
	}
	return servers[i], nil
}
