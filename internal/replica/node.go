package replica

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/store"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

// Options configure a replication node.
type Options struct {
	Dir       string // where the raft log and snapshots live (data/raft)
	ID        string // this server's id in the zone
	Advertise string // host:port where peers reach this server's HTTPS port
	Store     *store.Store
	// TLSConfig is the client side of peer links: this server's zone
	// certificate, the zone CA as the only root.
	TLSConfig func() *tls.Config
	// Forward sends a command to the leader's zone server and returns the
	// log entry it was committed as (see ErrNotDelivered). The leader
	// puts token in that entry (raft.Log.Extensions), by which this
	// server finds it in its own log.
	Forward func(ctx context.Context, leader string, c zone.Command, token []byte) (Entry, error)
	// Bootstrap makes a server without replication state a one-voter
	// cluster; a joining server waits for the leader to add it instead.
	Bootstrap bool
	LogOutput io.Writer // raft's own log; nil discards it
	// ZoneID is the zone's id: every raft stream carries it, and one from
	// another zone is refused.
	ZoneID string
	// FetchStore reads a consistent copy of the zone store from the zone
	// server at addr (host:port), to re-seed a store that follows an older
	// cluster incarnation.
	FetchStore func(ctx context.Context, addr string) (io.ReadCloser, error)
	// Log receives this node's own events (refused streams, re-seeding);
	// nil discards them.
	Log *slog.Logger
	// Timing; zero values take defaults suited to a LAN.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// Hook is called after each step of moving an older server's log
	// (failpoints); nil is failpoint.Crash.
	Hook failpoint.Hook
}

// Entry names a log entry. The leader answers a forwarded command with
// its entry; Term is zero from a leader that does not say it.
type Entry struct {
	Index, Term uint64
}

// ErrNotDelivered wraps forwarding errors after which the command may be
// sent again: the leader did not answer (it may be gone, or no longer
// lead). Commands carry an id the store remembers, so one that did reach
// the leader is not applied twice.
var ErrNotDelivered = errors.New("command not confirmed by the leader")

// Node is this server's member of the zone's replication cluster.
type Node struct {
	opts  Options
	raft  *raft.Raft
	fsm   *fsm
	layer *streamLayer
	trans *raft.NetworkTransport
	logs  *walLog
	log   *notifyingLog // logs as raft's LogStore

	mu      sync.Mutex
	applied chan struct{} // closed and replaced whenever the FSM applies

	forwarding atomic.Int32  // commands forwarded from here whose answer is awaited (holdApply)
	holdFor    time.Duration // holdApply's bound: holdMax
	answered   chan struct{} // closed and replaced as one of them is answered (n.mu)

	tokenPrefix [8]byte               // random, for the tokens of ApplyForwarded's entries
	tokens      atomic.Uint64         // the tokens' counter
	inc         atomic.Value          // store.Incarnation the store follows
	reseedMu    sync.Mutex            // one re-seed at a time
	problem     atomic.Value          // problemNote: the last refusal, for Status
	normal      raft.ReloadableConfig // timeouts for a cluster of several servers
	single      bool                  // started as the only voter
	booted      bool                  // started a new cluster
	shutdown    sync.Once
}

// alone reports whether this server is the only voter of its cluster.
func (n *Node) alone(has bool, cfg *raft.Config, snaps raft.SnapshotStore) bool {
	if !has {
		return n.opts.Bootstrap
	}
	probe := *cfg // GetConfiguration marks the config it is given as not to start
	c, err := raft.GetConfiguration(&probe, n.fsm, n.log, n.logs, snaps, n.trans)
	if err != nil {
		return false
	}
	return len(c.Servers) == 1 && c.Servers[0].ID == raft.ServerID(n.opts.ID)
}

// proposeWait bounds how long a command waits for a leader (an election,
// a leader restarting) before it fails as unavailable.
const proposeWait = 15 * time.Second

