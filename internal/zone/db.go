package zone

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// DB runs zone commands and queries against an open store.
type DB struct {
	st   *store.Store
	now  func() time.Time
	prop Proposer
}

// Proposer applies a command on every server of the zone (store
// replication): it returns once the command is applied to this server's
// store, with the command's own error if it failed.
type Proposer interface {
	Propose(c Command) error
}

// SetProposer routes every command through p from now on; nil applies
// commands to the local store directly (a zone server not yet replicating,
// or zconfigure while the server is stopped).
func (d *DB) SetProposer(p Proposer) { d.prop = p }

// Store is the store the DB reads (replication applies commands to it).
func (d *DB) Store() *store.Store { return d.st }

// New wraps an open store. now may be nil for the wall clock.
func New(st *store.Store, now func() time.Time) *DB {
	if now == nil {
		now = time.Now
	}
	return &DB{st: st, now: now}
}

// Now returns the DB's clock reading.
func (d *DB) Now() time.Time { return d.now().UTC() }

// Exec builds the named command from data and applies it in one transaction.
func (d *DB) Exec(actor, name string, data any) error {
	c, err := d.command(actor, name, data)
	if err != nil {
		return err
	}
	if d.prop != nil {
		return d.prop.Propose(c)
	}
	return d.st.Update(func(tx *bolt.Tx) error { return Apply(tx, c) })
}

// ExecBatch is Exec through bbolt's Batch: concurrent callers share one
// commit, which is what makes hundreds of registrations a second cheap.
func (d *DB) ExecBatch(actor, name string, data any) error {
	c, err := d.command(actor, name, data)
	if err != nil {
		return err
	}
	if d.prop != nil {
		// The replication log batches concurrent commands itself.
		return d.prop.Propose(c)
	}
	return d.st.Batch(func(tx *bolt.Tx) error { return Apply(tx, c) })
}

func (d *DB) command(actor, name string, data any) (Command, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Command{}, fmt.Errorf("command %s: %w", name, err)
	}
	id := make([]byte, 12)
	rand.Read(id)
	return Command{ID: hex.EncodeToString(id), Name: name, Actor: actor, Time: d.Now(), Data: raw}, nil
}

// Snapshot exposes the store's consistent snapshot (see store.Store.Snapshot).
func (d *DB) Snapshot(fn func(size int64, write func(io.Writer) (int64, error)) error) error {
	return d.st.Snapshot(fn)
}

// Create records a new zone with its first server and administrator.
func (d *DB) Create(z Zone, s Server, a Admin) error {
	return d.Exec(a.Name, CmdZoneCreate, zoneCreate{Zone: z, Server: s, Admin: a})
}

// ServerStarted records that server id runs version and is reached by its
// peers at address (host:port; empty keeps the recorded one).
func (d *DB) ServerStarted(id, version, address string) error {
	return d.Exec("server:"+id, CmdServerStart, serverStart{ID: id, Version: version, Time: d.Now(), Address: address})
}

// SetRoles gives server id exactly roles (at most one CertAuth in the zone).
func (d *DB) SetRoles(actor, id string, roles []Role) error {
	return d.Exec(actor, CmdServerSetRoles, serverSetRoles{ID: id, Roles: roles})
}

// Zone returns the zone record.
func (d *DB) Zone() (Zone, error) {
	var z Zone
	err := d.st.View(func(tx *bolt.Tx) error {
		return get(tx, store.BucketZone, string(keyZone), &z, "zone")
	})
	return z, err
}

// ReplicationState returns the cluster incarnation the store follows and
// the last log index applied to it.
func (d *DB) ReplicationState() (inc store.Incarnation, applied uint64, err error) {
	err = d.st.View(func(tx *bolt.Tx) error {
		inc, applied = store.IncarnationOf(tx), store.AppliedIndex(tx)
		return nil
	})
	return inc, applied, err
}

// Server returns one server by id.
func (d *DB) Server(id string) (Server, error) {
	var s Server
	err := d.st.View(func(tx *bolt.Tx) error { return get(tx, store.BucketServers, id, &s, "server") })
	return s, err
}

// Servers lists the zone's servers by name.
func (d *DB) Servers() ([]Server, error) {
	out, err := list[Server](d.st, store.BucketServers)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// ServersVersion is a hash of the servers' stored records: it changes
// whenever a server is added, removed or changed, so that what is derived
// from the list (the peer routes' authentication) can be kept until it
// does. Reading it costs a read transaction and no decoding.
func (d *DB) ServersVersion() (uint64, error) {
	h := fnv.New64a()
	err := d.st.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketServers).ForEach(func(k, v []byte) error {
			// Lengths first: no two lists hash the same bytes.
			var n [16]byte
			binary.LittleEndian.PutUint64(n[:8], uint64(len(k)))
			binary.LittleEndian.PutUint64(n[8:], uint64(len(v)))
			h.Write(n[:])
			h.Write(k)
			h.Write(v)
			return nil
		})
	})
	return h.Sum64(), err
}

