package zonekit_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	bolt "go.etcd.io/bbolt"
)

// slipgz FILE [LINK] writes a tar.gz whose install.sh sits beside a member
// that climbs out of the extraction directory (../../escaped.txt), or with
// LINK, a symbolic link to /tmp and a file written through it: the archives
// a zip-slip attack sends.
func cmdSlipGz(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: slipgz FILE [link]")
	}
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		ts.Check(tw.WriteHeader(h))
		_, err := tw.Write([]byte(body))
		ts.Check(err)
	}
	add(&tar.Header{Name: "install.sh", Mode: 0o755}, "#!/bin/sh\necho ran > \"$WORK/slip-ran\"\n")
	if len(args) == 2 {
		add(&tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp", Mode: 0o777}, "")
		add(&tar.Header{Name: "out/escaped.txt", Mode: 0o644}, "escaped\n")
	} else {
		add(&tar.Header{Name: "../../escaped.txt", Mode: 0o644}, "escaped\n")
	}
	ts.Check(tw.Close())
	ts.Check(gz.Close())
}

// zacage ID DAYS makes the agent of $ZAC_HOME believe it learned of package
// ID DAYS days ago (for the download timeout).
func cmdZacAge(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: zacage ID DAYS")
	}
	days, err := strconv.Atoi(args[1])
	ts.Check(err)
	db, err := bolt.Open(filepath.Join(ts.Getenv("ZAC_HOME"), "agent.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	ts.Check(err)
	defer db.Close()
	ts.Check(db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("packages"))
		if b == nil || b.Get([]byte(args[0])) == nil {
			ts.Fatalf("package %s not known to the agent", args[0])
		}
		var rec map[string]any
		if err := json.Unmarshal(b.Get([]byte(args[0])), &rec); err != nil {
			return err
		}
		rec["first_seen"] = time.Now().Add(-time.Duration(days) * 24 * time.Hour).UTC().Format(time.RFC3339Nano)
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(args[0]), data)
	}))
}
