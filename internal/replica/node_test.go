package replica

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

func newTestNode(t *testing.T) *Node {
	t.Helper()
	st := newStore(t)
	n := &Node{opts: Options{Store: st}, applied: make(chan struct{}), answered: make(chan struct{}), log: &notifyingLog{LogStore: raft.NewInmemStore(), stored: make(chan struct{})}}
	var err error
	if n.fsm, err = newFSM(st, n.onApplied); err != nil {
		t.Fatal(err)
	}
	return n
}

// A follower whose log does not yet hold the committed entry the leader
// named waits until raft stores it (or replaces a deposed leader's entry
// there), then applies it itself; without it, it gives up when ctx ends.
func TestApplyOwnWaitsForTheEntry(t *testing.T) {
	n := newTestNode(t)
	// A deposed leader's entry 2 (term 1); the committed one is of term 2.
	if err := n.log.StoreLogs([]*raft.Log{termed(t, 1, 1, "a"), termed(t, 2, 1, "stale")}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.applyOwn(context.Background(), Entry{Index: 3, Term: 2}, func() {}) }()
	select {
	case err := <-done:
		t.Fatalf("returned (%v) before the log held entry 3", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := n.log.DeleteRange(2, 2); err != nil {
		t.Fatal(err)
	}
	if err := n.log.StoreLogs([]*raft.Log{termed(t, 2, 2, "b"), termed(t, 3, 2, "c")}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after the log received entry 3")
	}
	if g := groups(t, n.opts.Store); len(g) != 3 || g[0] != "a" || g[1] != "b" || g[2] != "c" {
		t.Fatalf("groups %v, want a b c", g)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.applyOwn(ctx, Entry{Index: 9, Term: 2}, func() {}); !errkind.Is(err, errkind.Unavailable) {
		t.Fatalf("entry never received: %v, want Unavailable", err)
	}
}

// An entry raft applied first (it learned the commit index meanwhile)
// needs nothing more.
func TestApplyOwnAfterRaft(t *testing.T) {
	n := newTestNode(t)
	es := []*raft.Log{termed(t, 1, 1, "a")}
	n.log.StoreLogs(es)
	n.fsm.ApplyBatch(es)
	if err := n.applyOwn(context.Background(), Entry{Index: 1}, func() {}); err != nil {
		t.Fatal(err)
	}
}

// A one-voter raft with n's FSM, in memory.
func startRaft(t *testing.T, n *Node) {
	t.Helper()
	cfg := raft.DefaultConfig()
	cfg.LocalID = "s1"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.LogOutput = io.Discard
	addr, trans := raft.NewInmemTransport("")
	r, err := raft.NewRaft(cfg, n.fsm, n.log, raft.NewInmemStore(), raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "s1", Address: addr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	n.raft = r
	deadline := time.Now().Add(5 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func command(t *testing.T, id, name string) zone.Command {
	t.Helper()
	raw, err := json.Marshal(group(name))
	if err != nil {
		t.Fatal(err)
	}
	return zone.Command{ID: id, Name: zone.CmdGroupCreate, Actor: "test", Time: time.Unix(1700000000, 0).UTC(), Data: raw}
}

// The leader answers a forwarded command with its own entry (index and
// term of the entry that carries it). Asked to answer at the commit, it
// leaves the outcome to the follower: a refused command is answered
// with its entry, and the follower's apply of that entry refuses it.
func TestApplyForwarded(t *testing.T) {
	n := newTestNode(t)
	startRaft(t, n)
	e, err := n.ApplyForwarded(command(t, "c1", "lab"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := n.log.GetLog(e.Index, &l); err != nil {
		t.Fatal(err)
	}
	var c zone.Command
	if err := json.Unmarshal(l.Data, &c); err != nil || c.ID != "c1" || l.Term != e.Term || e.Term == 0 {
		t.Fatalf("answered %+v; the log holds %s (term %d) there", e, c.ID, l.Term)
	}
	if err := n.WaitApplied(context.Background(), e.Index); err != nil {
		t.Fatal(err)
	}

	// Another command of the same name: refused by the FSM.
	e2, err := n.ApplyForwarded(command(t, "c2", "lab"), true, nil)
	if err != nil {
		t.Fatalf("answered at the commit: %v, want the entry", err)
	}
	if e2.Index <= e.Index {
		t.Fatalf("entry %d after entry %d", e2.Index, e.Index)
	}
	if err := n.WaitApplied(context.Background(), e2.Index); err != nil {
		t.Fatal(err)
	}
	if err, known := n.fsm.outcome(e2.Index); !known || !errkind.Is(err, errkind.Exists) {
		t.Fatalf("outcome %v (known %v), want exists", err, known)
	}
	// Answered after the leader's apply, the refusal comes back itself.
	if _, err := n.ApplyForwarded(command(t, "c3", "lab"), false, nil); !errkind.Is(err, errkind.Exists) {
		t.Fatalf("answered after the apply: %v, want exists", err)
	}
	if w := n.fsm.committed.len(); w != 0 {
		t.Fatalf("waiters left: %d", w)
	}
}

// While a forwarded command awaits the leader's answer, raft's apply of
// an earlier entry waits for it, and the command's own apply takes both
// in one store commit; with no answer, raft's apply goes on after
// holdFor.
func TestHoldApplyForAnswer(t *testing.T) {
	n := newTestNode(t)
	var mu sync.Mutex
	var commits []uint64
	n.fsm.notify = func(i uint64) {
		mu.Lock()
		commits = append(commits, i)
		mu.Unlock()
		n.onApplied(i)
	}
	n.fsm.hold = n.holdApply
	n.holdFor = time.Hour // the answer ends the hold
	es := []*raft.Log{termed(t, 1, 1, "a"), termed(t, 2, 1, "b")}
	n.log.StoreLogs(es)

	n.forwarding.Add(1) // a command forwarded, its answer on the way
	raftDone := make(chan struct{})
	go func() { n.fsm.ApplyBatch(es[:1]); close(raftDone) }() // raft learned entry 1 is committed
	time.Sleep(5 * time.Millisecond)
	if a := n.fsm.applied.Load(); a != 0 {
		t.Fatalf("raft applied up to %d while a forwarded command awaited its answer", a)
	}
	if err := n.applyOwn(context.Background(), Entry{Index: 2, Term: 1}, n.forwardAnswered); err != nil {
		t.Fatal(err)
	}
	<-raftDone
	mu.Lock()
	if len(commits) != 1 || commits[0] != 2 {
		t.Errorf("store commits up to %v, want one up to 2", commits)
	}
	commits = nil
	mu.Unlock()

	n.log.StoreLogs([]*raft.Log{termed(t, 3, 1, "c")})
	n.forwarding.Add(1) // no answer comes
	n.holdFor = 20 * time.Millisecond
	start := time.Now()
	n.fsm.ApplyBatch([]*raft.Log{termed(t, 3, 1, "c")})
	if d := time.Since(start); d < n.holdFor {
		t.Errorf("raft's apply went on after %v, before holdFor", d)
	}
	if n.fsm.applied.Load() != 3 {
		t.Errorf("applied %d after the hold, want 3", n.fsm.applied.Load())
	}
}
