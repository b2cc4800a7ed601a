package replica

import (
	"bytes"
	"encoding/json"
	"errors"
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

// The committed hook sees a batch's last index before the store holds it
// (the leader tells the followers of the commit while it writes), and not
// for entries already applied.
func TestApplyBatchCommittedBeforeWrite(t *testing.T) {
	st := newStore(t)
	f, err := newFSM(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	f.committed = func(idx uint64) {
		if n := len(groups(t, st)); n != len(seen) {
			t.Errorf("committed(%d) called with %d groups in the store, want %d: the batch was already written", idx, n, len(seen))
		}
		seen = append(seen, idx)
	}
	f.ApplyBatch([]*raft.Log{entry(t, 1, "a", zone.CmdGroupCreate, group("lab"))})
	f.ApplyBatch([]*raft.Log{entry(t, 1, "a", zone.CmdGroupCreate, group("lab"))}) // a replay
	f.ApplyBatch([]*raft.Log{entry(t, 2, "b", zone.CmdGroupCreate, group("office"))})
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 2 {
		t.Fatalf("committed saw %v, want [1 2]", seen)
	}
}
