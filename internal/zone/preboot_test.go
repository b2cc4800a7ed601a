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

// TestPrebootTask: an imaging task moves queued -> running -> done (or
// failed) once; a finished task does not move again; a new assignment
// queues it afresh; a menu has no state.
func TestPrebootTask(t *testing.T) {
	db := newDB(t)
	mac := "52:54:00:12:34:56"
	if err := db.Exec("Administrator", zone.CmdPrebootAssign, zone.PrebootWork{MAC: mac, Action: zone.PrebootTakeImage, Image: "pc.img"}); err != nil {
		t.Fatal(err)
	}
	state := func() zone.PrebootWork {
		w, err := db.PrebootWork(mac)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := state(); w.Status != zone.TaskQueued {
		t.Fatalf("new task %q", w.Status)
	}
	report := func(status string, bytes int64, msg string) error {
		return db.Exec("server:a", zone.CmdPrebootReport, zone.PrebootReport{MAC: mac, Status: status, Bytes: bytes, Error: msg})
	}
	if err := report(zone.TaskDone, 1, ""); errkind.Of(err) != errkind.Exists {
		t.Fatalf("queued -> done: %v", err)
	}
	if err := report(zone.TaskRunning, 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := report(zone.TaskRunning, 0, ""); errkind.Of(err) != errkind.Exists {
		t.Fatalf("running twice: %v", err)
	}
	if err := report(zone.TaskDone, 4096, ""); err != nil {
		t.Fatal(err)
	}
	if w := state(); w.Status != zone.TaskDone || w.Bytes != 4096 || w.Started.IsZero() || w.Finished.IsZero() {
		t.Fatalf("done task %+v", w)
	}
	if err := report(zone.TaskFailed, 0, "late"); errkind.Of(err) != errkind.Exists {
		t.Fatalf("done -> failed: %v", err)
	}
	if err := db.Exec("Administrator", zone.CmdPrebootAssign, zone.PrebootWork{MAC: mac, Action: zone.PrebootImage, Image: "pc.img"}); err != nil {
		t.Fatal(err)
	}
	if w := state(); w.Status != zone.TaskQueued || w.Bytes != 0 || !w.Finished.IsZero() {
		t.Fatalf("reassigned task %+v", w)
	}
	if err := report(zone.TaskFailed, 0, "disk too small"); err != nil {
		t.Fatal(err)
	}
	if w := state(); w.Status != zone.TaskFailed || w.Error != "disk too small" {
		t.Fatalf("failed task %+v", w)
	}
	if err := db.Exec("Administrator", zone.CmdPrebootAssign, zone.PrebootWork{MAC: "52:54:00:00:00:01", Action: zone.PrebootMenu, Menu: "tools"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("server:a", zone.CmdPrebootReport, zone.PrebootReport{MAC: "52:54:00:00:00:01", Status: zone.TaskRunning}); errkind.Of(err) != errkind.Invalid {
		t.Fatalf("report on a menu: %v", err)
	}
	if err := db.Exec("server:a", zone.CmdPrebootReport, zone.PrebootReport{MAC: "52:54:00:00:00:02", Status: zone.TaskRunning}); errkind.Of(err) != errkind.NotFound {
		t.Fatalf("report without work: %v", err)
	}
}
