package zone_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newDB opens a fresh store holding zone Acme, server srv1 and administrator Administrator.
func newDB(t *testing.T) *zone.DB {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "zone.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db := zone.New(st, func() time.Time { return t0 })
	err = db.Create(zone.Zone{ID: "z1", Name: "Acme", Created: t0},
		zone.Server{ID: "srv1", Name: "zone1.acme.example", Port: 443, Roles: []zone.Role{zone.RoleCertAuth}},
		zone.Admin{Name: "Administrator", PasswordHash: "h", CreatedBy: "zconfigure"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return db
}

func mustExec(t *testing.T, db *zone.DB, name string, data any) {
	t.Helper()
	if err := db.Exec("Administrator", name, data); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// wantErr checks err's kind and that its message says want.
func wantErr(t *testing.T, err error, kind errkind.Kind, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("succeeded; want a %q error", want)
	}
	if errkind.Of(err) != kind || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q (kind %d); want kind %d saying %q", err, errkind.Of(err), kind, want)
	}
}

func device(id string) map[string]any {
	return map[string]any{"device": zone.Device{ID: id, Name: "pc-" + id, Registered: t0}}
}

func deviceWithKey(id, key string) map[string]any {
	return map[string]any{"device": zone.Device{ID: id, Name: "pc-" + id, RegKey: key}}
}

func TestZoneCreate(t *testing.T) {
	db := newDB(t)
	z, err := db.Zone()
	if err != nil || z.Name != "Acme" {
		t.Errorf("Zone = %+v, %v", z, err)
	}
	s, err := db.Server("srv1")
	if err != nil || !s.HasRole(zone.RoleCertAuth) || s.HasRole(zone.RoleDatabase) {
		t.Errorf("Server = %+v, %v", s, err)
	}
	if a, err := db.Admin("Administrator"); err != nil || a.CreatedBy != "zconfigure" {
		t.Errorf("Admin = %+v, %v", a, err)
	}
	err = db.Create(zone.Zone{Name: "Other"}, zone.Server{ID: "srv2"}, zone.Admin{Name: "x"})
	wantErr(t, err, errkind.Exists, "already holds")
	if _, err := db.Server("srv2"); err == nil {
		t.Error("a refused zone.create still wrote its server")
	}
}

func TestServerStart(t *testing.T) {
	db := newDB(t)
	if err := db.ServerStarted("srv1", "1.2.3", ""); err != nil {
		t.Fatal(err)
	}
	s, _ := db.Server("srv1")
	if s.Version != "1.2.3" || !s.Started.Equal(t0) {
		t.Errorf("after server.start: version %q started %s", s.Version, s.Started)
	}
	wantErr(t, db.ServerStarted("nope", "1", ""), errkind.NotFound, `server "nope" not found`)
}

func TestAdmins(t *testing.T) {
	db := newDB(t)
	mustExec(t, db, zone.CmdAdminCreate, zone.Admin{Name: "ops", PasswordHash: "h2"})
	wantErr(t, db.Exec("Administrator", zone.CmdAdminCreate, zone.Admin{Name: "ops"}), errkind.Exists, `"ops" already exists`)

	mustExec(t, db, zone.CmdTokenCreate, zone.AdminToken{Hash: "t-ops-1", Admin: "ops"})
	mustExec(t, db, zone.CmdTokenCreate, zone.AdminToken{Hash: "t-ops-2", Admin: "ops"})
	mustExec(t, db, zone.CmdTokenCreate, zone.AdminToken{Hash: "t-admin", Admin: "Administrator"})
	wantErr(t, db.Exec("Administrator", zone.CmdTokenCreate, zone.AdminToken{Hash: "t-x", Admin: "ghost"}), errkind.NotFound, `"ghost" not found`)

	mustExec(t, db, zone.CmdTokenDelete, map[string]string{"name": "t-ops-2"})
	if _, err := db.Token("t-ops-2"); errkind.Of(err) != errkind.NotFound {
		t.Errorf("revoked token still found: %v", err)
	}
	wantErr(t, db.Exec("Administrator", zone.CmdTokenDelete, map[string]string{"name": "t-ops-2"}), errkind.NotFound, "not found")

	// Deleting an administrator takes its stored credentials with it, and only its own.
	mustExec(t, db, zone.CmdAdminDelete, map[string]string{"name": "ops"})
	if _, err := db.Admin("ops"); errkind.Of(err) != errkind.NotFound {
		t.Errorf("deleted administrator still found: %v", err)
	}
	if _, err := db.Token("t-ops-1"); errkind.Of(err) != errkind.NotFound {
		t.Error("a deleted administrator's token still authenticates")
	}
	if tok, err := db.Token("t-admin"); err != nil || tok.Admin != "Administrator" {
		t.Errorf("another administrator's token was lost: %+v, %v", tok, err)
	}
	wantErr(t, db.Exec("Administrator", zone.CmdAdminDelete, map[string]string{"name": "ops"}), errkind.NotFound, `"ops" not found`)

	// The zone always keeps one administrator.
	wantErr(t, db.Exec("Administrator", zone.CmdAdminDelete, map[string]string{"name": "Administrator"}), errkind.Failure, "last administrator")
	if _, err := db.Admin("Administrator"); err != nil {
		t.Errorf("last administrator gone after a refused delete: %v", err)
	}
	admins, _ := db.Admins()
	if len(admins) != 1 {
		t.Errorf("%d administrators, want 1", len(admins))
	}
}

func TestDeviceRegister(t *testing.T) {
	db := newDB(t)
	mustExec(t, db, zone.CmdDeviceRegister, device("d1"))
	if d, err := db.Device("d1"); err != nil || d.Name != "pc-d1" {
		t.Errorf("Device = %+v, %v", d, err)
	}
	wantErr(t, db.Exec("x", zone.CmdDeviceRegister, device("d1")), errkind.Exists, "d1 already exists")
	wantErr(t, db.Exec("x", zone.CmdDeviceRegister, deviceWithKey("d2", "nokey")), errkind.Auth, `"nokey" is not valid`)
	if _, err := db.Device("d2"); err == nil {
		t.Error("a device with an unknown key was registered")
	}
}

func TestRegistrationKeys(t *testing.T) {
	db := newDB(t)
	mustExec(t, db, zone.CmdGroupCreate, zone.Group{Name: "lab"})
	wantErr(t, db.Exec("x", zone.CmdRegKeyCreate, zone.RegistrationKey{Key: "k0", Group: "nogroup"}), errkind.NotFound, `group "nogroup" not found`)
	mustExec(t, db, zone.CmdRegKeyCreate, zone.RegistrationKey{Key: "k2", Group: "lab", Limit: 2})
	mustExec(t, db, zone.CmdRegKeyCreate, zone.RegistrationKey{Key: "free"})
	wantErr(t, db.Exec("x", zone.CmdRegKeyCreate, zone.RegistrationKey{Key: "k2"}), errkind.Exists, "already exists")

	mustExec(t, db, zone.CmdDeviceRegister, deviceWithKey("d1", "k2"))
	mustExec(t, db, zone.CmdDeviceRegister, deviceWithKey("d2", "k2"))
	wantErr(t, db.Exec("x", zone.CmdDeviceRegister, deviceWithKey("d3", "k2")), errkind.Auth, "used its 2 allowed times")
	if _, err := db.Device("d3"); err == nil {
		t.Error("a device past the key's limit was registered")
	}
	for i := range 5 { // no limit
		mustExec(t, db, zone.CmdDeviceRegister, deviceWithKey(fmt.Sprintf("f%d", i), "free"))
	}

	keys, _ := db.RegKeys()
	uses := map[string]int{}
	for _, k := range keys {
		uses[k.Key] = k.Uses
	}
	if uses["k2"] != 2 || uses["free"] != 5 {
		t.Errorf("uses = %v; want k2:2 (the refused third not counted) and free:5", uses)
	}
	groups, _ := db.Groups()
	if len(groups) != 1 || !slices.Equal(groups[0].Members, []string{"d1", "d2"}) {
		t.Errorf("groups = %+v; want lab with d1 and d2 joined by their key", groups)
	}

	mustExec(t, db, zone.CmdRegKeyDelete, map[string]string{"name": "k2"})
	wantErr(t, db.Exec("x", zone.CmdRegKeyDelete, map[string]string{"name": "k2"}), errkind.NotFound, "not found")
	wantErr(t, db.Exec("x", zone.CmdDeviceRegister, deviceWithKey("d4", "k2")), errkind.Auth, "not valid")
}

func TestGroups(t *testing.T) {
	db := newDB(t)
	mustExec(t, db, zone.CmdGroupCreate, zone.Group{Name: "lab", Description: "test lab"})
	wantErr(t, db.Exec("x", zone.CmdGroupCreate, zone.Group{Name: "lab"}), errkind.Exists, `"lab" already exists`)
	groups, _ := db.Groups()
	if len(groups) != 1 || groups[0].Members == nil {
		t.Errorf("new group %+v should have an empty, non-nil member list", groups)
	}

	mustExec(t, db, zone.CmdDeviceRegister, device("d1"))
	mustExec(t, db, zone.CmdDeviceRegister, device("d2"))
	mustExec(t, db, zone.CmdGroupAddDevices, map[string]any{"group": "lab", "devices": []string{"d1", "d2", "d1"}})
	mustExec(t, db, zone.CmdGroupAddDevices, map[string]any{"group": "lab", "devices": []string{"d2"}})
	groups, _ = db.Groups()
	if !slices.Equal(groups[0].Members, []string{"d1", "d2"}) {
		t.Errorf("members = %q, want d1, d2 once each", groups[0].Members)
	}
	wantErr(t, db.Exec("x", zone.CmdGroupAddDevices, map[string]any{"group": "lab", "devices": []string{"d1", "ghost"}}), errkind.NotFound, `device "ghost" not found`)
	wantErr(t, db.Exec("x", zone.CmdGroupAddDevices, map[string]any{"group": "nogroup", "devices": []string{"d1"}}), errkind.NotFound, `group "nogroup" not found`)
}

func TestDeviceDelete(t *testing.T) {
	db := newDB(t)
	for _, g := range []string{"a", "b", "c"} {
		mustExec(t, db, zone.CmdGroupCreate, zone.Group{Name: g})
	}
	mustExec(t, db, zone.CmdDeviceRegister, device("d1"))
	mustExec(t, db, zone.CmdDeviceRegister, device("d2"))
	mustExec(t, db, zone.CmdGroupAddDevices, map[string]any{"group": "a", "devices": []string{"d1", "d2"}})
	mustExec(t, db, zone.CmdGroupAddDevices, map[string]any{"group": "b", "devices": []string{"d2", "d1"}})
	mustExec(t, db, zone.CmdGroupAddDevices, map[string]any{"group": "c", "devices": []string{"d2"}})

	mustExec(t, db, zone.CmdDeviceDelete, map[string]string{"name": "d1"})
	if _, err := db.Device("d1"); errkind.Of(err) != errkind.NotFound {
		t.Errorf("deleted device still found: %v", err)
	}
	groups, _ := db.Groups()
	for _, g := range groups {
		if slices.Contains(g.Members, "d1") {
			t.Errorf("group %s still lists the deleted device: %q", g.Name, g.Members)
		}
		if !slices.Equal(g.Members, []string{"d2"}) {
			t.Errorf("group %s members = %q, want d2 alone", g.Name, g.Members)
		}
	}
	wantErr(t, db.Exec("x", zone.CmdDeviceDelete, map[string]string{"name": "d1"}), errkind.NotFound, `device "d1" not found`)
	if n, _ := db.DeviceCount(); n != 1 {
		t.Errorf("DeviceCount = %d, want 1", n)
	}
}

func TestDeviceContact(t *testing.T) {
	db := newDB(t)
	mustExec(t, db, zone.CmdDeviceRegister, device("d1"))
	later := t0.Add(time.Hour)
	mustExec(t, db, zone.CmdDeviceContact, map[string]any{"id": "d1", "time": later, "address": "10.0.0.9"})
	d, _ := db.Device("d1")
	if !d.LastContact.Equal(later) || d.Address != "10.0.0.9" || d.Name != "pc-d1" {
		t.Errorf("after device.contact: %+v", d)
	}
	wantErr(t, db.Exec("x", zone.CmdDeviceContact, map[string]any{"id": "ghost"}), errkind.NotFound, "not found")
}

func TestResolveDevice(t *testing.T) {
	db := newDB(t)
	for id, name := range map[string]string{"d1": "alpha", "d2": "beta", "d3": "beta"} {
		mustExec(t, db, zone.CmdDeviceRegister, map[string]any{"device": zone.Device{ID: id, Name: name}})
	}
	tests := []struct {
		ref, wantID string
		kind        errkind.Kind
	}{
		{ref: "d2", wantID: "d2"},
		{ref: "alpha", wantID: "d1"},
		{ref: "beta", kind: errkind.Refused},
		{ref: "gamma", kind: errkind.NotFound},
	}
	for _, tt := range tests {
		d, err := db.ResolveDevice(tt.ref)
		if tt.wantID != "" {
			if err != nil || d.ID != tt.wantID {
				t.Errorf("ResolveDevice(%q) = %s, %v; want %s", tt.ref, d.ID, err, tt.wantID)
			}
			continue
		}
		if errkind.Of(err) != tt.kind {
			t.Errorf("ResolveDevice(%q) = %v; want kind %d", tt.ref, err, tt.kind)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	db := newDB(t)
	wantErr(t, db.Exec("x", "zone.destroy", nil), errkind.Failure, `unknown zone command "zone.destroy"`)
	before, _ := db.Audit(100)
	if err := db.Exec("x", zone.CmdGroupCreate, "not an object"); err == nil {
		t.Error("group.create with malformed data succeeded")
	}
	if after, _ := db.Audit(100); len(after) != len(before) {
		t.Error("refused commands were audited")
	}
}

func TestAudit(t *testing.T) {
	db := newDB(t)
	steps := []struct {
		name    string
		data    any
		audited bool
		target  string
	}{
		{zone.CmdAdminCreate, zone.Admin{Name: "ops"}, true, "ops"},
		{zone.CmdTokenCreate, zone.AdminToken{Hash: "h1", Admin: "ops"}, true, "ops"},
		{zone.CmdTokenDelete, map[string]string{"name": "h1"}, true, "ops"},
		{zone.CmdGroupCreate, zone.Group{Name: "lab"}, true, "lab"},
		{zone.CmdRegKeyCreate, zone.RegistrationKey{Key: "k1", Group: "lab"}, true, "k1"},
		{zone.CmdDeviceRegister, deviceWithKey("d1", "k1"), true, "d1"},
		{zone.CmdDeviceContact, map[string]any{"id": "d1", "time": t0}, false, ""},
		{zone.CmdGroupAddDevices, map[string]any{"group": "lab", "devices": []string{"d1"}}, true, "lab"},
		{zone.CmdServerStart, map[string]any{"id": "srv1", "version": "1"}, false, ""},
		{zone.CmdDeviceDelete, map[string]string{"name": "d1"}, true, "d1"},
		{zone.CmdRegKeyDelete, map[string]string{"name": "k1"}, true, "k1"},
		{zone.CmdAdminDelete, map[string]string{"name": "ops"}, true, "ops"},
	}
	var want []zone.AuditRecord
	want = append(want, zone.AuditRecord{Seq: 1, Time: t0, Actor: "Administrator", Command: zone.CmdZoneCreate, Target: "Acme"})
	for _, s := range steps {
		if err := db.Exec("alice", s.name, s.data); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.audited {
			want = append(want, zone.AuditRecord{Seq: uint64(len(want) + 1), Time: t0, Actor: "alice", Command: s.name, Target: s.target})
		}
	}
	got, err := db.Audit(100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit log:\n got %+v\nwant %+v", got, want)
	}
	last3, _ := db.Audit(3)
	if !slices.Equal(last3, want[len(want)-3:]) {
		t.Errorf("Audit(3) = %+v, want the latest three oldest first", last3)
	}
	// The audit record never carries the command's data (it may hold secrets).
	db.Exec("alice", zone.CmdAdminCreate, zone.Admin{Name: "eve", PasswordHash: "SECRET-HASH"})
	rec, _ := db.Audit(1)
	raw, _ := json.Marshal(rec)
	if strings.Contains(string(raw), "SECRET-HASH") {
		t.Errorf("audit record holds command data: %s", raw)
	}
}

// Apply is what replicas run: the same command on the same state gives the same result.
func TestApplyDeterministic(t *testing.T) {
	c := zone.Command{Name: zone.CmdGroupCreate, Actor: "a", Time: t0, Data: json.RawMessage(`{"name":"lab"}`)}
	var dumps []string
	for range 2 {
		st, err := store.Open(filepath.Join(t.TempDir(), "z.db"), store.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Update(func(tx *bolt.Tx) error { return zone.Apply(tx, c) }); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		st.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
				return bk.ForEach(func(k, v []byte) error {
					if string(name) != "meta" {
						fmt.Fprintf(&b, "%s/%x=%s\n", name, k, v)
					}
					return nil
				})
			})
		})
		st.Close()
		dumps = append(dumps, b.String())
	}
	if dumps[0] != dumps[1] || dumps[0] == "" {
		t.Errorf("applying the same command twice gave different stores:\n%s\n%s", dumps[0], dumps[1])
	}
}

