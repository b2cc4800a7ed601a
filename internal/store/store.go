// Package store owns the bbolt zone store: its buckets, schema version,
// migrations and snapshots. Exactly one process opens it at a time; the
// file lock decides which, and the loser gets ErrLocked within seconds.
package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"zonekit/internal/errkind"
)

// SchemaVersion is the layout this build reads and writes.
const SchemaVersion = 2

// Bucket names. Each holds JSON values keyed by the object's natural key.
var (
	BucketMeta    = []byte("meta")
	BucketZone    = []byte("zone")
	BucketServers = []byte("servers")
	BucketAdmins  = []byte("admins")
	BucketTokens  = []byte("admin-tokens")
	BucketDevices = []byte("devices")
	BucketGroups  = []byte("groups")
	BucketRegKeys = []byte("registration-keys")
	BucketAudit   = []byte("audit")
	// Schema 2: package deployment.
	BucketPackages       = []byte("packages")
	BucketDeployments    = []byte("package-deployments") // "<package>/<device>"
	BucketDevicePackages = []byte("device-packages")     // index: "<device>/<package>"
	BucketSettings       = []byte("settings")
	keySchema            = []byte("schema")
	defaultTimeout       = 2 * time.Second
)

// migrations[i] brings a store from version i to i+1.
func migrations() []func(*bolt.Tx) error {
	return []func(*bolt.Tx) error{
		func(tx *bolt.Tx) error { // 0 -> 1: the first layout
			for _, b := range [][]byte{BucketZone, BucketServers, BucketAdmins, BucketTokens,
				BucketDevices, BucketGroups, BucketRegKeys, BucketAudit} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		},
		func(tx *bolt.Tx) error { // 1 -> 2: packages, their deployments, zone settings
			for _, b := range [][]byte{BucketPackages, BucketDeployments, BucketDevicePackages, BucketSettings} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// ErrLocked means another process holds the store open.
var ErrLocked = errors.New("zone store is in use by another process")

// Store is an open zone store.
type Store struct {
	db   *bolt.DB
	path string
}

// Options tune Open.
type Options struct {
	Create      bool          // create the file if it is missing
	ReadOnly    bool          // shared lock, no writes
	LockTimeout time.Duration // how long to wait for the file lock; default 2s
}

// Open opens (or with Create, creates) the store at path, migrating an
// older schema and refusing a newer one.
func Open(path string, opts Options) (*Store, error) {
	if !opts.Create {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, errkind.New(errkind.NotFound, "zone store %s does not exist", path)
			}
			return nil, fmt.Errorf("zone store %s: %w", path, err)
		}
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, errkind.Wrap(errkind.Unavailable, fmt.Errorf("%w: %s (stop the zone server first: zconfigure -c Start --action stop)", ErrLocked, path))
		}
		return nil, fmt.Errorf("open zone store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.checkSchema(opts.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) checkSchema(readOnly bool) error {
	var have int
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		have, err = schemaOf(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("zone store %s: %w", s.path, err)
	}
	if have > SchemaVersion {
		return fmt.Errorf("zone store %s has schema version %d, newer than this zonekit understands (%d): upgrade zonekit", s.path, have, SchemaVersion)
	}
	if have == SchemaVersion {
		return nil
	}
	if readOnly {
		return fmt.Errorf("zone store %s has schema version %d and needs migrating to %d: open it read-write once", s.path, have, SchemaVersion)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(BucketMeta)
		if err != nil {
			return err
		}
		for v, m := range migrations()[have:] {
			if err := m(tx); err != nil {
				return fmt.Errorf("migrate zone store to schema %d: %w", have+v+1, err)
			}
		}
		return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
}

func schemaOf(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(BucketMeta)
	if meta == nil {
		return 0, nil
	}
	raw := meta.Get(keySchema)
	if raw == nil {
		return 0, nil
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("corrupt schema version %q", raw)
	}
	return v, nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*bolt.Tx) error) error { return s.db.View(fn) }

// Update runs fn in a read-write transaction.
func (s *Store) Update(fn func(*bolt.Tx) error) error { return s.db.Update(fn) }

// Batch runs fn in a read-write transaction shared with concurrent callers,
// so that many small writes cost one fsync. fn may run more than once and
// must therefore depend only on its transaction.
func (s *Store) Batch(fn func(*bolt.Tx) error) error { return s.db.Batch(fn) }

// WriteTo writes a consistent snapshot of the whole store to w while
// writers go on.
func (s *Store) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Snapshot calls fn inside one read transaction with the snapshot's exact
// size and a function that writes it, so a caller can announce the size
// (a tar header) before streaming a consistent copy.
func (s *Store) Snapshot(fn func(size int64, write func(io.Writer) (int64, error)) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return fn(tx.Size(), tx.WriteTo)
	})
}

// Close releases the file and its lock.
func (s *Store) Close() error { return s.db.Close() }
