// Package cluster is the zone's replication cluster as one server takes
// part in it: the peer routes that carry forwarded writes, membership,
// status, store copies and leadership moves (/api/v1/cluster/...), the
// administrators' server routes (join, delete, address, leader), this
// server's own membership (the "cluster membership" loop) and the
// answers to the replica (Forward, FetchStore). The raft link itself,
// the peer TLS link and certificate signing are the core's.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/replica"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/store"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

// Zone is what the cluster needs of the zone's state (*zone.DB).
type Zone interface {
	Now() time.Time
	Zone() (zone.Zone, error)
	Server(id string) (zone.Server, error)
	Servers() ([]zone.Server, error)
	ServerStarted(id, version, address string) error
	JoinServer(actor string, s zone.Server) error
	DeleteServer(actor, id string) error
	SetServerAddress(actor, id string, dns, ips []string, address string) error
	ReplicationState() (inc store.Incarnation, applied uint64, err error)
	Snapshot(fn func(size int64, write func(io.Writer) (int64, error)) error) error
}

// Peers is the link to the zone's other servers (host:port), with this
// server's certificate.
type Peers interface {
	// Call sends a JSON request and decodes the answer into out. Errors
	// that prove the request never left wrap replica.ErrNotDelivered;
	// the peer's answer keeps its error kind.
	Call(ctx context.Context, addr, method, path string, in, out any) error
	// CallRetry is Call for requests that are safe to send again: any
	// failure to get an answer is then replica.ErrNotDelivered.
	CallRetry(ctx context.Context, addr, method, path string, in, out any) error
	// Stream is a client without an overall timeout, for store copies.
	Stream() *http.Client
}

// Signer signs certificates with the zone CA, here or on the server
// that holds it.
type Signer interface {
	Sign(ctx context.Context, req api.ClusterSign) (*x509.Certificate, error)
}

// Cluster is this server's part in the zone's replication cluster.
type Cluster struct {
	Zone   Zone
	Peers  Peers
	Signer Signer
	// SatellitesOf names the content satellites that pull from sv: a
	// deleted server's are told to find another parent.
	SatellitesOf func(sv zone.Server) []string
	Self         zone.Server
	ZoneName     string
	Config       config.Server
	Paths        config.Paths
	Log          *slog.Logger
	rep          *replica.Node // nil until SetReplica
}

// SetReplica makes this server a member of the zone's replication
// cluster. Call before the routes answer.
func (cl *Cluster) SetReplica(n *replica.Node) { cl.rep = n }