func TestConcurrentRegistrations(t *testing.T) {
	db := newDB(t)
	mustExec(t, db, zone.CmdGroupCreate, zone.Group{Name: "fleet"})
	mustExec(t, db, zone.CmdRegKeyCreate, zone.RegistrationKey{Key: "fleet-key", Group: "fleet"})
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("dev%03d", i)
			errs <- db.ExecBatch("device:"+id, zone.CmdDeviceRegister, deviceWithKey(id, "fleet-key"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := db.DeviceCount(); got != n {
		t.Errorf("DeviceCount = %d, want %d", got, n)
	}
	groups, _ := db.Groups()
	if len(groups) != 1 || len(groups[0].Members) != n {
		t.Errorf("fleet has %d members, want %d", len(groups[0].Members), n)
	}
	keys, _ := db.RegKeys()
	if keys[0].Uses != n {
		t.Errorf("key uses = %d, want %d", keys[0].Uses, n)
	}
	audit, _ := db.Audit(10 * n)
	registered := 0
	for _, r := range audit {
		if r.Command == zone.CmdDeviceRegister {
			registered++
		}
	}
	if registered != n {
		t.Errorf("%d registrations audited, want %d", registered, n)
	}
}

// A key's limit holds under concurrency: bbolt's Batch retries the refused
// registrations alone, and only the allowed number land.
func TestConcurrentRegistrationsKeyLimit(t *testing.T) {
	db := newDB(t)
	const limit, n = 30, 100
	mustExec(t, db, zone.CmdRegKeyCreate, zone.RegistrationKey{Key: "few", Limit: limit})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("dev%03d", i)
			errs <- db.ExecBatch("device:"+id, zone.CmdDeviceRegister, deviceWithKey(id, "few"))
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errkind.Of(err) != errkind.Auth:
			t.Errorf("refused registration: %v; want an Auth error", err)
		}
	}
	count, _ := db.DeviceCount()
	keys, _ := db.RegKeys()
	if ok != limit || count != limit || keys[0].Uses != limit {
		t.Errorf("%d accepted, %d stored, key used %d times; want %d of each", ok, count, keys[0].Uses, limit)
	}
}

