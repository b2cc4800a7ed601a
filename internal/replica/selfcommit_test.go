package replica

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"zonekit/internal/zone"
)

// testCluster is k voters in memory, each a Node with its own store.
type testCluster struct {
	nodes []*Node
	trans []*raft.InmemTransport
	addrs []raft.ServerAddress
}

func startCluster(t *testing.T, k int) *testCluster {
	t.Helper()
	c := &testCluster{}
	for i := range k {
		n := newTestNode(t)
		// The log on disk, as a server keeps it, in segments small enough
		// that compaction removes whole ones.
		logs, err := openLogSized(t.TempDir(), func(string) error { return nil }, 1024)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logs.Close() })
		n.logs, n.log.LogStore = logs, logs
		n.opts.ID = fmt.Sprintf("s%d", i+1)
		n.fsm.hold = n.holdApply
		n.holdFor = holdMax
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(n.opts.ID))
		c.nodes, c.trans, c.addrs = append(c.nodes, n), append(c.trans, trans), append(c.addrs, addr)
	}
	for i := range c.trans {
		for j := range c.trans {
			if i != j {
				c.trans[i].Connect(c.addrs[j], c.trans[j])
			}
		}
	}
	var servers []raft.Server
	for i, n := range c.nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.opts.ID), Address: c.addrs[i]})
	}
	for i, n := range c.nodes {
		cfg := raft.DefaultConfig()
		cfg.LocalID = raft.ServerID(n.opts.ID)
		cfg.HeartbeatTimeout = 100 * time.Millisecond
		cfg.ElectionTimeout = 100 * time.Millisecond
		cfg.LeaderLeaseTimeout = 50 * time.Millisecond
		cfg.CommitTimeout = 5 * time.Millisecond
		cfg.LogOutput = io.Discard
		if os.Getenv("RAFTLOG") != "" {
			cfg.LogOutput = os.Stderr
		}
		cfg.TrailingLogs = 10
		r, err := raft.NewRaft(cfg, n.fsm, n.log, n.logs, raft.NewInmemSnapshotStore(), c.trans[i])
		if err != nil {
			t.Fatal(err)
		}
		n.raft = r
		t.Cleanup(func() { r.Shutdown().Error() })
	}
	if err := c.nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	l := c.leader(t)
	// A first command takes every store past the membership entries,
	// which a follower leaves to the leader's answer.
	idx, err := l.ApplyLeader(command(t, "warm", "warm"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.WaitApplied(ctx, idx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// leader waits for a leader that every other running node knows.
func (c *testCluster) leader(t *testing.T) *Node {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n.raft.State() != raft.Leader {
				continue
			}
			known := true
			for _, o := range c.nodes {
				if _, id := o.raft.LeaderWithID(); o != n && o.raft.State() == raft.Follower && string(id) != n.opts.ID {
					known = false
				}
			}
			if known {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return nil
}

// forwardTo makes n forward to the node leading now through ApplyForwarded.
// The leader's answer reaches n only once release is closed, as if it
// were slow or lost (the leader crashed before it answered).
func (c *testCluster) forwardTo(n *Node, release <-chan struct{}, answered *int) {
	var mu sync.Mutex
	n.opts.Forward = func(ctx context.Context, addr string, cmd zone.Command, token []byte) (Entry, error) {
		l := c.nodes[slices.Index(c.addrs, raft.ServerAddress(addr))]
		e, err := l.ApplyForwarded(cmd, true, token)
		select {
		case <-release:
		case <-ctx.Done():
			return Entry{}, fmt.Errorf("%w: %v", ErrNotDelivered, ctx.Err())
		}
		mu.Lock()
		*answered++
		mu.Unlock()
		return e, err
	}
}

func follower(c *testCluster, leader *Node) *Node {
	for _, n := range c.nodes {
		if n != leader {
			return n
		}
	}
	return nil
}

// In a zone of three servers, a follower answers its forwarded command
// as soon as its own log holds it (it and the leader are a majority),
// without the leader's answer; the store holds it then.
func TestProposeSelfCommits(t *testing.T) {
	c := startCluster(t, 3)
	f := follower(c, c.leader(t))
	never := make(chan struct{})
	answered := 0
	c.forwardTo(f, never, &answered)
	done := make(chan error, 1)
	go func() { done <- f.Propose(command(t, "c1", "lab")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follower waited for the leader's answer")
	}
	if g := groups(t, f.opts.Store); !slices.Contains(g, "lab") {
		t.Fatalf("answered, but its store holds %v", g)
	}
	if answered != 0 {
		t.Fatal("the leader's answer was used")
	}
}

// With four voters, the follower and the leader are not a majority: the
// follower waits for the leader's answer.
func TestProposeWaitsForAnswerWithFourVoters(t *testing.T) {
	c := startCluster(t, 4)
	f := follower(c, c.leader(t))
	release := make(chan struct{})
	answered := 0
	c.forwardTo(f, release, &answered)
	done := make(chan error, 1)
	go func() { done <- f.Propose(command(t, "c1", "lab")) }()
	select {
	case err := <-done:
		t.Fatalf("answered (%v) without the leader's word or a majority", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if answered != 1 {
		t.Fatalf("answers used: %d, want 1", answered)
	}
}

// A membership change among the entries a follower has not applied may
// not have been taken in by raft when the command's entry arrives (raft
// stores a batch before it reads its configuration entries): the
// follower's own apply then leaves the command to the leader's answer.
func TestApplyCommittedStopsAtMembershipChange(t *testing.T) {
	f, err := newFSM(newStore(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := raft.NewInmemStore()
	change := &raft.Log{Index: 2, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{})}
	if err := logs.StoreLogs([]*raft.Log{termed(t, 1, 1, "a"), change, termed(t, 3, 1, "b")}); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.applyCommitted(logs, 3, 1, true); ok || err != nil || f.applied.Load() != 0 {
		t.Fatalf("applied up to %d past a membership change (%v, %v)", f.applied.Load(), ok, err)
	}
	if ok, err := f.applyCommitted(logs, 3, 1, false); !ok || err != nil || f.applied.Load() != 3 {
		t.Fatalf("with the leader's word: applied up to %d (%v, %v), want 3", f.applied.Load(), ok, err)
	}
}

// The claim: a follower that answers a command from its own log answers
// only a committed one. Here the third server never hears of the
// command and the leader is gone the moment the follower has answered;
// the command must survive in the new leader's zone, and reach the third
// server, whichever of the two wins the election.
func TestSelfCommittedSurvivesLeaderLoss(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			c := startCluster(t, 3)
			l := c.leader(t)
			li := slices.Index(c.nodes, l)
			f := follower(c, l)
			var third *Node
			for _, n := range c.nodes {
				if n != l && n != f {
					third = n
				}
			}
			ti := slices.Index(c.nodes, third)
			// The leader cannot reach the third server.
			c.trans[li].Disconnect(c.addrs[ti])
			c.trans[ti].Disconnect(c.addrs[li])
			never := make(chan struct{})
			answered := 0
			c.forwardTo(f, never, &answered)
			if err := f.Propose(command(t, "c1", "lab")); err != nil {
				t.Fatal(err)
			}
			if err := l.raft.Shutdown().Error(); err != nil {
				t.Fatal(err)
			}
			c.trans[li].DisconnectAll()
			rest := &testCluster{nodes: []*Node{f, third}}
			nl := rest.leader(t)
			if nl != f {
				t.Fatalf("%s won the election without the command in its log", nl.opts.ID)
			}
			// The new leader commits the entry with one of its own term.
			if err := nl.Propose(command(t, "c2", "after")); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !slices.Contains(groups(t, third.opts.Store), "lab") {
				if time.Now().After(deadline) {
					t.Fatalf("the third server's store holds %v, not the answered command", groups(t, third.opts.Store))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// Two voters of three make a majority; any other count does not.
func TestTwoMakeMajority(t *testing.T) {
	cfg := func(voters, nonvoters int) raft.Configuration {
		var c raft.Configuration
		for i := range voters {
			c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprintf("s%d", i+1))})
		}
		for i := range nonvoters {
			c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Nonvoter, ID: raft.ServerID(fmt.Sprintf("n%d", i+1))})
		}
		return c
	}
	for _, tc := range []struct {
		cfg  raft.Configuration
		a, b raft.ServerID
		want bool
	}{
		{cfg(3, 0), "s1", "s2", true},
		{cfg(2, 0), "s1", "s2", true},
		{cfg(3, 2), "s1", "s3", true},
		{cfg(4, 0), "s1", "s2", false},
		{cfg(5, 0), "s1", "s2", false},
		{cfg(3, 1), "s1", "n1", false}, // a nonvoter holding it counts for nothing
		{cfg(2, 0), "s1", "s3", false}, // not a member
		{cfg(3, 0), "s1", "s1", false},
		{cfg(3, 0), "s1", "", false}, // no leader known
	} {
		if got := twoMakeMajority(tc.cfg, tc.a, tc.b); got != tc.want {
			t.Errorf("%d servers, %s and %s: %v, want %v", len(tc.cfg.Servers), tc.a, tc.b, got, tc.want)
		}
	}
}

// A follower that fell behind the leader's compacted log receives a
// snapshot (a store copy); its log (the WAL, which takes no gaps) starts
// again after it, and it follows new entries from there.
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	c := startCluster(t, 3)
	l := c.leader(t)
	f := follower(c, l)
	fi := slices.Index(c.nodes, f)
	c.trans[fi].DisconnectAll()
	for i := range c.nodes {
		if i != fi {
			c.trans[i].Disconnect(c.addrs[fi])
		}
	}
	for i := range 40 {
		if _, err := c.leader(t).ApplyLeader(command(t, fmt.Sprint("c", i), fmt.Sprint("g", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Both others compact their logs: whichever leads must send a copy.
	for i, n := range c.nodes {
		if i != fi {
			if err := n.raft.Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	behind, _ := f.logs.LastIndex()
	for i := range c.nodes {
		if i != fi {
			c.trans[i].Connect(c.addrs[fi], c.trans[fi])
			c.trans[fi].Connect(c.addrs[i], c.trans[i])
		}
	}
	var last uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The isolated follower's elections may depose the leader once.
		var err error
		if last, err = c.leader(t).ApplyLeader(command(t, "after", "after")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.WaitApplied(ctx, last); err != nil {
		t.Fatalf("follower at %d, leader at %d: %v", f.AppliedIndex(), last, err)
	}
	if g := groups(t, f.opts.Store); len(g) != 42 {
		t.Fatalf("follower holds %d groups, want 42 (warm, 40, after)", len(g))
	}
	first, _ := f.logs.FirstIndex()
	if first <= behind+1 || first > last || f.fsm.restored == 0 {
		t.Fatalf("follower's log starts at %d (it had up to %d), store copy at %d: no snapshot was installed", first, behind, f.fsm.restored)
	}
}