// forwardWait bounds one attempt to reach the leader: a frozen or dead
// leader is replaced by an election within seconds, and the command is
// then sent to the new one.
const forwardWait = 3 * time.Second

// Start opens the raft log under Dir and joins the cluster.
func Start(o Options) (*Node, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	n := &Node{opts: o, applied: make(chan struct{}), answered: make(chan struct{}), holdFor: holdMax}
	rand.Read(n.tokenPrefix[:])
	var err error
	if n.fsm, err = newFSM(o.Store, n.onApplied); err != nil {
		return nil, fmt.Errorf("replication: read applied index: %w", err)
	}
	n.fsm.hold = n.holdApply
	out := o.LogOutput
	if out == nil {
		out = io.Discard
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: out, Level: hclog.Info, JSONFormat: true})

	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(o.ID)
	cfg.Logger = logger
	// The store holds what it applied: restoring the last snapshot at
	// start would only replace it with an older copy.
	cfg.NoSnapshotRestoreOnStart = true
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotThreshold = 4096
	cfg.TrailingLogs = 4096
	if o.HeartbeatTimeout > 0 {
		cfg.HeartbeatTimeout = o.HeartbeatTimeout
		cfg.LeaderLeaseTimeout = o.HeartbeatTimeout / 2
	}
	if o.ElectionTimeout > 0 {
		cfg.ElectionTimeout = o.ElectionTimeout
	}

	hook := o.Hook
	if hook == nil {
		hook = failpoint.Crash
	}
	if n.logs, err = openLog(o.Dir, hook); err != nil {
		return nil, err
	}
	n.log = &notifyingLog{LogStore: n.logs, stored: make(chan struct{})}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(o.Dir, 2, logger)
	if err != nil {
		n.logs.Close()
		return nil, fmt.Errorf("replication snapshots: %w", err)
	}
	if n.layer, err = newStreamLayer(o.Advertise, o.TLSConfig, n.hello, n.refused); err != nil {
		n.logs.Close()
		return nil, err
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.layer, MaxPool: 4, Timeout: 10 * time.Second, Logger: logger,
		ServerAddressProvider: nil,
	})
	has, err := raft.HasExistingState(n.log, n.logs, snaps)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("replication state: %w", err)
	}
	if !has && o.Bootstrap {
		// A new cluster numbers its log from 1: whatever index the store
		// remembers (a restored backup) belongs to a log that is gone. Its
		// new incarnation tells every peer whose store followed the old
		// log that it must be re-seeded, never replay from index 1.
		err := o.Store.Update(func(tx *bolt.Tx) error {
			old := store.IncarnationOf(tx)
			b := make([]byte, 8)
			rand.Read(b)
			if err := store.SetIncarnation(tx, store.Incarnation{Gen: old.Gen + 1, ID: hex.EncodeToString(b)}); err != nil {
				return err
			}
			return store.SetAppliedIndex(tx, 0)
		})
		if err != nil {
			n.close()
			return nil, fmt.Errorf("replication: %w", err)
		}
		n.fsm.applied.Store(0)
	}
	if err := n.loadIncarnation(); err != nil {
		n.close()
		return nil, err
	}
	n.normal = raft.ReloadableConfig{TrailingLogs: cfg.TrailingLogs, SnapshotInterval: cfg.SnapshotInterval,
		SnapshotThreshold: cfg.SnapshotThreshold, HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout}
	if n.alone(has, cfg, snaps) {
		// A zone of one server elects itself sooner; AddVoter restores the
		// normal timeouts before a second server joins. The leader lease
		// cannot be changed later, so it stays long enough for the
		// heartbeats of a bigger cluster (a tenth of the timeout).
		n.single = true
		cfg.HeartbeatTimeout /= 2
		cfg.ElectionTimeout /= 2
		cfg.LeaderLeaseTimeout = cfg.HeartbeatTimeout
	}
	if n.raft, err = raft.NewRaft(cfg, n.fsm, n.log, n.logs, snaps, n.trans); err != nil {
		n.close()
		return nil, fmt.Errorf("start replication: %w", err)
	}
	if !has && o.Bootstrap {
		n.booted = true
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
			{Suffrage: raft.Voter, ID: raft.ServerID(o.ID), Address: raft.ServerAddress(o.Advertise)}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.Shutdown()
			return nil, fmt.Errorf("bootstrap replication: %w", err)
		}
	}
	return n, nil
}