// Register mounts the cluster's routes.
func (cl *Cluster) Register(r httpapi.Routes) {
	r.Peer("POST "+api.Prefix+"/cluster/apply", cl.clusterApply)
	r.Peer("POST "+api.Prefix+"/cluster/members", cl.clusterAddMember)
	r.Peer("POST "+api.Prefix+"/cluster/members/remove", cl.clusterRemoveMember)
	r.Peer("GET "+api.Prefix+"/cluster/status", cl.clusterStatus)
	r.Peer("GET "+api.Prefix+"/cluster/snapshot", cl.clusterSnapshot)
	r.Admin("POST "+api.Prefix+"/cluster/join", cl.clusterJoin)
	r.Admin("GET "+api.Prefix+"/cluster/store", cl.clusterStore)
	r.Admin("DELETE "+api.Prefix+"/servers/{name}", cl.deleteServer)
	r.Admin("POST "+api.Prefix+"/servers/{name}/address", cl.setServerAddress)
	r.Admin("POST "+api.Prefix+"/servers/{name}/leader", cl.moveLeader)
	r.Peer("POST "+api.Prefix+"/cluster/leader", cl.clusterMoveLeader)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// maxCommand bounds a forwarded command (inventories are the largest).
const maxCommand = 32 << 20

// Advertise is host:port where peers reach this server.
func (cl *Cluster) Advertise() string {
	if a := cl.Config.Cluster.Advertise; a != "" {
		return a
	}
	host := cl.Config.Address
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = cl.Self.Name
	}
	return net.JoinHostPort(host, strconv.Itoa(cl.Config.Port))
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
func (cl *Cluster) MayBootstrap() bool {
	if cl.Config.Cluster.Bootstrap || fileExists(cl.Paths.RecoverMarker()) {
		return true
	}
	if cl.Config.Cluster.Join != "" {
		return false
	}
	inc, applied, err := cl.Zone.ReplicationState()
	if err != nil || inc.Gen != 0 || applied != 0 {
		return false
	}
	servers, err := cl.Zone.Servers()
	if err != nil {
		return false
	}
	for _, sv := range servers {
		if sv.ID != cl.Self.ID {
			return false
		}
	}
	return true
}

// Bootstrapped is called once replication started: a one-shot order to
// start a new cluster has been carried out.
func (cl *Cluster) Bootstrapped() {
	if err := os.Remove(cl.Paths.RecoverMarker()); err == nil {
		cl.Log.Warn("replication: started a new cluster of this server alone, as ordered (zconfigure -c RecoverCluster or the restore of the zone's only server)",
			"incarnation", cl.rep.Incarnation().String())
	}
}

// FetchStore reads a consistent copy of the zone store from the zone
// server at addr, over the peer link: a store of an older cluster
// incarnation is re-seeded from it.
func (cl *Cluster) FetchStore(ctx context.Context, addr string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+api.Prefix+"/cluster/snapshot", nil)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Peers.Stream().Do(req)
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
func (cl *Cluster) clusterSnapshot(w http.ResponseWriter, r *http.Request, peer zone.Server) error {
	cl.Log.Info("store copy sent to a peer", "peer", peer.Name)
	return cl.clusterStore(w, r, "server:"+peer.Name)
}

// clusterApply applies a command forwarded by a follower.
func (cl *Cluster) clusterApply(w http.ResponseWriter, r *http.Request, peer zone.Server) error {
	if cl.rep == nil || !cl.rep.IsLeader() {
		httpapi.WriteJSON(w, http.StatusMisdirectedRequest, api.Error{Error: api.ErrorBody{Code: "not_leader", Message: "not the replication leader"}})
		return nil
	}
	// A follower of another cluster incarnation (a store out of step with
	// this log) must not have its writes acknowledged through this one.
	if inc := r.Header.Get(replica.HeaderIncarnation); inc != cl.rep.Incarnation().String() {
		return errkind.New(errkind.Unavailable, "server %s follows cluster incarnation %q, the leader %q: it must be re-seeded (see docs/cluster.md, lost replication logs)",
			peer.Name, inc, cl.rep.Incarnation().String())
	}
	var c zone.Command
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCommand)).Decode(&c); err != nil {
		return errkind.New(errkind.Usage, "malformed command: %v", err)
	}
	// The follower applies the entry from its own log once it has it and
	// answers its client then. One that says so learns the command's
	// outcome from that apply: it is answered as soon as the command is
	// committed, its apply running alongside this server's.
	token, _ := hex.DecodeString(r.URL.Query().Get("token"))
	e, err := cl.rep.ApplyForwarded(c, r.URL.Query().Get("own") == "1", token)
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		httpapi.WriteJSON(w, http.StatusMisdirectedRequest, api.Error{Error: api.ErrorBody{Code: "not_leader", Message: err.Error()}})
		return nil
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.ClusterApplied{Index: e.Index, Term: e.Term})
	return nil
}

// Forward is the replica's route to the leader for commands proposed here.
// The leader puts token in the command's entry.
func (cl *Cluster) Forward(ctx context.Context, leader string, c zone.Command, token []byte) (replica.Entry, error) {
	var out api.ClusterApplied
	// Commands carry ids the store remembers: sending one again is safe.
	if err := cl.Peers.CallRetry(ctx, leader, http.MethodPost, "/cluster/apply?own=1&token="+hex.EncodeToString(token), c, &out); err != nil {
		return replica.Entry{}, err
	}
	return replica.Entry{Index: out.Index, Term: out.Term}, nil
}

// toLeader runs fn here when this server leads, else sends the request to
// the leader, retrying through an election.
func (cl *Cluster) toLeader(ctx context.Context, path string, in any, local func() error) error {
	return cl.toLeaderOut(ctx, path, in, nil, local)
}

