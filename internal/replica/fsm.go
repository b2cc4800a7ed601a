// Package replica replicates the zone store between the Primary Servers of
// a zone with hashicorp/raft: the named zone commands are the log entries,
// the bbolt zone store is the state machine, and peers talk over the zone
// server's HTTPS port with mutual TLS. A zone of one server is a one-voter
// cluster.
package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// fsm applies committed log entries to the zone store. The store is
// durable on its own, so the index of the last applied entry is kept in
// the same transaction: entries replayed after a restart, or already in a
// store copied at join time, are skipped instead of applied twice.
type fsm struct {
	st *store.Store
	// mu makes the store's writers take turns: raft's FSM goroutine
	// (ApplyBatch, Restore), a follower applying from its own log what
	// the leader said is committed (applyCommitted) and a re-seed.
	mu      sync.Mutex
	applied atomic.Uint64
	notify  func(index uint64) // called after each apply, for waiters
	// hold, if set, is called by ApplyBatch before it applies a batch up
	// to last (see Node.holdApply).
	hold func(last uint64)

	committed tokenWaiters // told an entry once it is committed

	rmu      sync.Mutex
	refusals map[uint64]error // the refused commands among the last entries applied
	refused  []uint64         // their indexes, oldest first
	restored uint64           // the last store copy's applied index
}

// keepRefusals is how many refused commands' errors the FSM keeps, for a
// follower to answer the client whose command was refused.
const keepRefusals = 256

func newFSM(st *store.Store, notify func(uint64)) (*fsm, error) {
	f := &fsm{st: st, notify: notify, refusals: map[uint64]error{}}
	err := st.View(func(tx *bolt.Tx) error {
		f.applied.Store(store.AppliedIndex(tx))
		return nil
	})
	return f, err
}

// Apply applies one entry; its response is the command's error, or nil.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies consecutive entries in one transaction (one fsync).
// If any command fails, that transaction is rolled back and the entries
// are applied one by one, so a failed command changes nothing and the
// others still apply: the same outcome as applying them singly.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	if f.hold != nil && len(logs) > 0 {
		f.hold(logs[len(logs)-1].Index)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out, err := f.applyLocked(logs)
	if err != nil {
		// The store cannot be written (disk full, I/O error): going on
		// would let this replica silently diverge.
		panic(fmt.Sprintf("zone store: %v", err))
	}
	return out
}

// maxCatchUp bounds how many entries applyCommitted applies at once: a
// follower further behind is being brought up to date by raft anyway.
const maxCatchUp = 1024

// applyCommitted applies this server's own log entries up to idx, which
// the leader says is committed with the given term, without waiting for
// raft to learn the commit index (hashicorp/raft tells followers only
// with its next AppendEntries, or at its commit timeout). It is safe
// because a log that holds entry idx with the term of the committed
// entry there holds the committed entries up to idx (raft's log
// matching property), and the store skips what it applied already, so
// raft's own later apply of the same entries changes nothing. It
// reports false, having applied nothing, while the log does not hold
// that entry (not yet received, or of a deposed leader's term) or no
// longer holds one before it (compacted: raft is installing a snapshot).
// With noConfig, it also reports false if a membership change lies
// between the applied entries and idx. An error is the store's (it could
// not be written).
func (f *fsm) applyCommitted(logs raft.LogStore, idx, term uint64, noConfig bool) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	from := f.applied.Load() + 1
	if idx < from {
		return true, nil
	}
	if term == 0 || idx-from >= maxCatchUp {
		return false, nil
	}
	batch := make([]*raft.Log, idx-from+1)
	last := new(raft.Log)
	if err := logs.GetLog(idx, last); err != nil || last.Term != term {
		return false, nil
	}
	batch[len(batch)-1] = last
	for i := from; i < idx; i++ {
		l := new(raft.Log)
		if err := logs.GetLog(i, l); err != nil || (noConfig && l.Type == raft.LogConfiguration) {
			return false, nil
		}
		batch[i-from] = l
	}
	if _, err := f.applyLocked(batch); err != nil {
		return false, err
	}
	return true, nil
}