func (n *Node) close() {
	if n.trans != nil {
		n.trans.Close()
	}
	if n.logs != nil {
		n.logs.Close()
	}
}

// Shutdown leaves the cluster's traffic (not its membership) and closes
// the log. Later calls do nothing.
func (n *Node) Shutdown() error {
	var err error
	n.shutdown.Do(func() {
		err = n.raft.Shutdown().Error()
		n.close()
	})
	return err
}

func (n *Node) onApplied(uint64) {
	n.mu.Lock()
	close(n.applied)
	n.applied = make(chan struct{})
	n.mu.Unlock()
}

// AppliedIndex is the last log index applied to this server's store.
func (n *Node) AppliedIndex() uint64 { return n.fsm.applied.Load() }

// WaitApplied returns once this server's store holds log index idx, so a
// client that wrote through one server reads its write there.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		n.mu.Lock()
		ch := n.applied
		n.mu.Unlock()
		if n.fsm.applied.Load() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errkind.New(errkind.Unavailable, "this server has not yet received change %d from the leader: try again", idx)
		}
	}
}

// WaitSingleLeader waits, on a server that is its cluster's only voter,
// until it has elected itself, so that it takes writes as soon as it
// listens. Elsewhere it returns at once: peers need this server answering.
func (n *Node) WaitSingleLeader(timeout time.Duration) {
	if !n.single {
		return
	}
	deadline := time.Now().Add(timeout)
	for !n.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// Bootstrapped reports whether this start made a new cluster.
func (n *Node) Bootstrapped() bool { return n.booted }

// IsLeader reports whether this server leads the cluster now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's server id and address, empty while none is known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// Propose applies c through the leader and waits until this server's store
// holds it. A command's own failure (not found, exists, ...) comes back as
// its error; no leader within proposeWait is Unavailable.
func (n *Node) Propose(c zone.Command) error {
	ctx, cancel := context.WithTimeout(context.Background(), proposeWait)
	defer cancel()
	for {
		if n.IsLeader() {
			_, err := n.ApplyLeader(c)
			if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
				return err
			}
		} else if _, addr := n.Leader(); addr != "" && n.opts.Forward != nil {
			e, err := n.forward(ctx, addr, c)
			if err == nil {
				// The leader answers before it knows the command's
				// outcome: this server's own apply tells it.
				refusal, known := n.fsm.outcome(e.Index)
				if refusal != nil {
					return refusal
				}
				return n.checkApplied(c, e.Index, known)
			}
			if !errors.Is(err, ErrNotDelivered) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return errkind.New(errkind.Unavailable, "the zone's servers have no leader to accept changes (a majority of them must be running): try again shortly")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// forward sends c to the leader at addr and returns once this server's
// store holds c's committed entry. That is when the leader's answer names
// the entry (applyOwn), or sooner, when this server's own log receives the
// entry and that makes it committed (selfCommitted): the leader's answer
// is then still on its way, and is left to arrive on its own.
func (n *Node) forward(ctx context.Context, addr string, c zone.Command) (Entry, error) {
	token := n.newToken()
	stored, stop, _ := n.log.waiters.await(token) // a new token: never awaited yet
	defer stop()
	n.forwarding.Add(1)
	var once sync.Once
	answered := func() { once.Do(n.forwardAnswered) }
	defer answered()

	type result struct {
		e   Entry
		err error
	}
	res := make(chan result, 1)
	go func() {
		// Not bound to ctx: ending a request in flight would close the
		// peer connection, which the next command would have to open
		// again (a TLS handshake).
		fctx, cancel := context.WithTimeout(context.Background(), forwardWait)
		defer cancel()
		e, err := n.opts.Forward(fctx, addr, c, token)
		res <- result{e, err}
	}()
	for {
		select {
		case e := <-stored:
			if n.selfCommitted(e) {
				ok, err := n.fsm.applyCommitted(n.log, e.Index, e.Term, true)
				answered()
				if err != nil {
					return Entry{}, errkind.Wrap(errkind.Unavailable, fmt.Errorf("change %d: %w", e.Index, err))
				}
				if ok {
					return e, nil
				}
			}
			stored = nil // the leader's answer decides
		case r := <-res:
			if r.err != nil {
				return Entry{}, r.err
			}
			return r.e, n.applyOwn(ctx, r.e, answered)
		case <-ctx.Done():
			return Entry{}, errkind.New(errkind.Unavailable, "the zone's leader has not answered: try again shortly")
		}
	}
}

// selfCommitted reports whether this server's log receiving e, a forwarded
// command's entry, makes e committed, so that this server may apply it
// without the leader's word. Raft commits an entry of the leader's own
// term once a majority of the voters stores it. The leader stores its
// entries before it sends them (hashicorp/raft's dispatchLogs), so with
// this server storing e as well, two voters hold it: a majority when
// there are at most three, both being voters. e must be of the term this
// server is in: an entry of an earlier term, sent on by a later leader,
// is not committed by a majority holding it (raft's figure 8). A
// membership change between the applied entries and e (in the same
// batch, not yet taken in by raft) is left to the leader's answer by
// applyCommitted.
func (n *Node) selfCommitted(e Entry) bool {
	if n.raft == nil || e.Term == 0 || e.Term != n.raft.CurrentTerm() || n.raft.State() != raft.Follower {
		return false
	}
	_, leader := n.raft.LeaderWithID()
	cfg := n.raft.GetConfiguration()
	if cfg.Error() != nil {
		return false
	}
	return twoMakeMajority(cfg.Configuration(), raft.ServerID(n.opts.ID), leader)
}

// twoMakeMajority reports whether a and b, distinct voters of cfg, are a
// majority of its voters.
func twoMakeMajority(cfg raft.Configuration, a, b raft.ServerID) bool {
	if a == "" || b == "" || a == b {
		return false
	}
	voters, have := 0, 0
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if s.ID == a || s.ID == b {
			have++
		}
	}
	return have == 2 && voters <= 3
}

// newToken returns a token unique to one forwarded command's entry: this
// server's random prefix and a counter.
func (n *Node) newToken() []byte {
	return binary.BigEndian.AppendUint64(n.tokenPrefix[:len(n.tokenPrefix):len(n.tokenPrefix)], n.tokens.Add(1))
}

// tokenSize is the length of the tokens forwarded commands carry.
const tokenSize = 16

// applyOwn returns once this server's store holds the committed entry e.
// It applies the entries up to e from this server's own log as soon as
// that holds e, rather than wait for raft to tell it of the commit (with
// the leader's next log entry, or at its commit timeout, 5 to 10 ms
// later); until then it waits for raft to store or apply more.
// tried is called once, after the first attempt.
func (n *Node) applyOwn(ctx context.Context, e Entry, tried func()) error {
	for first := true; ; first = false {
		stored := n.log.storedCh()
		n.mu.Lock()
		applied := n.applied
		n.mu.Unlock()
		ok, err := n.fsm.applyCommitted(n.log, e.Index, e.Term, false)
		if first {
			tried()
		}
		if err != nil {
			return errkind.Wrap(errkind.Unavailable, fmt.Errorf("change %d: %w", e.Index, err))
		}
		if ok {
			return nil
		}
		select {
		case <-stored:
		case <-applied:
		case <-ctx.Done():
			return errkind.New(errkind.Unavailable, "this server has not yet received change %d from the leader: try again", e.Index)
		}
	}
}

// holdMax bounds how long holdApply keeps raft's apply of a batch
// waiting: about a forwarded command's round trip to the leader.
const holdMax = 3 * time.Millisecond

// holdApply runs in raft's FSM goroutine before it applies a batch up to
// last. On a follower with forwarded commands awaiting the leader's
// answer, the batch waits for those answers (at most holdFor): each
// answer's own apply (applyOwn) takes the batch's entries with the
// command's in one store commit, instead of the command's commit
// queueing behind the batch's. A follower learns that an entry is
// committed with the next one (raft sends the commit index with it), so
// the entry before a forwarded command is about to be applied just as
// the command's answer is on its way.
func (n *Node) holdApply(last uint64) {
	if n.forwarding.Load() == 0 || (n.raft != nil && n.IsLeader()) {
		return
	}
	t := time.NewTimer(n.holdFor)
	defer t.Stop()
	for {
		n.mu.Lock()
		answered, applied := n.answered, n.applied
		n.mu.Unlock()
		if n.forwarding.Load() == 0 || n.fsm.applied.Load() >= last {
			return
		}
		select {
		case <-answered:
		case <-applied:
		case <-t.C:
			return
		}
	}
}

// forwardAnswered ends a forwarded command's wait for the leader's answer
// (holdApply): its first own apply was tried, or it failed.
func (n *Node) forwardAnswered() {
	n.forwarding.Add(-1)
	n.mu.Lock()
	close(n.answered)
	n.answered = make(chan struct{})
	n.mu.Unlock()
}

// notifyingLog is the raft log that tells applyOwn when raft stored
// entries in it, and forward when it stored the entry of its token.
type notifyingLog struct {
	raft.LogStore
	mu      sync.Mutex
	stored  chan struct{} // closed and replaced after each store
	waiters tokenWaiters  // told an entry once stored
}

func (l *notifyingLog) storedCh() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stored
}

func (l *notifyingLog) wake(es []*raft.Log, err error) {
	l.mu.Lock()
	close(l.stored)
	l.stored = make(chan struct{})
	l.mu.Unlock()
	if err == nil {
		l.waiters.tell(es)
	}
}

// IsMonotonic tells raft that the log under it (raft-wal) takes no gaps:
// after installing a snapshot raft then empties the log rather than keep
// entries before the snapshot's index.
func (l *notifyingLog) IsMonotonic() bool {
	m, ok := l.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (l *notifyingLog) StoreLog(e *raft.Log) error {
	err := l.LogStore.StoreLog(e)
	l.wake([]*raft.Log{e}, err)
	return err
}

func (l *notifyingLog) StoreLogs(es []*raft.Log) error {
	err := l.LogStore.StoreLogs(es)
	l.wake(es, err)
	return err
}

// checkApplied makes sure that a command committed at idx, and not
// refused, is in this server's store, before this server answers success
// for it: a store out of step with the log (it skipped the entry) must
// say so. known says whether this server applied idx itself; if not (it
// came within a store copy), a command missing from the store was
// refused for a reason this server cannot tell.
func (n *Node) checkApplied(c zone.Command, idx uint64, known bool) error {
	if c.ID == "" {
		return nil
	}
	var ok bool
	if err := n.opts.Store.View(func(tx *bolt.Tx) error { ok = store.CommandApplied(tx, c.ID); return nil }); err != nil {
		return err
	}
	if !ok && !known {
		return errkind.New(errkind.Refused, "the zone refused %s (change %d); this server received it within a store copy, which does not say why: "+
			"check the zone's state and try again", c.Name, idx)
	}
	if !ok {
		n.note(fmt.Sprintf("change %d (%s) was committed but is not in this server's store", idx, c.Name))
		return errkind.New(errkind.Unavailable, "the leader committed %s as change %d but this server's store does not hold it: "+
			"its store is out of step with the zone's replication log (see docs/cluster.md, 'Lost replication logs'); "+
			"the change is in the zone, read it from the leader", c.Name, idx)
	}
	return nil
}

// ApplyLeader applies c on the leader and returns its log index. It fails
// with raft.ErrNotLeader on a follower.
func (n *Node) ApplyLeader(c zone.Command) (uint64, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("encode command %s: %w", c.Name, err)
	}
	f := n.raft.Apply(data, 10*time.Second)
	return applied(c, f)
}

// applied waits for f, raft's apply of c, and returns its log index and
// the command's refusal, if any.
func applied(c zone.Command, f raft.ApplyFuture) (uint64, error) {
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, err
		}
		return 0, errkind.Wrap(errkind.Unavailable, fmt.Errorf("replicate %s: %w", c.Name, err))
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return f.Index(), err
	}
	return f.Index(), nil
}