// Admin returns one administrator.
func (d *DB) Admin(name string) (Admin, error) {
	var a Admin
	err := d.st.View(func(tx *bolt.Tx) error { return get(tx, store.BucketAdmins, name, &a, "administrator") })
	return a, err
}

// Admins lists administrators by name.
func (d *DB) Admins() ([]Admin, error) { return list[Admin](d.st, store.BucketAdmins) }

// Token returns the stored credential with the given hash.
func (d *DB) Token(hash string) (AdminToken, error) {
	var t AdminToken
	err := d.st.View(func(tx *bolt.Tx) error { return get(tx, store.BucketTokens, hash, &t, "stored credential") })
	return t, err
}

// Device returns one device by id.
func (d *DB) Device(id string) (Device, error) {
	var dev Device
	err := d.st.View(func(tx *bolt.Tx) error { return get(tx, store.BucketDevices, id, &dev, "device") })
	return dev, err
}

// Devices lists devices by name, then id.
func (d *DB) Devices() ([]Device, error) {
	out, err := list[Device](d.st, store.BucketDevices)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeviceRecords calls fn with each device's id and stored JSON, in id
// order, in one read transaction: id and raw are valid only during the
// call. It is for a reader that keeps its own decoded copy and decodes
// only the records that changed (the web console).
func (d *DB) DeviceRecords(fn func(id, raw []byte) error) error {
	return d.st.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketDevices).ForEach(fn)
	})
}

// DevicePage is up to a page of devices read in one transaction and
// decoded one at a time after it (Each), so that a listing never holds
// the whole zone, nor a read transaction while it writes to a client.
type DevicePage struct {
	IDs []string // in id order
	raw [][]byte
}

// DevicesPage reads up to limit devices whose ids sort after after (from
// the first when after is empty), in id order: a seek and limit reads.
func (d *DB) DevicesPage(after string, limit int) (DevicePage, error) {
	var p DevicePage
	err := d.st.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(store.BucketDevices).Cursor()
		k, v := c.First()
		if after != "" {
			if k, v = c.Seek([]byte(after)); k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(p.IDs) < limit; k, v = c.Next() {
			p.IDs = append(p.IDs, string(k))
			p.raw = append(p.raw, bytes.Clone(v))
		}
		return nil
	})
	return p, err
}

// Each decodes the page's devices in order and calls fn with each.
func (p DevicePage) Each(fn func(Device) error) error {
	for i, v := range p.raw {
		var dev Device
		if err := DecodeDevice(v, &dev); err != nil {
			return fmt.Errorf("device %q: corrupt record: %w", p.IDs[i], err)
		}
		if err := fn(dev); err != nil {
			return err
		}
	}
	return nil
}

// DeviceCount counts registered devices without decoding them.
func (d *DB) DeviceCount() (int, error) {
	var n int
	err := d.st.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(store.BucketDevices).Stats().KeyN
		return nil
	})
	return n, err
}

// ResolveDevice finds a device by id or, when unambiguous, by name.
func (d *DB) ResolveDevice(ref string) (Device, error) {
	if dev, err := d.Device(ref); err == nil {
		return dev, nil
	}
	devs, err := d.Devices()
	if err != nil {
		return Device{}, err
	}
	var found []Device
	for _, dev := range devs {
		if dev.Name == ref {
			found = append(found, dev)
		}
	}
	switch len(found) {
	case 0:
		return Device{}, errkind.New(errkind.NotFound, "device %q not found", ref)
	case 1:
		return found[0], nil
	}
	return Device{}, errkind.New(errkind.Refused, "%d devices are named %q: give the device id", len(found), ref)
}

// Groups lists groups by name.
func (d *DB) Groups() ([]Group, error) { return list[Group](d.st, store.BucketGroups) }

// RegKeys lists registration keys.
func (d *DB) RegKeys() ([]RegistrationKey, error) {
	return list[RegistrationKey](d.st, store.BucketRegKeys)
}

// Audit returns the latest n audit records, oldest first.
func (d *DB) Audit(n int) ([]AuditRecord, error) {
	var out []AuditRecord
	err := d.st.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(store.BucketAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("audit record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// listSettings decodes the settings values whose keys start with prefix,
// in key order.
func listSettings[T any](st *store.Store, prefix string) ([]T, error) {
	out := []T{}
	err := st.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(store.BucketSettings).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("setting %q: corrupt record: %w", k, err)
			}
			out = append(out, x)
		}
		return nil
	})
	return out, err
}

// scopeLess orders scoped records zone first, then groups, then devices,
// each by target.
func scopeLess(scopeA, targetA, scopeB, targetB string) bool {
	rank := map[string]int{ScopeZone: 0, ScopeGroup: 1, ScopeDevice: 2}
	if rank[scopeA] != rank[scopeB] {
		return rank[scopeA] < rank[scopeB]
	}
	return targetA < targetB
}

// list decodes every value of a bucket, in key order.
func list[T any](st *store.Store, bucket []byte) ([]T, error) {
	out := []T{}
	err := st.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("%s %q: corrupt record: %w", bucket, k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}