// toLeaderOut is toLeader that decodes the leader's answer into out.
func (cl *Cluster) toLeaderOut(ctx context.Context, path string, in, out any, local func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if cl.rep.IsLeader() {
			err := local()
			if !errors.Is(err, raft.ErrNotLeader) {
				return err
			}
		} else if _, addr := cl.rep.Leader(); addr != "" {
			err := cl.Peers.Call(ctx, addr, http.MethodPost, path, in, out)
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
func (cl *Cluster) clusterAddMember(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	var req api.ClusterMember
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	sv, err := cl.Zone.Server(req.ID)
	if err != nil {
		return errkind.New(errkind.NotFound, "server id %s is not in the zone: join it with zconfigure -c JoinZone", req.ID)
	}
	if req.Version != "" {
		if err := version.Compatible(req.Version, version.String()); err != nil {
			return errkind.Wrap(errkind.Invalid, fmt.Errorf("server %s may not replicate: %w", sv.Name, err))
		}
	}
	if cl.rep == nil {
		return errkind.New(errkind.Unavailable, "server %s does not replicate", cl.Self.Name)
	}
	var out api.ClusterMember
	err = cl.toLeaderOut(r.Context(), "/cluster/members", req, &out, func() error {
		out = req
		var err error
		out.Voter, err = cl.admitMember(r.Context(), sv.Name, req)
		return err
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// promoteLag is how many log entries a non-voter may still lack when it
// is made a voter.
const promoteLag = 64

// admitMember, on the leader, adds a server as a non-voter, or promotes
// it to voter once it caught up; it reports whether it votes now.
func (cl *Cluster) admitMember(ctx context.Context, name string, req api.ClusterMember) (bool, error) {
	members, err := cl.rep.Members()
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
		if err := cl.rep.AddVoter(req.ID, req.Address); err != nil {
			return false, err
		}
		cl.Log.Info("replication: a voter's address updated", "server", name, "address", req.Address)
		return true, nil
	case i < 0 || members[i].Address != req.Address:
		if err := cl.rep.AddNonvoter(req.ID, req.Address); err != nil {
			return false, err
		}
		cl.Log.Info("replication: server added as a non-voter until it catches up", "server", name, "address", req.Address)
	}
	// Promote only a server that answers at its advertised address from
	// here and holds (almost) everything committed.
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var st replica.Status
	if err := cl.Peers.Call(cctx, req.Address, http.MethodGet, "/cluster/status", nil, &st); err != nil {
		return false, errkind.New(errkind.Unavailable, "server %s does not answer the leader at its advertised address %s (%v): it stays a non-voter; "+
			"correct its cluster.advertise (or zman server-address-set --advertise), or remove it with zman server-delete", name, req.Address, err)
	}
	if st.ID != req.ID {
		return false, errkind.New(errkind.Unavailable, "the advertised address %s of server %s answers as another server (%s): it stays a non-voter", req.Address, name, st.ID)
	}
	commit := cl.rep.Status().CommitIndex
	if st.Applied+promoteLag < commit {
		return false, errkind.New(errkind.Unavailable, "server %s is catching up (change %d of %d): it becomes a voter once it has", name, st.Applied, commit)
	}
	if err := cl.rep.AddVoter(req.ID, req.Address); err != nil {
		return false, err
	}
	cl.Log.Info("replication: server caught up and now votes", "server", name, "address", req.Address)
	return true, nil
}

func (cl *Cluster) clusterRemoveMember(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	var req api.ClusterMember
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if err := cl.toLeader(r.Context(), "/cluster/members/remove", req, func() error { return cl.rep.RemoveServer(req.ID) }); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, req)
	return nil
}

func (cl *Cluster) clusterStatus(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	if cl.rep == nil {
		return errkind.New(errkind.Unavailable, "server %s does not replicate", cl.Self.Name)
	}
	httpapi.WriteJSON(w, http.StatusOK, cl.rep.Status())
	return nil
}

// clusterJoin admits a new Primary Server: its certificate from the zone
// CA, its record in the store. The new server then copies the store
// (clusterStore) and, at its first start, asks to become a member.
func (cl *Cluster) clusterJoin(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ClusterJoin
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.DNSNames) == 0 || req.Port < 1 || req.Port > 65535 || req.CSR == "" {
		return errkind.New(errkind.Usage, "joining needs the server's DNS names, port and certificate request")
	}
	if err := version.Compatible(req.Version, version.String()); err != nil {
		return errkind.Wrap(errkind.Invalid, fmt.Errorf("server %s may not join zone %s: %w", req.DNSNames[0], cl.ZoneName, err))
	}
	servers, err := cl.Zone.Servers()
	if err != nil {
		return err
	}
	for _, sv := range servers {
		if sv.Name == req.DNSNames[0] {
			return errkind.New(errkind.Exists, "the zone already has a server named %s (zman server-delete %s first to replace it)", sv.Name, sv.Name)
		}
	}
	cert, err := cl.Signer.Sign(r.Context(), api.ClusterSign{Kind: "server", CSR: req.CSR, DNSNames: req.DNSNames, IPs: req.IPs})
	if err != nil {
		return err
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	now := cl.Zone.Now()
	sv := zone.Server{ID: hex.EncodeToString(idb), Name: req.DNSNames[0], DNSNames: req.DNSNames, IPs: req.IPs, Port: req.Port,
		Address: req.Advertise, Roles: []zone.Role{}, Version: req.Version, CertPEM: string(pki.EncodeCertPEM(cert)),
		CertNotAfter: cert.NotAfter.UTC(), Created: now}
	if err := cl.Zone.JoinServer(actor, sv); err != nil {
		return err
	}
	z, err := cl.Zone.Zone()
	if err != nil {
		return err
	}
	cl.Log.Info("server joined the zone", "server", sv.Name, "id", sv.ID, "actor", actor)
	httpapi.WriteJSON(w, http.StatusCreated, api.ClusterJoined{ServerID: sv.ID, ZoneID: z.ID, ZoneName: z.Name,
		CertPEM: string(pki.EncodeCertPEM(cert)) + z.CACertPEM, CAPEM: z.CACertPEM,
		Join: "https://" + cl.Advertise()})
	return nil
}

// clusterStore streams a consistent copy of the store to a joining server.
func (cl *Cluster) clusterStore(w http.ResponseWriter, r *http.Request, actor string) error {
	return cl.Zone.Snapshot(func(size int64, write func(io.Writer) (int64, error)) error {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, err := write(w)
		return err
	})
}

// deleteServer removes a Primary Server from the zone: its record (so its
// certificate no longer opens peer routes) and its replication membership.
func (cl *Cluster) deleteServer(w http.ResponseWriter, r *http.Request, actor string) error {
	sv, err := cl.serverByRef(r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := cl.Zone.DeleteServer(actor, sv.ID); err != nil {
		return err
	}
	if cl.rep != nil {
		req := api.ClusterMember{ID: sv.ID}
		if err := cl.toLeader(r.Context(), "/cluster/members/remove", req, func() error { return cl.rep.RemoveServer(sv.ID) }); err != nil {
			return fmt.Errorf("server %s deleted from the zone but still a replication member: %w", sv.Name, err)
		}
	}
	cl.Log.Info("server deleted from the zone", "server", sv.Name, "actor", actor)
	out := api.Server{ID: sv.ID, Name: sv.Name}
	if sats := cl.SatellitesOf(sv); len(sats) > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("content satellites %s pulled from %s: they now pull from the zone's other servers; give them a new parent with 'zman satellite-add-role DEVICE Content --parent URL'",
			strings.Join(sats, ", "), sv.Name))
		cl.Log.Warn("satellites lost their parent server", "server", sv.Name, "satellites", strings.Join(sats, ","))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// ReplicationOf asks every server for its replication state, in parallel
// and briefly: a server that does not answer is shown as unreachable.
func (cl *Cluster) ReplicationOf(ctx context.Context, servers []zone.Server) map[string]*replica.Status {
	if cl.rep == nil {
		return nil
	}
	out := make(map[string]*replica.Status, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sv := range servers {
		if sv.ID == cl.Self.ID {
			st := cl.rep.Status()
			mu.Lock() // the peers' answers may be arriving already
			out[sv.ID] = &st
			mu.Unlock()
			continue
		}
		addr := sv.PeerAddress()
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var st replica.Status
			if err := cl.Peers.Call(cctx, addr, http.MethodGet, "/cluster/status", nil, &st); err == nil {
				mu.Lock()
				out[sv.ID] = &st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// StartReplicating records this server's start and, on a server that
// joined but is not yet a member, asks the zone to add it. It retries in
// the background until it succeeds or ctx ends: the server must answer
// the leader meanwhile.
func (cl *Cluster) StartReplicating(ctx context.Context) {
	join := cl.Config.Cluster.Join
	for attempt := 0; ; attempt++ {
		err := cl.joinOnce(ctx, join)
		if err == nil {
			err = cl.Zone.ServerStarted(cl.Self.ID, version.String(), cl.Advertise())
		}
		if err == nil {
			return
		}
		if attempt%10 == 0 {
			cl.Log.Warn("replication: not yet a working member", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (cl *Cluster) joinOnce(ctx context.Context, join string) error {
	if cl.rep == nil {
		return nil
	}
	members, err := cl.rep.Members()
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.ID == cl.Self.ID && m.Address == cl.Advertise() && m.Voter {
			return nil
		}
	}
	// Not a member yet (a joined server's first start), not yet a voter,
	// or a member at an address that changed: ask the zone, which adds,
	// promotes or updates it.
	if cl.rep.IsLeader() {
		return cl.rep.AddVoter(cl.Self.ID, cl.Advertise())
	}
	var targets []string
	if _, leader := cl.rep.Leader(); leader != "" {
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
		servers, err := cl.Zone.Servers()
		if err != nil {
			return err
		}
		for _, sv := range servers {
			if sv.ID != cl.Self.ID {
				targets = append(targets, sv.PeerAddress())
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	err = errors.New("no server of the zone answered")
	for _, u := range targets {
		if err = cl.askMembership(ctx, u); err == nil {
			return nil
		}
	}
	return err
}

func (cl *Cluster) askMembership(ctx context.Context, u string) error {
	cctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	var out api.ClusterMember
	err := cl.Peers.Call(cctx, u, http.MethodPost, "/cluster/members", api.ClusterMember{ID: cl.Self.ID, Address: cl.Advertise(), Version: version.String()}, &out)
	if err != nil {
		return err
	}
	if !out.Voter {
		return errors.New("a non-voting member of the zone's cluster until it catches up")
	}
	cl.Log.Info("replication: a member of the zone's cluster", "via", u)
	return nil
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
func (cl *Cluster) setServerAddress(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.ServerAddress
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	for _, ip := range req.IPs {
		if net.ParseIP(ip) == nil {
			return errkind.New(errkind.Usage, "%q is not an IP address", ip)
		}
	}
	if req.Advertise != "" {
		if _, _, err := net.SplitHostPort(req.Advertise); err != nil {
			return errkind.New(errkind.Usage, "advertise address %q: want host:port", req.Advertise)
		}
	}
	sv, err := cl.serverByRef(r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := cl.Zone.SetServerAddress(actor, sv.ID, req.DNSNames, req.IPs, req.Advertise); err != nil {
		return err
	}
	if sv, err = cl.Zone.Server(sv.ID); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.Server{ID: sv.ID, Name: sv.Name, DNSNames: sv.DNSNames, IPs: sv.IPs, Port: sv.Port, Address: sv.Address})
	return nil
}

// moveLeader moves the Database and MasterPrimary roles, which follow the
// replication leader, to the named server (before maintenance of the
// current leader, for instance).
func (cl *Cluster) moveLeader(w http.ResponseWriter, r *http.Request, actor string) error {
	if cl.rep == nil {
		return errkind.New(errkind.Unavailable, "server %s does not replicate", cl.Self.Name)
	}
	target, err := cl.serverByRef(r.PathValue("name"))
	if err != nil {
		return err
	}
	if id, _ := cl.rep.Leader(); id == target.ID {
		httpapi.WriteJSON(w, http.StatusOK, api.Server{ID: target.ID, Name: target.Name})
		return nil
	}
	member := api.ClusterMember{ID: target.ID}
	members, err := cl.rep.Members()
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
	err = cl.toLeader(r.Context(), "/cluster/leader", member, func() error { return cl.rep.TransferLeadership(member.ID, member.Address) })
	if err != nil {
		return err
	}
	// The roles are where the leader is: wait until this server knows it.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if id, _ := cl.rep.Leader(); id == target.ID {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cl.Log.Info("replication leadership moved", "to", target.Name, "actor", actor)
	httpapi.WriteJSON(w, http.StatusOK, api.Server{ID: target.ID, Name: target.Name})
	return nil
}

func (cl *Cluster) clusterMoveLeader(w http.ResponseWriter, r *http.Request, _ zone.Server) error {
	var req api.ClusterMember
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	err := cl.toLeader(r.Context(), "/cluster/leader", req, func() error { return cl.rep.TransferLeadership(req.ID, req.Address) })
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, req)
	return nil
}

// staleAfter is how long a follower may go without word from the leader
// before its answers are flagged as possibly stale (heartbeats come ten
// times per heartbeat timeout).
const staleAfter = 3 * time.Second

// StaleSince says, on a follower cut off from the leader, since when its
// copy of the store may lag behind the zone ("" when it is current).
func (cl *Cluster) StaleSince() string {
	if cl.rep == nil || cl.rep.IsLeader() {
		return ""
	}
	st := cl.rep.Status()
	switch {
	case st.LastContact.IsZero():
		return "unknown (no replication leader known)"
	case time.Since(st.LastContact) > staleAfter:
		return st.LastContact.UTC().Format(time.RFC3339)
	}
	return ""
}

// serverByRef finds a server of the zone by name or id.
func (cl *Cluster) serverByRef(ref string) (zone.Server, error) {
	servers, err := cl.Zone.Servers()
	if err != nil {
		return zone.Server{}, err
	}
	i := slices.IndexFunc(servers, func(sv zone.Server) bool { return sv.Name == ref || sv.ID == ref })
	if i < 0 {
		return zone.Server{}, errkind.New(errkind.NotFound, "server %q not found", ref)
	}
	return servers[i], nil
}