// ApplyForwarded is ApplyLeader for a command a follower forwarded: it
// returns the command's entry, with which the follower applies the
// command from its own log (applyOwn). With committed, it returns as
// soon as the entry is committed, before this server's store holds it
// and without the command's outcome: the follower learns that from its
// own apply, which then runs alongside the leader's. The entry carries
// token, the follower's (tokenSize bytes), else one of this server's.
func (n *Node) ApplyForwarded(c zone.Command, committed bool, token []byte) (Entry, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return Entry{}, fmt.Errorf("encode command %s: %w", c.Name, err)
	}
	// The token tells the FSM, and the follower's log, which entry is
	// this command's.
	if len(token) != tokenSize {
		token = n.newToken()
	}
	commit, stop, ok := n.fsm.committed.await(token)
	if !ok { // a token in use already (a follower's resend): one of ours
		token = n.newToken()
		commit, stop, _ = n.fsm.committed.await(token)
	}
	defer stop()
	f := n.raft.ApplyLog(raft.Log{Data: data, Extensions: token}, 10*time.Second)
	if committed {
		done := make(chan struct{})
		go func() { f.Error(); close(done) }()
		select {
		case e := <-commit:
			return e, nil
		case <-done: // failed, most likely
		}
	}
	if _, err := applied(c, f); err != nil {
		return Entry{}, err
	}
	select {
	case e := <-commit:
		return e, nil
	default: // cannot be: the FSM tells the commit before it applies
		return Entry{Index: f.Index()}, nil
	}
}

