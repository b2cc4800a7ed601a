// Package store owns the bbolt zone store: its buckets, schema version,
// migrations and snapshots. Exactly one process opens it at a time; the
// file lock decides which, and the loser gets ErrLocked within seconds.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"zonekit/internal/errkind"
)

// SchemaVersion is the layout this build reads and writes.
const SchemaVersion = 3

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
	// SatelliteIndexPrefix keys, in the settings bucket, an empty value
	// per device holding a satellite role (schema 3): agents' answers list
	// satellites without reading every device.
	SatelliteIndexPrefix = "satellite-index/"
	keySchema            = []byte("schema")
	keyApplied           = []byte("replication-applied")
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
		func(tx *bolt.Tx) error { // 2 -> 3: the index of satellite devices
			settings := tx.Bucket(BucketSettings)
			return tx.Bucket(BucketDevices).ForEach(func(k, v []byte) error {
				var d struct {
					Satellite json.RawMessage `json:"satellite"`
				}
				if err := json.Unmarshal(v, &d); err != nil {
					return fmt.Errorf("device %q: %w", k, err)
				}
				if len(d.Satellite) == 0 || string(d.Satellite) == "null" {
					return nil
				}
				return settings.Put([]byte(SatelliteIndexPrefix+string(k)), []byte{})
			})
		},
	}
}

// ErrLocked means another process holds the store open.
var ErrLocked = errors.New("zone store is in use by another process")

// Store is an open zone store.
type Store struct {
	// mu lets Replace swap the file under readers and writers: they hold
	// it shared for the length of a transaction.
	mu   sync.RWMutex
	db   *bolt.DB
	path string
	opts Options
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
	s := &Store{db: db, path: path, opts: opts}
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
func (s *Store) View(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(fn)
}

// Update runs fn in a read-write transaction.
func (s *Store) Update(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Update(fn)
}

// Batch runs fn in a read-write transaction shared with concurrent callers,
// so that many small writes cost one fsync. fn may run more than once and
// must therefore depend only on its transaction.
func (s *Store) Batch(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Batch(fn)
}

// WriteTo writes a consistent snapshot of the whole store to w while
// writers go on.
func (s *Store) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := s.View(func(tx *bolt.Tx) error {
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
	return s.View(func(tx *bolt.Tx) error {
		return fn(tx.Size(), tx.WriteTo)
	})
}

// Replace makes the store a copy of the store file read from r (a
// replication snapshot): it is written beside the store, synced, checked,
// and renamed over the store while no transaction runs. On any error the
// store is left as it was.
func (s *Store) Replace(r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".replace-*.db")
	if err != nil {
		return fmt.Errorf("replace zone store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("replace zone store: receive copy: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("replace zone store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("replace zone store: %w", err)
	}
	// The copy must be a store this build can read before it replaces one.
	chk, err := Open(tmp.Name(), Options{LockTimeout: s.opts.LockTimeout})
	if err != nil {
		return fmt.Errorf("replace zone store: the copy is not usable: %w", err)
	}
	if err := chk.Close(); err != nil {
		return fmt.Errorf("replace zone store: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("replace zone store: close: %w", err)
	}
	renameErr := os.Rename(tmp.Name(), s.path)
	if renameErr == nil {
		if d, err := os.Open(filepath.Dir(s.path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	// Reopen whatever is there now: the copy, or the old file if the rename failed.
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: defaultTimeout})
	if err != nil {
		return fmt.Errorf("replace zone store: reopen %s: %w", s.path, err)
	}
	s.db = db
	if renameErr != nil {
		return fmt.Errorf("replace zone store: %w", renameErr)
	}
	return nil
}

// AppliedIndex is the replication log index of the last command applied to
// this store (0 for a store that never replicated).
func AppliedIndex(tx *bolt.Tx) uint64 {
	if b := tx.Bucket(BucketMeta); b != nil {
		if v := b.Get(keyApplied); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

// SetAppliedIndex records the replication log index applied in tx, so that
// entries replayed after a restart are not applied twice.
func SetAppliedIndex(tx *bolt.Tx, i uint64) error {
	b, err := tx.CreateBucketIfNotExists(BucketMeta)
	if err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], i)
	return b.Put(keyApplied, v[:])
}

var keyIncarnation = []byte("replication-incarnation")

// Incarnation identifies the replication cluster whose log this store
// follows: a generation, raised each time a cluster is started afresh
// (a new zone, a recovery), and a random id. A store that never
// replicated has generation 0 and no id.
type Incarnation struct {
	Gen uint64 `json:"gen"`
	ID  string `json:"id"`
}

// String is the form peers exchange: "GEN-ID".
func (i Incarnation) String() string {
	if i.Gen == 0 && i.ID == "" {
		return ""
	}
	return strconv.FormatUint(i.Gen, 10) + "-" + i.ID
}

// ParseIncarnation reads the form String writes ("" is generation 0).
func ParseIncarnation(s string) (Incarnation, error) {
	if s == "" {
		return Incarnation{}, nil
	}
	g, id, ok := strings.Cut(s, "-")
	n, err := strconv.ParseUint(g, 10, 64)
	if !ok || err != nil || id == "" {
		return Incarnation{}, fmt.Errorf("malformed cluster incarnation %q", s)
	}
	return Incarnation{Gen: n, ID: id}, nil
}

// IncarnationOf returns the store's replication incarnation.
func IncarnationOf(tx *bolt.Tx) Incarnation {
	var inc Incarnation
	if b := tx.Bucket(BucketMeta); b != nil {
		inc, _ = ParseIncarnation(string(b.Get(keyIncarnation)))
	}
	return inc
}

// SetIncarnation records the replication cluster the store now follows.
func SetIncarnation(tx *bolt.Tx, inc Incarnation) error {
	b, err := tx.CreateBucketIfNotExists(BucketMeta)
	if err != nil {
		return err
	}
	return b.Put(keyIncarnation, []byte(inc.String()))
}

var bucketApplied = []byte("replication-commands")

// CommandApplied reports whether the replicated command with this id was
// applied already (a retry of a command whose answer was lost).
func CommandApplied(tx *bolt.Tx, id string) bool {
	meta := tx.Bucket(BucketMeta)
	if meta == nil || id == "" {
		return false
	}
	b := meta.Bucket(bucketApplied)
	return b != nil && b.Get([]byte(id)) != nil
}

// commandsKept bounds the memory of applied command ids: retries come
// within seconds, so the oldest are forgotten beyond this many.
const commandsKept = 20000

// RecordCommand remembers that the command with this id was applied at
// log index i, forgetting the oldest ids beyond commandsKept.
func RecordCommand(tx *bolt.Tx, id string, i uint64) error {
	if id == "" {
		return nil
	}
	meta, err := tx.CreateBucketIfNotExists(BucketMeta)
	if err != nil {
		return err
	}
	b, err := meta.CreateBucketIfNotExists(bucketApplied)
	if err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], i)
	if err := b.Put([]byte(id), v[:]); err != nil {
		return err
	}
	// Pruning is by log index, every thousandth entry: ids are random, so
	// the scan is the price of not keeping a second index.
	if i%1000 != 0 || i <= commandsKept {
		return nil
	}
	var old [][]byte
	b.ForEach(func(k, v []byte) error {
		if len(v) == 8 && binary.BigEndian.Uint64(v) < i-commandsKept {
			old = append(old, k)
		}
		return nil
	})
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}
