package zonekit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdOldRaftLog rewrites a stopped server's replication log as a release
// before raft-wal kept it: data/raft/wal becomes data/raft/raft.db
// (raft-boltdb) with the same entries, term and vote. oldraftlog RAFTDIR
func cmdOldRaftLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: oldraftlog RAFTDIR")
	}
	dir := ts.MkAbs(args[0])
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(filepath.Join(dir, "wal"), wal.WithMetaStore(meta))
	ts.Check(err)
	b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	ts.Check(err)
	last, err := w.LastIndex()
	ts.Check(err)
	if last == 0 {
		ts.Fatalf("%s holds no entry", dir)
	}
	ts.Check(migrate.CopyLogs(context.Background(), b, w, 1<<20, nil))
	for _, k := range []string{"CurrentTerm", "LastVoteTerm"} {
		v, err := w.GetUint64([]byte(k))
		if err == nil && v != 0 {
			ts.Check(b.SetUint64([]byte(k), v))
		} else if err != nil && !errors.Is(err, wal.ErrNotFound) {
			ts.Fatalf("%s: %v", k, err)
		}
	}
	if v, err := w.Get([]byte("LastVoteCand")); err == nil && len(v) > 0 {
		ts.Check(b.Set([]byte("LastVoteCand"), v))
	}
	ts.Check(w.Close())
	ts.Check(meta.Close())
	ts.Check(b.Close())
	ts.Check(os.RemoveAll(filepath.Join(dir, "wal")))
}