// AddVoter makes the server id at addr a voting member (leader only).
func (n *Node) AddVoter(id, addr string) error {
	if err := n.raft.ReloadConfig(n.normal); err != nil {
		return fmt.Errorf("replication timeouts: %w", err)
	}
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 30*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return err
		}
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("add server to replication: %w", err))
	}
	return nil
}

// AddNonvoter makes the server id at addr a member that receives the log
// but does not vote (leader only): a joining server, until it caught up.
func (n *Node) AddNonvoter(id, addr string) error {
	if err := n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 30*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return err
		}
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("add server to replication: %w", err))
	}
	return nil
}

// RemoveServer takes the server out of the cluster (leader only).
func (n *Node) RemoveServer(id string) error {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return err
		}
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("remove server from replication: %w", err))
	}
	return nil
}

// TransferLeadership hands leadership to the voter id at addr (leader only).
func (n *Node) TransferLeadership(id, addr string) error {
	if err := n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return err
		}
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("move the leadership: %w", err))
	}
	return nil
}

// Member is one server of the replication cluster.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

// Members lists the cluster's configuration, by id.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Status is this server's view of replication.
type Status struct {
	ID          string    `json:"id"`
	State       string    `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID    string    `json:"leader_id,omitempty"`
	Term        uint64    `json:"term"`
	LastIndex   uint64    `json:"last_index"`
	CommitIndex uint64    `json:"commit_index"`
	Applied     uint64    `json:"applied_index"`
	LastContact time.Time `json:"last_contact,omitzero"` // followers: last word from the leader
	Voter       bool      `json:"voter"`
	Incarnation string    `json:"incarnation,omitempty"`
	Problem     string    `json:"problem,omitempty"` // the last replication problem, within 5 minutes
}

// Status reports this server's replication state.
func (n *Node) Status() Status {
	st := n.raft.Stats()
	num := func(k string) uint64 { v, _ := strconv.ParseUint(st[k], 10, 64); return v }
	s := Status{ID: n.opts.ID, State: n.raft.State().String(), Term: num("term"), LastIndex: num("last_log_index"),
		CommitIndex: num("commit_index"), Applied: max(n.AppliedIndex(), num("applied_index"))}
	s.LeaderID, _ = n.Leader()
	s.Incarnation = n.Incarnation().String()
	if m, err := n.Members(); err == nil {
		for _, x := range m {
			if x.ID == n.opts.ID {
				s.Voter = x.Voter
			}
		}
	}
	if p, ok := n.problem.Load().(problemNote); ok && time.Since(p.at) < 5*time.Minute {
		s.Problem = p.msg
	}
	if t := n.raft.LastContact(); !t.IsZero() && s.State != raft.Leader.String() {
		s.LastContact = t.UTC()
	}
	return s
}

// ServeUpgrade turns an authorized peer's HTTP request into a raft stream.
// The caller has checked the peer's certificate; this checks that the peer
// belongs to the same zone and cluster incarnation.
func (n *Node) ServeUpgrade(w http.ResponseWriter, r *http.Request) {
	if code, msg := n.admit(r.Header); code != 0 {
		w.Header().Set(HeaderIncarnation, n.Incarnation().String())
		http.Error(w, msg, code)
		return
	}
	n.layer.serveUpgrade(w, r)
}

// Headers of a raft stream's upgrade request.
const (
	HeaderZone        = "X-Zonekit-Zone"
	HeaderIncarnation = "X-Zonekit-Incarnation"
	HeaderFrom        = "X-Zonekit-From" // where the dialing server is reached
	HeaderVersion     = "X-Zonekit-Version"
)

// Incarnation is the cluster incarnation this server's store follows.
func (n *Node) Incarnation() store.Incarnation {
	inc, _ := n.inc.Load().(store.Incarnation)
	return inc
}

func (n *Node) loadIncarnation() error {
	var inc store.Incarnation
	if err := n.opts.Store.View(func(tx *bolt.Tx) error { inc = store.IncarnationOf(tx); return nil }); err != nil {
		return fmt.Errorf("replication: %w", err)
	}
	n.inc.Store(inc)
	return nil
}

// hello is what this server says of itself when it opens a raft stream.
func (n *Node) hello() http.Header {
	h := http.Header{}
	h.Set(HeaderZone, n.opts.ZoneID)
	h.Set(HeaderIncarnation, n.Incarnation().String())
	h.Set(HeaderFrom, n.opts.Advertise)
	h.Set(HeaderVersion, version.String())
	return h
}

// admit decides whether a peer's raft stream may open: same zone, same
// incarnation. A peer of a newer incarnation while this server has no
// log of its own (it lost it, or was restored) re-seeds this server's
// store from that peer; the stream is taken on a later attempt.
func (n *Node) admit(h http.Header) (int, string) {
	if h.Get(HeaderZone) == "" && h.Get(HeaderVersion) == "" && n.Incarnation().Gen == 0 {
		// A server of the same series from before incarnations (a rolling
		// upgrade): its store and this one follow the same unnamed log.
		return 0, ""
	}
	if z := h.Get(HeaderZone); z != n.opts.ZoneID {
		n.note(fmt.Sprintf("refused a replication stream from %s of zone %q", h.Get(HeaderFrom), z))
		return http.StatusForbidden, fmt.Sprintf("this server belongs to zone %s, not %s", n.opts.ZoneID, z)
	}
	if err := version.Compatible(h.Get(HeaderVersion), version.String()); err != nil {
		n.note(fmt.Sprintf("refused a replication stream from %s: %v", h.Get(HeaderFrom), err))
		return http.StatusConflict, err.Error()
	}
	remote, err := store.ParseIncarnation(h.Get(HeaderIncarnation))
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	local := n.Incarnation()
	if remote == local {
		return 0, ""
	}
	from := h.Get(HeaderFrom)
	if remote.Gen > local.Gen && n.LogEmpty() && from != "" && n.opts.FetchStore != nil {
		go n.reseed(from, remote)
		return http.StatusConflict, fmt.Sprintf("this server follows cluster incarnation %q and is copying the store of incarnation %q: try again shortly", local, remote)
	}
	msg := fmt.Sprintf("refused a replication stream from %s: it follows cluster incarnation %q, this server %q", from, remote, local)
	if remote.Gen > local.Gen {
		msg += " (this server's replication log is older: run 'zconfigure -c RecoverCluster --rejoin' here)"
	}
	n.note(msg)
	return http.StatusConflict, fmt.Sprintf("this server follows cluster incarnation %q, not %q", local, remote)
}

// refused is called when a peer refused a stream this server opened.
func (n *Node) refused(addr string, status int, msg string, remote string) {
	inc, _ := store.ParseIncarnation(remote)
	if status == http.StatusConflict && inc.Gen < n.Incarnation().Gen {
		return // a peer of an older incarnation: it re-seeds itself or says why in its own log
	}
	m := fmt.Sprintf("replication stream to %s refused (%d): %s", addr, status, msg)
	if inc.Gen > n.Incarnation().Gen {
		m += fmt.Sprintf("; %s follows a newer cluster incarnation (%q): this server's log is out of date, run 'zconfigure -c RecoverCluster --rejoin' here", addr, inc)
	}
	n.note(m)
}

type problemNote struct {
	msg string
	at  time.Time
}

// note records a replication problem for Status and the log (once per
// message and minute, so a refused peer retrying does not flood it).
func (n *Node) note(msg string) {
	if p, ok := n.problem.Load().(problemNote); ok && p.msg == msg && time.Since(p.at) < time.Minute {
		return
	}
	n.problem.Store(problemNote{msg: msg, at: time.Now()})
	if n.opts.Log != nil {
		n.opts.Log.Warn("replication: " + msg)
	}
}

// LogEmpty reports whether this server holds no replication log entry:
// a new member, a restored server, or one that lost its log.
func (n *Node) LogEmpty() bool {
	last, err := n.logs.LastIndex()
	return err == nil && last == 0
}

// reseed replaces the store with a copy from the server at addr, which
// follows the newer incarnation want. Entries of the new log are then
// applied on top of that copy: none is skipped because of an index that
// belonged to an older log.
func (n *Node) reseed(addr string, want store.Incarnation) {
	if !n.reseedMu.TryLock() {
		return
	}
	defer n.reseedMu.Unlock()
	if n.Incarnation() == want || !n.LogEmpty() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rc, err := n.opts.FetchStore(ctx, addr)
	if err != nil {
		n.note(fmt.Sprintf("re-seeding the store from %s failed: %v", addr, err))
		return
	}
	if err := n.fsm.Restore(rc); err != nil {
		n.note(fmt.Sprintf("re-seeding the store from %s failed: %v", addr, err))
		return
	}
	if err := n.loadIncarnation(); err != nil {
		n.note(err.Error())
		return
	}
	if n.opts.Log != nil {
		n.opts.Log.Warn("replication: re-seeded the zone store from a server of a newer cluster incarnation", "from", addr,
			"incarnation", n.Incarnation().String(), "applied_index", n.AppliedIndex())
	}
}