// applyLocked is ApplyBatch with f.mu held. An error is the store's (it
// could not be written); the applied index then stays where it was.
func (f *fsm) applyLocked(logs []*raft.Log) ([]any, error) {
	out := make([]any, len(logs))
	last := logs[len(logs)-1].Index
	if last <= f.applied.Load() {
		return out, nil
	}
	f.committed.tell(logs)
	var cmds []*zone.Command
	for i, l := range logs {
		if l.Type != raft.LogCommand || l.Index <= f.applied.Load() {
			cmds = append(cmds, nil)
			continue
		}
		var c zone.Command
		if err := json.Unmarshal(l.Data, &c); err != nil {
			out[i] = fmt.Errorf("replication entry %d: %w", l.Index, err)
			cmds = append(cmds, nil)
			continue
		}
		cmds = append(cmds, &c)
	}
	errFailed := errors.New("a command in the batch failed")
	err := f.st.Update(func(tx *bolt.Tx) error {
		for i, c := range cmds {
			if c == nil {
				continue
			}
			refused, err := zone.ApplyOnce(tx, *c, logs[i].Index)
			if refused != nil {
				out[i] = refused
				return errFailed
			}
			if err != nil {
				return err
			}
		}
		return store.SetAppliedIndex(tx, last)
	})
	if errors.Is(err, errFailed) {
		for i, c := range cmds {
			if c == nil {
				continue
			}
			out[i] = nil
			idx := logs[i].Index
			var cmdErr error
			err := f.st.Update(func(tx *bolt.Tx) error {
				refused, err := zone.ApplyOnce(tx, *c, idx)
				if cmdErr = refused; cmdErr != nil {
					return cmdErr
				}
				if err != nil {
					return err
				}
				return store.SetAppliedIndex(tx, idx)
			})
			if cmdErr != nil {
				out[i] = cmdErr
			} else if err != nil {
				out[i] = fmt.Errorf("apply replication entry %d: %w", idx, err)
			}
		}
		// Failed commands leave no trace but their index still counts.
		err = f.st.Update(func(tx *bolt.Tx) error { return store.SetAppliedIndex(tx, last) })
	}
	if err != nil {
		return nil, fmt.Errorf("cannot apply replication entries up to %d: %w", last, err)
	}
	f.keepRefused(logs, out)
	f.applied.Store(last)
	if f.notify != nil {
		f.notify(last)
	}
	return out, nil
}

// keepRefused remembers the errors of the refused commands of a batch.
func (f *fsm) keepRefused(logs []*raft.Log, out []any) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	for i, r := range out {
		err, ok := r.(error)
		if !ok || err == nil {
			continue
		}
		f.refusals[logs[i].Index] = err
		f.refused = append(f.refused, logs[i].Index)
		if len(f.refused) > keepRefusals {
			delete(f.refusals, f.refused[0])
			f.refused = f.refused[1:]
		}
	}
}

// outcome says what became of the command applied at idx: nil if it took
// effect or its refusal. known is false for an entry this server did
// not apply itself (it came within a store copy, or long ago).
func (f *fsm) outcome(idx uint64) (refusal error, known bool) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	if err, ok := f.refusals[idx]; ok {
		return err, true
	}
	return nil, idx > f.restored && (len(f.refused) < keepRefusals || idx > f.refused[0])
}

// Snapshot hands raft a consistent copy of the store, written later by Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return &snapshot{st: f.st}, nil }

// Restore replaces the store with a copy received from the leader.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.st.Replace(rc); err != nil {
		return err
	}
	var idx uint64
	if err := f.st.View(func(tx *bolt.Tx) error { idx = store.AppliedIndex(tx); return nil }); err != nil {
		return err
	}
	f.rmu.Lock()
	f.restored = idx
	f.rmu.Unlock()
	f.applied.Store(idx)
	if f.notify != nil {
		f.notify(idx)
	}
	return nil
}

// snapshot writes the store as it is when Persist runs. It may hold
// entries past the index raft records for the snapshot; replaying those
// is harmless because the store remembers what it applied.
type snapshot struct{ st *store.Store }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.st.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("snapshot zone store: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
