package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"

	"zonekit/internal/atomicfile"
	"zonekit/internal/failpoint"
)

// The replication log lives in data/raft/wal: raft-wal's segment files,
// appended with one fsync per batch of entries. Servers before it kept the
// log in data/raft/raft.db (raft-boltdb, two fsyncs per batch: the pages,
// then the meta page); openLog moves such a log over once.
const (
	walDir    = "wal"
	walTmpDir = "wal.tmp" // a move under way; it holds nothing until renamed
	boltLog   = "raft.db"
)

// walSegment is the size of one log segment file, allocated when it is
// created. raft-wal's default (64 MiB) would be mostly empty on a zone
// server, which keeps about 4,096 entries of a few hundred bytes.
const walSegment = 8 << 20

// Failpoints of the move from raft.db to the WAL (tests only).
const (
	fpLogCopied  = "replica-log-copied"  // the WAL is written in wal.tmp
	fpLogRenamed = "replica-log-renamed" // wal.tmp is wal; raft.db is still there
)

// raftStableKeys are the keys hashicorp/raft keeps in its stable store:
// the current term and its vote.
var raftStableUint64Keys = [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm")}
var raftStableKeys = [][]byte{[]byte("LastVoteCand")}

// openLog opens the replication log under dir, the log store and the
// stable store of raft. An older server's raft.db is moved into the WAL
// first: copied into wal.tmp, which is then renamed wal, and only then
// removed. A crash at any point leaves either raft.db alone (wal.tmp is
// discarded and the copy made again) or the complete WAL.
func openLog(dir string, hit failpoint.Hook) (*walLog, error) {
	return openLogSized(dir, hit, walSegment)
}

// openLogSized is openLog with segment files of size bytes.
func openLogSized(dir string, hit failpoint.Hook, size int) (*walLog, error) {
	final := filepath.Join(dir, walDir)
	old := filepath.Join(dir, boltLog)
	_, err := os.Stat(final)
	switch {
	case err == nil:
		// A move that crashed after the rename leaves raft.db behind.
		if err := removeSynced(old); err != nil {
			return nil, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("replication log: %w", err)
	default:
		if _, err := os.Stat(old); err == nil {
			if err := moveBoltLog(dir, hit, size); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("replication log: %w", err)
		} else if err := os.Mkdir(final, 0o700); err != nil {
			return nil, fmt.Errorf("replication log: %w", err)
		}
	}
	w, err := openWAL(final, size)
	if err != nil {
		return nil, fmt.Errorf("replication log %s: %w", final, err)
	}
	return w, nil
}

// walLog is raft-wal's WAL with its metadata database, which WAL.Close
// leaves open (and locked: opening the log again in this process would
// wait for that lock forever).
type walLog struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func openWAL(dir string, size int) (*walLog, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithSegmentSize(size), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, err
	}
	return &walLog{WAL: w, meta: meta}, nil
}

// Close closes the log and its metadata.
func (l *walLog) Close() error {
	err := l.WAL.Close()
	if merr := l.meta.Close(); err == nil {
		err = merr
	}
	return err
}

// moveBoltLog copies raft.db's entries and raft's term and vote into a
// new WAL, then puts the WAL in its place and removes raft.db.
func moveBoltLog(dir string, hit failpoint.Hook, size int) error {
	tmp := filepath.Join(dir, walTmpDir)
	old := filepath.Join(dir, boltLog)
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("replication log: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("replication log: %w", err)
	}
	if err := copyBoltLog(tmp, old, size); err != nil {
		return fmt.Errorf("move the replication log %s to %s: %w", old, filepath.Join(dir, walDir), err)
	}
	if err := hit(fpLogCopied); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDir)); err != nil {
		return fmt.Errorf("replication log: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := hit(fpLogRenamed); err != nil {
		return err
	}
	return removeSynced(old)
}

func copyBoltLog(dst, src string, size int) error {
	from, err := raftboltdb.New(raftboltdb.Options{Path: src})
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := openWAL(dst, size)
	if err != nil {
		return err
	}
	if err := copyEntries(to, from); err != nil {
		to.Close()
		return err
	}
	return to.Close()
}

func copyEntries(to *walLog, from *raftboltdb.BoltStore) error {
	if last, err := from.LastIndex(); err != nil {
		return err
	} else if last > 0 {
		// Each batch is one append and one fsync.
		if err := migrate.CopyLogs(context.Background(), to, from, 1<<20, nil); err != nil {
			return err
		}
	}
	// A key raft never wrote (no vote cast yet) stays unset.
	for _, k := range raftStableUint64Keys {
		v, err := from.GetUint64(k)
		if errors.Is(err, raftboltdb.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := to.SetUint64(k, v); err != nil {
			return err
		}
	}
	for _, k := range raftStableKeys {
		v, err := from.Get(k)
		if errors.Is(err, raftboltdb.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := to.Set(k, v); err != nil {
			return err
		}
	}
	return nil
}

// removeSynced removes path, if there, and makes that durable.
func removeSynced(path string) error {
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replication log: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("replication log: sync %s: %w", dir, err)
	}
	return nil
}

var (
	_ raft.LogStore          = (*walLog)(nil)
	_ raft.StableStore       = (*walLog)(nil)
	_ raft.MonotonicLogStore = (*walLog)(nil)
	_ raft.MonotonicLogStore = (*notifyingLog)(nil)
)
