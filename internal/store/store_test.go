package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// buckets are those every current store has.
var buckets = [][]byte{store.BucketMeta, store.BucketZone, store.BucketServers, store.BucketAdmins, store.BucketTokens,
	store.BucketDevices, store.BucketGroups, store.BucketRegKeys, store.BucketAudit,
	store.BucketPackages, store.BucketDeployments, store.BucketDevicePackages, store.BucketSettings}

var current = strconv.Itoa(store.SchemaVersion)

func create(t *testing.T) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zone.db")
	st, err := store.Open(path, store.Options{Create: true})
	if err != nil {
		t.Fatalf("Open with Create: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func schemaOf(t *testing.T, st *store.Store) string {
	t.Helper()
	var v string
	if err := st.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(store.BucketMeta); b != nil {
			v = string(b.Get([]byte("schema")))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func assertBuckets(t *testing.T, st *store.Store) {
	t.Helper()
	st.View(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if tx.Bucket(b) == nil {
				t.Errorf("bucket %s missing", b)
			}
		}
		return nil
	})
}

// boltFile writes a raw bbolt file with fn, as an older or newer zonekit would have.
func boltFile(t *testing.T, fn func(*bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zone.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zone.db")
	_, err := store.Open(path, store.Options{})
	if errkind.Of(err) != errkind.NotFound || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a missing store = %v; want NotFound naming the path", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Error("Open without Create created the file")
	}
}

func TestCreateAndReopen(t *testing.T) {
	st, path := create(t)
	assertBuckets(t, st)
	if got := schemaOf(t, st); got != current {
		t.Errorf("schema = %q, want %s", got, current)
	}
	if st.Path() != path {
		t.Errorf("Path = %s, want %s", st.Path(), path)
	}
	if err := st.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketZone).Put([]byte("zone"), []byte(`{"name":"Acme"}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode = %v, want 0600", fi.Mode().Perm())
	}

	for _, ro := range []bool{false, true} {
		st, err := store.Open(path, store.Options{ReadOnly: ro})
		if err != nil {
			t.Fatalf("reopen (read-only %v): %v", ro, err)
		}
		st.View(func(tx *bolt.Tx) error {
			if got := tx.Bucket(store.BucketZone).Get([]byte("zone")); string(got) != `{"name":"Acme"}` {
				t.Errorf("after reopen zone = %q", got)
			}
			return nil
		})
		if ro {
			err := st.Update(func(tx *bolt.Tx) error { return nil })
			if err == nil {
				t.Error("Update on a read-only store succeeded")
			}
		}
		st.Close()
	}
}

func TestSchemaNewerRefused(t *testing.T) {
	path := boltFile(t, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(store.BucketMeta)
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte("99"))
	})
	_, err := store.Open(path, store.Options{})
	if err == nil {
		t.Fatal("Open of a schema-99 store succeeded")
	}
	for _, want := range []string{"99", "newer", "upgrade zonekit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Refusing must not touch the file: the newer zonekit still owns it.
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(store.BucketMeta).Get([]byte("schema")); string(v) != "99" {
			t.Errorf("schema rewritten to %q", v)
		}
		return nil
	})
}

func TestSchemaCorrupt(t *testing.T) {
	path := boltFile(t, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(store.BucketMeta)
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte("one"))
	})
	if _, err := store.Open(path, store.Options{}); err == nil || !strings.Contains(err.Error(), "corrupt schema") {
		t.Errorf("Open with schema %q = %v; want a corrupt-schema error", "one", err)
	}
}

func TestSchemaOlderMigrated(t *testing.T) {
	// A version-0 store: some data, no meta bucket.
	path := boltFile(t, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(store.BucketDevices)
		if err != nil {
			return err
		}
		return b.Put([]byte("dev1"), []byte(`{"id":"dev1"}`))
	})

	_, err := store.Open(path, store.Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "needs migrating") {
		t.Errorf("read-only Open of a version-0 store = %v; want a needs-migrating error", err)
	}

	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("Open of a version-0 store: %v", err)
	}
	defer st.Close()
	assertBuckets(t, st)
	if got := schemaOf(t, st); got != current {
		t.Errorf("schema after migration = %q, want %s", got, current)
	}
	st.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(store.BucketDevices).Get([]byte("dev1")); v == nil {
			t.Error("migration lost existing data")
		}
		return nil
	})
}

// bbolt locks with flock, which conflicts between separate open file
// descriptions even inside one process on Linux, so this models a second
// zonekit process.
func TestLocked(t *testing.T) {
	_, path := create(t)
	for _, ro := range []bool{false, true} {
		start := time.Now()
		st, err := store.Open(path, store.Options{ReadOnly: ro, LockTimeout: 200 * time.Millisecond})
		elapsed := time.Since(start)
		if err == nil {
			st.Close()
			t.Fatalf("second Open (read-only %v) succeeded while the store was held", ro)
		}
		if !errors.Is(err, store.ErrLocked) || errkind.Of(err) != errkind.Unavailable {
			t.Errorf("second Open = %v; want ErrLocked of kind Unavailable", err)
		}
		if !strings.Contains(err.Error(), "stop the zone server") {
			t.Errorf("error %q should say what to do", err)
		}
		if elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
			t.Errorf("second Open gave up after %s, want about the 200ms lock timeout", elapsed)
		}
	}
}

func TestLockReleasedOnClose(t *testing.T) {
	st, path := create(t)
	st.Close()
	again, err := store.Open(path, store.Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
}

func TestReadersShare(t *testing.T) {
	st, path := create(t)
	st.Close()
	a, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("second read-only Open: %v", err)
	}
	b.Close()
}

func TestWriteToSnapshot(t *testing.T) {
	st, _ := create(t)
	if err := st.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketAdmins).Put([]byte("Administrator"), []byte(`{"name":"Administrator"}`))
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := st.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Errorf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	// The store stays usable (and locked) while the snapshot is opened elsewhere.
	if err := st.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketAdmins).Put([]byte("later"), []byte(`{}`))
	}); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(snap, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored, err := store.Open(snap, store.Options{})
	if err != nil {
		t.Fatalf("Open of the snapshot: %v", err)
	}
	defer restored.Close()
	assertBuckets(t, restored)
	restored.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.BucketAdmins)
		if b.Get([]byte("Administrator")) == nil {
			t.Error("snapshot lost data written before it")
		}
		if b.Get([]byte("later")) != nil {
			t.Error("snapshot holds data written after it")
		}
		return nil
	})
}

func TestBatchConcurrent(t *testing.T) {
	st, _ := create(t)
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- st.Batch(func(tx *bolt.Tx) error {
				return tx.Bucket(store.BucketDevices).Put([]byte{byte(i)}, []byte("x"))
			})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket(store.BucketDevices).Stats().KeyN; got != n {
			t.Errorf("%d keys after %d batched writes", got, n)
		}
		return nil
	})
}

// A schema-1 store (before packages) gains the package buckets and keeps
// its data.
func TestSchema1To2(t *testing.T) {
	path := boltFile(t, func(tx *bolt.Tx) error {
		for _, b := range buckets[:9] {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(store.BucketMeta).Put([]byte("schema"), []byte("1")); err != nil {
			return err
		}
		return tx.Bucket(store.BucketDevices).Put([]byte("dev1"), []byte(`{"id":"dev1"}`))
	})
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("Open of a schema-1 store: %v", err)
	}
	defer st.Close()
	assertBuckets(t, st)
	if got := schemaOf(t, st); got != current {
		t.Errorf("schema after migration = %q, want %s", got, current)
	}
	st.View(func(tx *bolt.Tx) error {
		if tx.Bucket(store.BucketDevices).Get([]byte("dev1")) == nil {
			t.Error("migration lost existing data")
		}
		return nil
	})
}

// Schema 3 indexes the devices that hold satellite roles.
func TestSchema2To3(t *testing.T) {
	path := boltFile(t, func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(store.BucketMeta).Put([]byte("schema"), []byte("2")); err != nil {
			return err
		}
		devs := tx.Bucket(store.BucketDevices)
		if err := devs.Put([]byte("plain"), []byte(`{"id":"plain"}`)); err != nil {
			return err
		}
		if err := devs.Put([]byte("nulled"), []byte(`{"id":"nulled","satellite":null}`)); err != nil {
			return err
		}
		return devs.Put([]byte("sat"), []byte(`{"id":"sat","satellite":{"roles":["Content"]}}`))
	})
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("Open of a schema-2 store: %v", err)
	}
	defer st.Close()
	var keys []string
	st.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketSettings).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if len(keys) != 1 || keys[0] != store.SatelliteIndexPrefix+"sat" {
		t.Errorf("settings after migration = %q, want only the satellite's index entry", keys)
	}
}
