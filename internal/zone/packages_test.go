package zone_test

import (
	"strings"
	"testing"

	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

func statuses(t *testing.T, db *zone.DB, pkg string) map[string]string {
	t.Helper()
	deps, err := db.Deployments(pkg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range deps {
		out[d.Device] = d.Status
	}
	return out
}

func TestPackageLifecycle(t *testing.T) {
	db := newDB(t)
	for _, id := range []string{"d1", "d2", "d3", "d4"} {
		mustExec(t, db, zone.CmdDeviceRegister, device(id))
	}
	p := zone.Package{ID: "100", Spec: content.Spec{Name: "tools", OS: "linux", Priority: 5, Action: "execute", Command: "true", FragmentSize: 1}}
	mustExec(t, db, zone.CmdPackageCreate, p)
	wantErr(t, db.Exec("a", zone.CmdPackageCreate, p), errkind.Exists, "already exists")
	if last, _ := db.LastPackageID(); last != 100 {
		t.Errorf("LastPackageID = %d", last)
	}
	mustExec(t, db, zone.CmdPackageAssign, zone.PackageDevices{Package: "100", Devices: []string{"d1", "d2", "d3", "d4"}, Time: t0})
	wantErr(t, db.Exec("a", zone.CmdPackageAssign, zone.PackageDevices{Package: "100", Devices: []string{"nosuch"}}), errkind.NotFound, "nosuch")
	wantErr(t, db.Exec("a", zone.CmdPackageAssign, zone.PackageDevices{Package: "999", Devices: []string{"d1"}}), errkind.NotFound, "999")

	// Reports need a notified (or at least assigned) record and a known status.
	mustExec(t, db, zone.CmdPackageNotify, zone.PackageNotify{Device: "d1", Packages: []string{"100"}, Time: t0})
	mustExec(t, db, zone.CmdPackageNotify, zone.PackageNotify{Device: "d2", Packages: []string{"100"}, Time: t0})
	mustExec(t, db, zone.CmdPackageNotify, zone.PackageNotify{Device: "d3", Packages: []string{"100"}, Time: t0})
	mustExec(t, db, zone.CmdPackageStatus, zone.PackageStatus{Device: "d1", Package: "100", Status: "SUCCESS", Time: t0})
	mustExec(t, db, zone.CmdPackageStatus, zone.PackageStatus{Device: "d2", Package: "100", Status: "ERR_BAD_DIGEST", Time: t0})
	wantErr(t, db.Exec("a", zone.CmdPackageStatus, zone.PackageStatus{Device: "d3", Package: "100", Status: "FINE"}), errkind.Usage, "not a deployment result")
	wantErr(t, db.Exec("a", zone.CmdPackageStatus, zone.PackageStatus{Device: "d1", Package: "101", Status: "SUCCESS"}), errkind.NotFound, "not assigned")
	want := map[string]string{"d1": "SUCCESS", "d2": "ERR_BAD_DIGEST", "d3": zone.StatusNotified, "d4": zone.StatusWaiting}
	if got := statuses(t, db, "100"); len(got) != 4 || got["d1"] != want["d1"] || got["d2"] != want["d2"] || got["d3"] != want["d3"] || got["d4"] != want["d4"] {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	deps, pkgs, err := db.DevicePackages("d3")
	if err != nil || len(deps) != 1 || pkgs[0].ID != "100" || deps[0].Now {
		t.Fatalf("DevicePackages(d3) = %v %v %v", deps, pkgs, err)
	}
	// Deploy now: marks the assigned, skips the others.
	mustExec(t, db, zone.CmdPackageDeployNow, zone.PackageDevices{Package: "100", Devices: []string{"d3", "nosuch"}, Time: t0})
	if deps, _, _ := db.DevicePackages("d3"); len(deps) != 1 || !deps[0].Now {
		t.Fatalf("after deploy-now: %+v", deps)
	}
	if deps, _, _ := db.DevicePackages("d4"); len(deps) != 1 || deps[0].Now {
		t.Fatalf("deploy-now reached d4: %+v", deps)
	}

	mustExec(t, db, zone.CmdPackageValidate, zone.PackageValidate{Package: "100", Mode: zone.ValidateSuccess})
	if got := statuses(t, db, "100"); len(got) != 3 || got["d1"] != "" {
		t.Fatalf("after validate success: %v", got)
	}
	mustExec(t, db, zone.CmdPackageValidate, zone.PackageValidate{Package: "100", Mode: zone.ValidateAll})
	if got := statuses(t, db, "100"); len(got) != 1 || got["d3"] != zone.StatusNotified {
		t.Fatalf("after validate all: %v", got)
	}
	wantErr(t, db.Exec("a", zone.CmdPackageValidate, zone.PackageValidate{Package: "100", Mode: "some"}), errkind.Usage, "validate mode")

	// Deleting a device or the package takes its records along, index too.
	mustExec(t, db, zone.CmdDeviceDelete, map[string]string{"name": "d3"})
	if got := statuses(t, db, "100"); len(got) != 0 {
		t.Fatalf("after device delete: %v", got)
	}
	mustExec(t, db, zone.CmdPackageAssign, zone.PackageDevices{Package: "100", Devices: []string{"d4"}, Time: t0})
	mustExec(t, db, zone.CmdPackageDelete, map[string]string{"name": "100"})
	if deps, _, _ := db.DevicePackages("d4"); len(deps) != 0 {
		t.Fatalf("device index kept %v after package delete", deps)
	}
	if counts, _ := db.DeploymentCounts(); len(counts) != 0 {
		t.Fatalf("counts after delete: %v", counts)
	}
}

func TestReportableStatus(t *testing.T) {
	for s, ok := range map[string]bool{
		"SUCCESS": true, "SUCCESS_0": true, "SUCCESS_ALREADY_SETUP": true, "ERR_EXIT_CODE_255": true, "ERR_ABORTED": true,
		"ERR_TIMEOUT": true, "NOTIFIED": false, "WAITING NOTIFICATION": false, "ERR_EXIT_CODE_": false, "SUCCESS_x": false, "": false,
	} {
		if zone.ReportableStatus(s) != ok {
			t.Errorf("ReportableStatus(%q) = %v", s, !ok)
		}
	}
}

// One mapping for both agents: the OCS agent's and zac's words for the
// same outcome land as the same status.
func TestCanonicalStatus(t *testing.T) {
	for in, want := range map[string]string{
		"SUCCESS_0": "SUCCESS", "success_3": "ERR_EXIT_CODE_3", "ERR_EXIT_CODE_3": "ERR_EXIT_CODE_3",
		"ERR_ALREADY_SETUP": "SUCCESS_ALREADY_SETUP", "SUCCESS_ALREADY_SETUP": "SUCCESS_ALREADY_SETUP",
		" ERR_EXECUTE\n": "ERR_EXECUTE", "SUCCESS": "SUCCESS", "ERR_BAD_DIGEST": "ERR_BAD_DIGEST",
	} {
		if got := zone.CanonicalStatus(in); got != want {
			t.Errorf("CanonicalStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDownloadConfig(t *testing.T) {
	db := newDB(t)
	c, err := db.DownloadConfig()
	if err != nil || c != zone.DefaultDownloadConfig() {
		t.Fatalf("default config %+v %v", c, err)
	}
	c.FragLatency = 3
	mustExec(t, db, zone.CmdDownloadConfigure, c)
	if got, _ := db.DownloadConfig(); got.FragLatency != 3 {
		t.Fatalf("config not stored: %+v", got)
	}
	c.Timeout = 0
	wantErr(t, db.Exec("a", zone.CmdDownloadConfigure, c), errkind.Usage, "timeout")
}

func TestOffers(t *testing.T) {
	act := &zone.Activation{InfoLocation: "https://s/content", PackLocation: "http://s/content"}
	pkgs := []zone.Package{
		{ID: "late", Spec: content.Spec{Priority: 5}, Activation: act},
		{ID: "inactive", Spec: content.Spec{Priority: 0}},
		{ID: "first", Spec: content.Spec{Priority: 0}, Activation: act},
		{ID: "done", Spec: content.Spec{Priority: 0}, Activation: act},
		{ID: "again", Spec: content.Spec{Priority: 5}, Activation: act},
	}
	deps := []zone.Deployment{
		{Package: "late", Status: zone.StatusWaiting},
		{Package: "inactive", Status: zone.StatusWaiting},
		{Package: "first", Status: zone.StatusNotified, Now: true},
		{Package: "done", Status: "SUCCESS"},
		{Package: "again", Status: zone.StatusWaiting},
	}
	offers, notify := zone.Offers(zone.DownloadConfig{Enabled: true}, deps, pkgs)
	var ids []string
	for _, o := range offers {
		ids = append(ids, o.Package.ID)
	}
	if strings.Join(ids, " ") != "first late again" || !offers[0].Deployment.Now {
		t.Errorf("offers %v; want first late again (priority order, stable)", ids)
	}
	if strings.Join(notify, " ") != "late again" {
		t.Errorf("notify %v; want the waiting ones: late again", notify)
	}
	if offers, notify := zone.Offers(zone.DownloadConfig{}, deps, pkgs); len(offers)+len(notify) != 0 {
		t.Errorf("downloads off: offered %v, notified %v", offers, notify)
	}
}
