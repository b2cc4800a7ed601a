package zone_test

import (
	"testing"

	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

func TestPrebootWork(t *testing.T) {
	db := newDB(t)
	if _, err := db.PrebootWork("52:54:00:12:34:56"); errkind.Of(err) != errkind.NotFound {
		t.Fatalf("work before any assignment: %v", err)
	}
	if ws, err := db.PrebootWorks(); err != nil || len(ws) != 0 {
		t.Fatalf("list before any assignment: %v %v", ws, err)
	}
	if err := db.Exec("Administrator", zone.CmdPrebootAssign, zone.PrebootWork{MAC: "52:54:00:12:34:56", Action: zone.PrebootImage, Image: "win11.img"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("Administrator", zone.CmdPrebootAssign, zone.PrebootWork{MAC: "52:54:00:00:00:01", Action: zone.PrebootMenu, Menu: "tools"}); err != nil {
		t.Fatal(err)
	}
	w, err := db.PrebootWork("52:54:00:12:34:56")
	if err != nil || w.Image != "win11.img" || w.Actor != "Administrator" || !w.Assigned.Equal(t0) {
		t.Fatalf("work %+v %v", w, err)
	}
	ws, _ := db.PrebootWorks()
	if len(ws) != 2 || ws[0].MAC != "52:54:00:00:00:01" {
		t.Fatalf("list %+v", ws)
	}
	if err := db.Exec("Administrator", zone.CmdPrebootClear, map[string]string{"mac": "52:54:00:12:34:56"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("Administrator", zone.CmdPrebootClear, map[string]string{"mac": "52:54:00:12:34:56"}); errkind.Of(err) != errkind.NotFound {
		t.Fatalf("second clear: %v", err)
	}
	recs, _ := db.Audit(10)
	found := false
	for _, r := range recs {
		if r.Command == zone.CmdPrebootAssign && r.Target == "52:54:00:12:34:56" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit record: %+v", recs)
	}
}
