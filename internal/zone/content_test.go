package zone_test

import (
	"slices"
	"testing"
	"time"

	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

func TestContentStates(t *testing.T) {
	db := newDB(t)
	mustExec(t, db, zone.CmdPackageCreate, zone.Package{ID: "100", Spec: content.Spec{Name: "tools", OS: "linux", Action: "execute", Command: "true", FragmentSize: 1}})
	st := zone.ContentState{Server: "srv1", Package: "100", State: zone.ContentInFlight, Bytes: 10, Size: 100}
	if err := db.SetContentState(st); err != nil {
		t.Fatal(err)
	}
	st.State, st.Bytes = zone.ContentPresent, 100
	if err := db.SetContentState(st); err != nil {
		t.Fatal(err)
	}
	img := zone.ContentState{Server: "srv1", Package: zone.ImagePrefix + "win.zmg", State: zone.ContentPresent}
	if err := db.SetContentState(img); err != nil {
		t.Fatal(err)
	}
	wantErr(t, db.SetContentState(zone.ContentState{Server: "srv1", Package: "100", State: "half"}), errkind.Usage, "want present")
	wantErr(t, db.SetContentState(zone.ContentState{Server: "nosuch", Package: "100", State: zone.ContentPresent}), errkind.NotFound, "nosuch")
	// A report about a deleted package is dropped, not recorded.
	if err := db.SetContentState(zone.ContentState{Server: "srv1", Package: "999", State: zone.ContentPresent}); err != nil {
		t.Fatal(err)
	}
	got, _ := db.ContentStates()
	if len(got) != 2 || got[0].Package != "100" || got[0].State != zone.ContentPresent || got[0].Bytes != 100 {
		t.Fatalf("states %+v", got)
	}
	mustExec(t, db, zone.CmdPackageDelete, map[string]string{"name": "100"})
	if got, _ := db.ContentStates(); len(got) != 1 || got[0].Package != zone.ImagePrefix+"win.zmg" {
		t.Fatalf("after delete %+v", got)
	}
	// Bookkeeping stays out of the audit log.
	recs, _ := db.Audit(100)
	for _, r := range recs {
		if r.Command == zone.CmdContentState {
			t.Fatal("content.state audited")
		}
	}
}

func TestReplicationSchedule(t *testing.T) {
	db := newDB(t)
	if s, _ := db.ReplicationSchedule(); s.Interval != zone.DefaultReplicationInterval {
		t.Fatalf("default %v", s.Interval)
	}
	mustExec(t, db, zone.CmdContentScheduleSet, zone.ReplicationSchedule{Interval: time.Hour})
	wantErr(t, db.Exec("a", zone.CmdContentScheduleSet, zone.ReplicationSchedule{Interval: time.Second}), errkind.Usage, "at least 1m")
	mustExec(t, db, zone.CmdContentReplicateNow, map[string]any{"time": t0})
	if s, _ := db.ReplicationSchedule(); s.Interval != time.Hour || !s.Requested.Equal(t0) {
		t.Fatalf("schedule %+v", s)
	}
}

func TestServerOrder(t *testing.T) {
	db := newDB(t)
	servers := []zone.Server{{ID: "s1", Name: "c.example"}, {ID: "s2", Name: "a.example"}, {ID: "s3", Name: "b.example"}}
	names := func(ss []zone.Server) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	dev := zone.Device{ID: "d1"}
	groups := []zone.Group{{Name: "berlin", Members: []string{"d1"}}, {Name: "paris", Members: []string{"d2"}}}

	// No rule: the first (activating or answering) server, then by name.
	if got := names(zone.ServerOrder(servers, nil, groups, dev, "s1")); !slices.Equal(got, []string{"c.example", "a.example", "b.example"}) {
		t.Fatalf("default order %v", got)
	}
	rules := []zone.ClosestServerRule{
		{Scope: zone.ScopeZone, Servers: []string{"s3"}},
		{Scope: zone.ScopeGroup, Target: "berlin", Servers: []string{"s2", "s1"}},
		{Scope: zone.ScopeGroup, Target: "paris", Servers: []string{"s1"}},
	}
	if got := names(zone.ServerOrder(servers, rules, groups, dev, "s1")); !slices.Equal(got, []string{"a.example", "c.example", "b.example"}) {
		t.Fatalf("group rule %v", got)
	}
	if got := names(zone.ServerOrder(servers, rules, groups, zone.Device{ID: "d9"}, "")); !slices.Equal(got, []string{"b.example", "a.example", "c.example"}) {
		t.Fatalf("zone rule %v", got)
	}
	rules = append(rules, zone.ClosestServerRule{Scope: zone.ScopeDevice, Target: "d1", Servers: []string{"s3"}})
	if got := names(zone.ServerOrder(servers, rules, groups, dev, "s1")); !slices.Equal(got, []string{"b.example", "c.example", "a.example"}) {
		t.Fatalf("device rule %v", got)
	}

	// Rules in the store: scopes checked, servers must exist.
	mustExec(t, db, zone.CmdDeviceRegister, device("d1"))
	mustExec(t, db, zone.CmdGroupCreate, zone.Group{Name: "berlin"})
	mustExec(t, db, zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeGroup, Target: "berlin", Servers: []string{"srv1"}})
	mustExec(t, db, zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeZone, Servers: []string{"srv1"}})
	mustExec(t, db, zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeDevice, Target: "d1", Servers: []string{"srv1"}})
	wantErr(t, db.Exec("a", zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeZone, Servers: []string{"nosuch"}}), errkind.NotFound, "nosuch")
	wantErr(t, db.Exec("a", zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeGroup, Target: "x", Servers: []string{"srv1"}}), errkind.NotFound, "group")
	wantErr(t, db.Exec("a", zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeZone, Servers: []string{"srv1", "srv1"}}), errkind.Usage, "twice")
	wantErr(t, db.Exec("a", zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeZone}), errkind.Usage, "at least one")
	got, _ := db.ClosestServerRules()
	if len(got) != 3 || got[0].Scope != zone.ScopeZone || got[1].Scope != zone.ScopeGroup || got[2].Scope != zone.ScopeDevice {
		t.Fatalf("rules %+v", got)
	}
	mustExec(t, db, zone.CmdClosestServerRuleDrop, zone.ClosestServerRule{Scope: zone.ScopeGroup, Target: "berlin"})
	wantErr(t, db.Exec("a", zone.CmdClosestServerRuleDrop, zone.ClosestServerRule{Scope: zone.ScopeGroup, Target: "berlin"}), errkind.NotFound, "no closest-server rule")
	if got, _ := db.ClosestServerRules(); len(got) != 2 {
		t.Fatalf("after clear %+v", got)
	}
}
