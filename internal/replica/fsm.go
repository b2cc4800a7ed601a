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
	st      *store.Store
	applied atomic.Uint64
	notify  func(index uint64) // called after each apply, for waiters
	// committed is called with the last index of a batch before it is
	// applied: raft hands the FSM committed entries only, so on the
	// leader this is the earliest moment the commit is known.
	committed func(index uint64)
}

func newFSM(st *store.Store, notify func(uint64)) (*fsm, error) {
	f := &fsm{st: st, notify: notify}
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
	out := make([]any, len(logs))
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
	last := logs[len(logs)-1].Index
	if last <= f.applied.Load() {
		return out
	}
	if f.committed != nil {
		f.committed(last)
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
			out[i] = nil
			if c == nil {
				continue
			}
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
		// The store cannot be written (disk full, I/O error): going on
		// would let this replica silently diverge.
		panic(fmt.Sprintf("zone store: cannot apply replication entries up to %d: %v", last, err))
	}
	f.applied.Store(last)
	if f.notify != nil {
		f.notify(last)
	}
	return out
}

// Snapshot hands raft a consistent copy of the store, written later by Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return &snapshot{st: f.st}, nil }

// Restore replaces the store with a copy received from the leader.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.st.Replace(rc); err != nil {
		return err
	}
	var idx uint64
	if err := f.st.View(func(tx *bolt.Tx) error { idx = store.AppliedIndex(tx); return nil }); err != nil {
		return err
	}
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
