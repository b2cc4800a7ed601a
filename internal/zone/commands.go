package zone

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Command is a named change to the zone. It carries every input its
// application needs (ids, times, certificates), so applying it is
// deterministic and replays identically on every replica.
type Command struct {
	// ID is unique per command, so that a command sent again after a lost
	// answer (a leader that died mid-request) is applied once.
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name"`
	Actor string          `json:"actor"`
	Time  time.Time       `json:"time"`
	Data  json.RawMessage `json:"data"`
}

// Command names.
const (
	CmdZoneCreate      = "zone.create"
	CmdServerStart     = "server.start"
	CmdServerSetRoles  = "server.set-roles"
	CmdAdminCreate     = "admin.create"
	CmdAdminDelete     = "admin.delete"
	CmdTokenCreate     = "admin-token.create"
	CmdTokenDelete     = "admin-token.delete"
	CmdDeviceRegister  = "device.register"
	CmdDeviceDelete    = "device.delete"
	CmdDeviceContact   = "device.contact"
	CmdGroupCreate     = "group.create"
	CmdGroupAddDevices = "group.add-devices"
	CmdRegKeyCreate    = "registration-key.create"
	CmdRegKeyDelete    = "registration-key.delete"
)

type zoneCreate struct {
	Zone   Zone   `json:"zone"`
	Server Server `json:"server"`
	Admin  Admin  `json:"admin"`
}

type serverStart struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Address string    `json:"address,omitempty"` // host:port peers reach it at
}

type serverSetRoles struct {
	ID    string `json:"id"`
	Roles []Role `json:"roles"`
}

type deviceRegister struct {
	Device Device `json:"device"`
}

type deviceContact struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Address string    `json:"address"`
}

type byName struct {
	Name string `json:"name"`
}

type groupAdd struct {
	Group   string   `json:"group"`
	Devices []string `json:"devices"`
}

func applyZoneCreate(tx *bolt.Tx, c Command) (string, error) {
	var d zoneCreate
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if tx.Bucket(store.BucketZone).Get(keyZone) != nil {
		return "", errkind.New(errkind.Exists, "the store already holds zone")
	}
	if err := put(tx, store.BucketZone, string(keyZone), d.Zone); err != nil {
		return "", err
	}
	if err := put(tx, store.BucketServers, d.Server.ID, d.Server); err != nil {
		return "", err
	}
	return d.Zone.Name, put(tx, store.BucketAdmins, d.Admin.Name, d.Admin)
}

func applyServerStart(tx *bolt.Tx, c Command) (string, error) {
	var d serverStart
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var s Server
	if err := get(tx, store.BucketServers, d.ID, &s, "server"); err != nil {
		return "", err
	}
	s.Version, s.Started = d.Version, d.Time
	if d.Address != "" {
		s.Address = d.Address
	}
	return s.Name, put(tx, store.BucketServers, s.ID, s)
}