// The satellite index follows role changes and device deletion.
func TestSatelliteDevicesIndex(t *testing.T) {
	db := newDB(t)
	for _, id := range []string{"a1", "b2", "c3"} {
		if err := db.Exec("t", zone.CmdDeviceRegister, map[string]any{"device": zone.Device{ID: id, Name: "pc-" + id}}); err != nil {
			t.Fatal(err)
		}
	}
	add := func(id string) {
		t.Helper()
		err := db.Exec("t", zone.CmdSatelliteAddRole, zone.SatelliteRoleChange(id, zone.SatelliteRole{Role: zone.SatelliteContent, ContentURL: "http://" + id + ":8080/content"}, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
	}
	ids := func() []string {
		t.Helper()
		devs, err := db.SatelliteDevices()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range devs {
			out = append(out, d.ID)
		}
		return out
	}
	add("a1")
	add("c3")
	if got := ids(); len(got) != 2 || got[0] != "a1" || got[1] != "c3" {
		t.Fatalf("satellites %v, want a1 c3", got)
	}
	if err := db.Exec("t", zone.CmdSatelliteRemoveRole, zone.SatelliteRoleChange("a1", zone.SatelliteRole{Role: zone.SatelliteContent}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("t", zone.CmdDeviceDelete, map[string]string{"name": "c3"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(); len(got) != 0 {
		t.Fatalf("satellites %v after removal and deletion, want none", got)
	}
}
