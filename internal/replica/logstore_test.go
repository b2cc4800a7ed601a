package replica

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

var errCrash = errors.New("crashed here")

// oldLog writes an older server's raft.db in dir: entries 11 to 40 (the
// first ten compacted away), a term and, if voted, a vote.
func oldLog(t *testing.T, dir string, voted bool) {
	t.Helper()
	b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltLog)})
	if err != nil {
		t.Fatal(err)
	}
	var es []*raft.Log
	for i := uint64(1); i <= 40; i++ {
		es = append(es, &raft.Log{Index: i, Term: 1 + i/20, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d", i), Extensions: []byte{byte(i)}})
	}
	if err := b.StoreLogs(es); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if err := b.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if voted {
		if err := b.SetUint64([]byte("LastVoteTerm"), 3); err != nil {
			t.Fatal(err)
		}
		if err := b.Set([]byte("LastVoteCand"), []byte("127.0.0.2:443")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkMoved asserts that the log in dir is the WAL holding what oldLog wrote.
func checkMoved(t *testing.T, dir string, voted bool) {
	t.Helper()
	w, err := openLog(dir, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, _ := w.FirstIndex()
	last, _ := w.LastIndex()
	if first != 11 || last != 40 {
		t.Fatalf("log holds %d to %d, want 11 to 40", first, last)
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if l.Term != 1+i/20 || string(l.Data) != fmt.Sprintf("entry %d", i) || !bytes.Equal(l.Extensions, []byte{byte(i)}) {
			t.Fatalf("entry %d is %+v", i, l)
		}
	}
	if v, err := w.GetUint64([]byte("CurrentTerm")); err != nil || v != 3 {
		t.Fatalf("term %d (%v), want 3", v, err)
	}
	cand, _ := w.Get([]byte("LastVoteCand"))
	vterm, _ := w.GetUint64([]byte("LastVoteTerm"))
	if voted && (string(cand) != "127.0.0.2:443" || vterm != 3) {
		t.Fatalf("vote %q in term %d, want 127.0.0.2:443 in 3", cand, vterm)
	}
	if !voted && (len(cand) != 0 || vterm != 0) {
		t.Fatalf("vote %q in term %d, none cast", cand, vterm)
	}
	for _, gone := range []string{boltLog, walTmpDir} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after the move: %v", gone, err)
		}
	}
}

// An older server's raft.db becomes the WAL with every entry, the term
// and the vote, whichever step of the move a crash interrupts: the next
// start finishes it. A crash during the copy leaves a partial wal.tmp.
func TestOpenLogMovesBoltLog(t *testing.T) {
	for _, crash := range []string{"", "partial copy", fpLogCopied, fpLogRenamed} {
		for _, voted := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/voted=%v", crash, voted), func(t *testing.T) {
				dir := t.TempDir()
				oldLog(t, dir, voted)
				switch crash {
				case "":
				case "partial copy":
					if err := os.Mkdir(filepath.Join(dir, walTmpDir), 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, walTmpDir, "00000000000000000001-0000000000000001.wal"), []byte("torn"), 0o600); err != nil {
						t.Fatal(err)
					}
				default:
					_, err := openLog(dir, func(step string) error {
						if step == crash {
							return errCrash
						}
						return nil
					})
					if !errors.Is(err, errCrash) {
						t.Fatalf("crash at %s: %v", crash, err)
					}
				}
				checkMoved(t, dir, voted)
				checkMoved(t, dir, voted) // and opens again as it is
			})
		}
	}
}

// A new server starts with an empty WAL; a raft.db it cannot read is an
// error that names it and keeps it.
func TestOpenLogNewAndBroken(t *testing.T) {
	dir := t.TempDir()
	w, err := openLog(dir, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := w.LastIndex(); last != 0 {
		t.Fatalf("new log ends at %d", last)
	}
	w.Close()

	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, boltLog), []byte("not a bbolt file at all, but long enough to be read as one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openLog(dir, func(string) error { return nil }); err == nil || !bytes.Contains([]byte(err.Error()), []byte(boltLog)) {
		t.Fatalf("broken raft.db: %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltLog)); err != nil {
		t.Fatalf("broken raft.db removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, walDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a WAL appeared beside the broken raft.db: %v", err)
	}
}