func applyServerSetRoles(tx *bolt.Tx, c Command) (string, error) {
	var d serverSetRoles
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var s Server
	if err := get(tx, store.BucketServers, d.ID, &s, "server"); err != nil {
		return "", err
	}
	if hasRole(d.Roles, RoleCertAuth) && !s.HasRole(RoleCertAuth) {
		// One CertAuth per zone: it is the only signer of the zone CA.
		err := tx.Bucket(store.BucketServers).ForEach(func(k, v []byte) error {
			var o Server
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			if o.ID != s.ID && o.HasRole(RoleCertAuth) {
				return errkind.New(errkind.Exists, "server %s holds the CertAuth role: disable it there first (certificate-authority-role-disable)", o.Name)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	s.Roles = d.Roles
	return s.Name, put(tx, store.BucketServers, s.ID, s)
}

func applyAdminCreate(tx *bolt.Tx, c Command) (string, error) {
	var a Admin
	if err := decode(c, &a); err != nil {
		return "", err
	}
	if exists(tx, store.BucketAdmins, a.Name) {
		return "", errkind.New(errkind.Exists, "administrator %q already exists", a.Name)
	}
	return a.Name, put(tx, store.BucketAdmins, a.Name, a)
}

func applyAdminDelete(tx *bolt.Tx, c Command) (string, error) {
	var d byName
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if !exists(tx, store.BucketAdmins, d.Name) {
		return "", errkind.New(errkind.NotFound, "administrator %q not found", d.Name)
	}
	if tx.Bucket(store.BucketAdmins).Stats().KeyN <= 1 {
		return "", errkind.New(errkind.Failure, "cannot delete %q: it is the zone's last administrator", d.Name)
	}
	if err := tx.Bucket(store.BucketAdmins).Delete([]byte(d.Name)); err != nil {
		return "", err
	}
	// Credentials stored for a deleted administrator die with it.
	return d.Name, deleteWhere(tx, store.BucketTokens, func(v []byte) bool {
		var t AdminToken
		return json.Unmarshal(v, &t) == nil && t.Admin == d.Name
	})
}

func applyTokenCreate(tx *bolt.Tx, c Command) (string, error) {
	var t AdminToken
	if err := decode(c, &t); err != nil {
		return "", err
	}
	if !exists(tx, store.BucketAdmins, t.Admin) {
		return "", errkind.New(errkind.NotFound, "administrator %q not found", t.Admin)
	}
	return t.Admin, put(tx, store.BucketTokens, t.Hash, t)
}

func applyTokenDelete(tx *bolt.Tx, c Command) (string, error) {
	var d byName
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var t AdminToken
	if err := get(tx, store.BucketTokens, d.Name, &t, "stored credential"); err != nil {
		return "", err
	}
	return t.Admin, tx.Bucket(store.BucketTokens).Delete([]byte(d.Name))
}

func applyDeviceRegister(tx *bolt.Tx, c Command) (string, error) {
	var d deviceRegister
	if err := decode(c, &d); err != nil {
		return "", err
	}
	dev := d.Device
	if exists(tx, store.BucketDevices, dev.ID) {
		return "", errkind.New(errkind.Exists, "device %s already exists", dev.ID)
	}
	if dev.RegKey != "" {
		var k RegistrationKey
		if err := get(tx, store.BucketRegKeys, dev.RegKey, &k, "registration key"); err != nil {
			return "", errkind.New(errkind.Auth, "registration key %q is not valid in this zone", dev.RegKey)
		}
		if k.Limit > 0 && k.Uses >= k.Limit {
			return "", errkind.New(errkind.Auth, "registration key %q has been used its %d allowed times", k.Key, k.Limit)
		}
		k.Uses++
		if err := put(tx, store.BucketRegKeys, k.Key, k); err != nil {
			return "", err
		}
		if k.Group != "" {
			if err := addToGroup(tx, k.Group, []string{dev.ID}); err != nil {
				return "", err
			}
		}
	}
	return dev.ID, put(tx, store.BucketDevices, dev.ID, dev)
}

func applyDeviceDelete(tx *bolt.Tx, c Command) (string, error) {
	var d byName
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if !exists(tx, store.BucketDevices, d.Name) {
		return "", errkind.New(errkind.NotFound, "device %q not found", d.Name)
	}
	if err := tx.Bucket(store.BucketDevices).Delete([]byte(d.Name)); err != nil {
		return "", err
	}
	if err := tx.Bucket(store.BucketSettings).Delete(spkKey(ScopeDevice, d.Name)); err != nil {
		return "", err
	}
	if err := tx.Bucket(store.BucketSettings).Delete([]byte(inventoryPrefix + d.Name)); err != nil {
		return "", err
	}
	if err := tx.Bucket(store.BucketSettings).Delete([]byte(store.SatelliteIndexPrefix + d.Name)); err != nil {
		return "", err
	}
	if err := removeDeviceDeployments(tx, d.Name); err != nil {
		return "", err
	}
	return d.Name, removeFromGroups(tx, d.Name)
}

func applyDeviceContact(tx *bolt.Tx, c Command) (string, error) {
	var d deviceContact
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var dev Device
	if err := get(tx, store.BucketDevices, d.ID, &dev, "device"); err != nil {
		return "", err
	}
	dev.LastContact, dev.Address = d.Time, d.Address
	return dev.ID, put(tx, store.BucketDevices, dev.ID, dev)
}

func applyGroupCreate(tx *bolt.Tx, c Command) (string, error) {
	var g Group
	if err := decode(c, &g); err != nil {
		return "", err
	}
	if exists(tx, store.BucketGroups, g.Name) {
		return "", errkind.New(errkind.Exists, "group %q already exists", g.Name)
	}
	if g.Members == nil {
		g.Members = []string{}
	}
	if g.Filter != nil {
		if g.Filter.Empty() {
			g.Filter = nil
		} else if err := g.Filter.Check(); err != nil {
			return "", err
		}
	}
	return g.Name, put(tx, store.BucketGroups, g.Name, g)
}

func applyGroupAddDevices(tx *bolt.Tx, c Command) (string, error) {
	var d groupAdd
	if err := decode(c, &d); err != nil {
		return "", err
	}
	for _, id := range d.Devices {
		if !exists(tx, store.BucketDevices, id) {
			return "", errkind.New(errkind.NotFound, "device %q not found", id)
		}
	}
	return d.Group, addToGroup(tx, d.Group, d.Devices)
}

func applyRegKeyCreate(tx *bolt.Tx, c Command) (string, error) {
	var k RegistrationKey
	if err := decode(c, &k); err != nil {
		return "", err
	}
	if exists(tx, store.BucketRegKeys, k.Key) {
		return "", errkind.New(errkind.Exists, "registration key %q already exists", k.Key)
	}
	if k.Group != "" && !exists(tx, store.BucketGroups, k.Group) {
		return "", errkind.New(errkind.NotFound, "group %q not found", k.Group)
	}
	return k.Key, put(tx, store.BucketRegKeys, k.Key, k)
}

func applyRegKeyDelete(tx *bolt.Tx, c Command) (string, error) {
	var d byName
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if !exists(tx, store.BucketRegKeys, d.Name) {
		return "", errkind.New(errkind.NotFound, "registration key %q not found", d.Name)
	}
	return d.Name, tx.Bucket(store.BucketRegKeys).Delete([]byte(d.Name))
}

var keyZone = []byte("zone")

func decode(c Command, v any) error {
	if err := json.Unmarshal(c.Data, v); err != nil {
		return fmt.Errorf("command %s: %w", c.Name, err)
	}
	return nil
}

func put(tx *bolt.Tx, bucket []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), data)
}

func get(tx *bolt.Tx, bucket []byte, key string, v any, what string) error {
	data := tx.Bucket(bucket).Get([]byte(key))
	if data == nil {
		return errkind.New(errkind.NotFound, "%s %q not found", what, key)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s %q: corrupt record: %w", what, key, err)
	}
	return nil
}

func exists(tx *bolt.Tx, bucket []byte, key string) bool {
	return tx.Bucket(bucket).Get([]byte(key)) != nil
}

func deleteWhere(tx *bolt.Tx, bucket []byte, match func([]byte) bool) error {
	b := tx.Bucket(bucket)
	var doomed [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if match(v) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func addToGroup(tx *bolt.Tx, name string, ids []string) error {
	var g Group
	if err := get(tx, store.BucketGroups, name, &g, "group"); err != nil {
		return err
	}
	if g.Filter != nil {
		return errkind.New(errkind.Refused, "group %s is dynamic: its filter picks its devices", name)
	}
	have := map[string]bool{}
	for _, m := range g.Members {
		have[m] = true
	}
	for _, id := range ids {
		if !have[id] {
			g.Members = append(g.Members, id)
			have[id] = true
		}
	}
	return put(tx, store.BucketGroups, g.Name, g)
}

func removeFromGroups(tx *bolt.Tx, id string) error {
	b := tx.Bucket(store.BucketGroups)
	var changed []Group
	if err := b.ForEach(func(_, v []byte) error {
		var g Group
		if err := json.Unmarshal(v, &g); err != nil {
			return err
		}
		for i, m := range g.Members {
			if m == id {
				g.Members = append(g.Members[:i], g.Members[i+1:]...)
				changed = append(changed, g)
				break
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, g := range changed {
		if err := put(tx, store.BucketGroups, g.Name, g); err != nil {
			return err
		}
	}
	return nil
}

func hasRole(roles []Role, r Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}
