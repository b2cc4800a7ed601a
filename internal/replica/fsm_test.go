package replica

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "zone.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func entry(t *testing.T, idx uint64, id, name string, data any) *raft.Log {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(zone.Command{ID: id, Name: name, Actor: "test", Time: time.Unix(1700000000, 0).UTC(), Data: raw})
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: idx, Type: raft.LogCommand, Data: c}
}

func groups(t *testing.T, st *store.Store) []string {
	t.Helper()
	gs, err := zone.New(st, nil).Groups()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range gs {
		out = append(out, g.Name)
	}
	return out
}

func group(name string) map[string]any {
	return map[string]any{"name": name, "created": time.Unix(1, 0).UTC()}
}

// A batch with a failing command applies the others and reports the
// failure for that entry only; replays and retried ids change nothing.
func TestApplyBatchSkipsReplaysAndRetries(t *testing.T) {
	st := newStore(t)
	f, err := newFSM(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := f.ApplyBatch([]*raft.Log{
		entry(t, 1, "a", zone.CmdGroupCreate, group("lab")),
		entry(t, 2, "b", zone.CmdGroupCreate, group("lab")), // exists: fails alone
		entry(t, 3, "c", zone.CmdGroupCreate, group("office")),
	})
	if out[0] != nil || out[2] != nil {
		t.Fatalf("responses %v: want nil for entries 1 and 3", out)
	}
	if err, ok := out[1].(error); !ok || errkind.Of(err) != errkind.Exists {
		t.Fatalf("entry 2 response %v: want an Exists error", out[1])
	}
	if got := groups(t, st); len(got) != 2 {
		t.Fatalf("groups %v, want lab and office", got)
	}
	if f.applied.Load() != 3 {
		t.Fatalf("applied index %d, want 3", f.applied.Load())
	}

	// Replayed entries (a restart) are skipped, not applied again.
	if out := f.ApplyBatch([]*raft.Log{entry(t, 3, "c", zone.CmdGroupCreate, group("office"))}); out[0] != nil {
		t.Fatalf("replay answered %v", out[0])
	}
	// The same command id at a new index (a forward retried after a lost
	// answer) is applied once: no Exists error, nothing new.
	if out := f.ApplyBatch([]*raft.Log{entry(t, 4, "c", zone.CmdGroupCreate, group("office"))}); out[0] != nil {
		t.Fatalf("retried command answered %v", out[0])
	}
	// A new FSM over the same store remembers where it was.
	f2, err := newFSM(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f2.applied.Load() != 4 {
		t.Fatalf("reopened applied index %d, want 4", f2.applied.Load())
	}
}

// Snapshot and restore carry the whole store, applied index included.
func TestSnapshotRestore(t *testing.T) {
	src := newStore(t)
	f, _ := newFSM(src, nil)
	f.ApplyBatch([]*raft.Log{entry(t, 7, "x", zone.CmdGroupCreate, group("lab"))})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}

	dst := newStore(t)
	g, _ := newFSM(dst, nil)
	notified := uint64(0)
	g.notify = func(i uint64) { notified = i }
	if err := g.Restore(readCloser{bytes.NewReader(sink.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if got := groups(t, dst); len(got) != 1 || got[0] != "lab" {
		t.Fatalf("restored groups %v", got)
	}
	if g.applied.Load() != 7 || notified != 7 {
		t.Fatalf("applied %d notified %d, want 7", g.applied.Load(), notified)
	}
	// A damaged copy is refused and the store stays as it was.
	if err := g.Restore(readCloser{bytes.NewReader([]byte("not a store"))}); err == nil {
		t.Fatal("a damaged snapshot was accepted")
	}
	if got := groups(t, dst); len(got) != 1 {
		t.Fatalf("groups after a refused restore: %v", got)
	}
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return errors.New("cancelled") }
func (m *memSink) Close() error  { return nil }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// termed is entry with a term, as raft stores it.
func termed(t *testing.T, idx, term uint64, name string) *raft.Log {
	l := entry(t, idx, fmt.Sprintf("cmd-%d-%d", idx, term), zone.CmdGroupCreate, group(name))
	l.Term = term
	return l
}

// A follower told that entry idx of a term is committed applies its own
// log up to it only when that log holds the same entry: not a deposed
// leader's entry at idx, not with entries missing before it. Raft's own
// later apply of the same entries then changes nothing.
func TestApplyCommittedFromOwnLog(t *testing.T) {
	st := newStore(t)
	var notified []uint64
	f, err := newFSM(st, func(i uint64) { notified = append(notified, i) })
	if err != nil {
		t.Fatal(err)
	}
	logs := raft.NewInmemStore()
	es := []*raft.Log{termed(t, 1, 2, "a"), termed(t, 2, 2, "b"), termed(t, 3, 2, "c")}
	if err := logs.StoreLogs(es); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		idx, term uint64
		why       string
	}{{3, 1, "another term's entry 3"}, {4, 2, "an entry not yet received"}, {3, 0, "no term (an older leader)"}} {
		if ok, err := f.applyCommitted(logs, c.idx, c.term, false); ok || err != nil {
			t.Fatalf("%s: applied (%v, %v)", c.why, ok, err)
		}
	}
	if g := groups(t, st); len(g) != 0 {
		t.Fatalf("groups %v applied without a matching entry", g)
	}
	if ok, err := f.applyCommitted(logs, 2, 2, false); !ok || err != nil {
		t.Fatalf("entry 2 of term 2: (%v, %v), want applied", ok, err)
	}
	if g := groups(t, st); len(g) != 2 || f.applied.Load() != 2 {
		t.Fatalf("groups %v, applied %d; want a and b, 2", g, f.applied.Load())
	}
	// Raft learns the commit later and hands the same entries to the FSM.
	if out := f.ApplyBatch(es); out[0] != nil || out[1] != nil || out[2] != nil {
		t.Fatalf("raft's apply after the follower's: %v", out)
	}
	if g := groups(t, st); len(g) != 3 || f.applied.Load() != 3 {
		t.Fatalf("groups %v, applied %d; want a, b, c, 3", g, f.applied.Load())
	}
	if ok, err := f.applyCommitted(logs, 3, 2, false); !ok || err != nil {
		t.Fatalf("an entry already applied: (%v, %v)", ok, err)
	}
	if len(notified) != 2 || notified[0] != 2 || notified[1] != 3 {
		t.Fatalf("waiters told of %v, want [2 3]", notified)
	}

	// A log that lost entries before idx (compacted by a snapshot) is
	// left to raft.
	gap := raft.NewInmemStore()
	gap.StoreLogs([]*raft.Log{termed(t, 5, 2, "e")})
	if ok, err := f.applyCommitted(gap, 5, 2, false); ok || err != nil || f.applied.Load() != 3 {
		t.Fatalf("entry 4 missing: (%v, %v), applied %d", ok, err, f.applied.Load())
	}
}

// Raft's FSM goroutine and a follower's own applies take turns on the
// store (run with -race).
func TestApplyCommittedConcurrent(t *testing.T) {
	st := newStore(t)
	f, err := newFSM(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := raft.NewInmemStore()
	const n = 60
	var es []*raft.Log
	for i := uint64(1); i <= n; i++ {
		es = append(es, termed(t, i, 1, fmt.Sprintf("g%d", i)))
	}
	logs.StoreLogs(es)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, e := range es {
			if out := f.ApplyBatch([]*raft.Log{e}); out[0] != nil {
				t.Errorf("entry %d: %v", e.Index, out[0])
			}
		}
	}()
	for i := uint64(3); i <= n; i += 3 {
		if _, err := f.applyCommitted(logs, i, 1, false); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if g := groups(t, st); len(g) != n || f.applied.Load() != n {
		t.Fatalf("%d groups, applied %d; want %d", len(g), f.applied.Load(), n)
	}
}

// The leader's wait for a forwarded command's commit: the entry that
// carries the token is told before the store holds it (the follower's
// apply then runs alongside the leader's); other entries, and entries
// after stop, tell nothing.
func TestAwaitCommitBeforeWrite(t *testing.T) {
	st := newStore(t)
	f, err := newFSM(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	mine, other := termed(t, 2, 3, "mine"), termed(t, 1, 3, "other")
	mine.Extensions = []byte("token-1")
	other.Extensions = []byte("token-2")
	ch, stop, _ := f.committed.await([]byte("token-1"))
	go f.ApplyBatch([]*raft.Log{other, mine})
	e := <-ch
	if e != (Entry{Index: 2, Term: 3}) {
		t.Fatalf("told %+v, want entry 2 of term 3", e)
	}
	stop()
	// The batch holds the FSM's mutex until its apply is over.
	f.mu.Lock()
	applied := f.applied.Load()
	f.mu.Unlock()
	if applied != 2 {
		t.Fatalf("applied index %d after the batch, want 2", applied)
	}
	if g := groups(t, st); len(g) != 2 {
		t.Fatalf("groups %v after the batch", g)
	}
	if n := f.committed.len(); n != 0 {
		t.Fatalf("waiters left after stop: %d", n)
	}
	f.ApplyBatch([]*raft.Log{termed(t, 3, 3, "later")}) // no waiter, no token: nothing to tell
}

// A follower answers a forwarded command with the outcome of its own
// apply: the refusal is kept for it; for an entry that came within a
// store copy, or whose refusal was dropped long ago, the outcome is
// unknown.
func TestOutcome(t *testing.T) {
	st := newStore(t)
	f, err := newFSM(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := f.ApplyBatch([]*raft.Log{termed(t, 1, 1, "lab"), termed(t, 2, 1, "lab"), termed(t, 3, 1, "office")})
	if out[1] == nil {
		t.Fatal("a second group lab was not refused")
	}
	if err, known := f.outcome(2); !known || !errkind.Is(err, errkind.Exists) {
		t.Fatalf("outcome of entry 2: %v, known %v; want the refusal (exists)", err, known)
	}
	for _, idx := range []uint64{1, 3} {
		if err, known := f.outcome(idx); err != nil || !known {
			t.Fatalf("outcome of entry %d: %v, known %v; want it took effect", idx, err, known)
		}
	}
	// Many refusals later, the oldest is forgotten.
	var es []*raft.Log
	for i := uint64(4); i < 4+keepRefusals; i++ {
		es = append(es, termed(t, i, 1, "lab"))
	}
	f.ApplyBatch(es)
	if err, known := f.outcome(2); err != nil || known {
		t.Fatalf("outcome of entry 2 after %d refusals: %v, known %v; want unknown", keepRefusals, err, known)
	}
	if err, known := f.outcome(4 + keepRefusals - 1); !known || err == nil {
		t.Fatalf("the last refusal: %v, known %v", err, known)
	}

	// A store copy: what it holds was not applied here.
	var sink memSink
	if err := (&snapshot{st: st}).Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g, err := newFSM(newStore(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(readCloser{bytes.NewReader(sink.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if err, known := g.outcome(3); err != nil || known {
		t.Fatalf("an entry within the store copy: %v, known %v; want unknown", err, known)
	}
	if _, known := g.outcome(f.applied.Load() + 1); !known {
		t.Fatal("an entry after the store copy: unknown")
	}
}
