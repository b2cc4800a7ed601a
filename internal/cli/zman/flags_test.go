package zman

import (
	"slices"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdtest"
	"zonekit/internal/ui"
)

// parse runs a command through its runF: flag parsing tested without a
// server.
func parse[O any](t *testing.T, build func(*Factory, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	io, _, _, _ := ui.Test()
	return cmdtest.Parse(t, &Factory{IO: io, Global: &Global{}}, build, args...)
}

func TestFlagParsing(t *testing.T) {
	t.Run("admin-create", func(t *testing.T) {
		o := parse(t, newAdminCreate, "bob", "--new-password-file", "pw", "--new-password-env", "PW")
		if o.Name != "bob" || o.PasswordFile != "pw" || o.PasswordEnv != "PW" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("zenserver-backup", func(t *testing.T) {
		o := parse(t, newBackup, "z.zbk", "-f", "--passphrase-command", "pass show zone")
		if o.File != "z.zbk" || !o.Force || o.Verify || o.pass.Command != "pass show zone" || o.pass.FD != -1 {
			t.Errorf("%+v", o)
		}
	})
	t.Run("certificate-authority-export", func(t *testing.T) {
		o := parse(t, newCAExport, "-d", "--legacy", "--force", "ca.p12")
		if o.File != "ca.p12" || !o.Delete || !o.Legacy || !o.Force {
			t.Errorf("%+v", o)
		}
	})
	t.Run("server-delete", func(t *testing.T) {
		o := parse(t, newServerDelete, "zone3", "-y")
		if o.Name != "zone3" || !o.Yes {
			t.Errorf("%+v", o)
		}
	})
	t.Run("device-delete", func(t *testing.T) {
		o := parse(t, newDeviceDelete, "pc1", "pc2")
		if !slices.Equal(o.Refs, []string{"pc1", "pc2"}) || o.Yes {
			t.Errorf("%+v", o)
		}
	})
	t.Run("group-add-device", func(t *testing.T) {
		o := parse(t, newGroupAddDevice, "lab", "pc1", "pc2")
		if o.Group != "lab" || !slices.Equal(o.Devices, []string{"pc1", "pc2"}) {
			t.Errorf("%+v", o)
		}
	})
	t.Run("server-role-move", func(t *testing.T) {
		o := parse(t, newServerRoleMove, "Database", "zone2")
		if o.Role != "Database" || o.Server != "zone2" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("package-validate", func(t *testing.T) {
		o := parse(t, newPackageValidate, "1700000001", "--not-notified")
		if o.ID != "1700000001" || o.Success || !o.NotNotified || o.All {
			t.Errorf("%+v", o)
		}
	})
	t.Run("package-stats", func(t *testing.T) {
		o := parse(t, newPackageStats, "1700000001", "--device", "pc1")
		if o.ID != "1700000001" || o.Device != "pc1" || o.Status != "" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("certificate-expiry-check", func(t *testing.T) {
		o := parse(t, newExpiryCheck, "--within", "45", "--critical", "7")
		if o.Within != 45 || o.Critical != 7 {
			t.Errorf("%+v", o)
		}
	})
	t.Run("content-replication-schedule", func(t *testing.T) {
		o := parse(t, newReplicationSchedule, "--interval", "2h", "--now")
		if o.Interval != 2*time.Hour || !o.Now {
			t.Errorf("%+v", o)
		}
	})
	t.Run("context-create", func(t *testing.T) {
		o := parse(t, newContextCreate, "acme", "--use")
		if o.Name != "acme" || !o.Use {
			t.Errorf("%+v", o)
		}
	})
	t.Run("context-delete", func(t *testing.T) {
		o := parse(t, newContextDelete, "acme", "--yes")
		if o.Name != "acme" || !o.Yes {
			t.Errorf("%+v", o)
		}
	})
	t.Run("package-create", func(t *testing.T) {
		o := parse(t, newPackageCreate, "tools", "--os", "linux", "--action", "launch", "-f", "src", "-c", "install.sh --quiet",
			"--priority", "3", "--notify-user", "--notify-countdown", "30", "--fragment-size", "4M")
		if o.Spec.Name != "tools" || o.Spec.OS != "linux" || o.Spec.Action != "launch" || o.File != "src" || o.Spec.Command != "install.sh --quiet" ||
			o.Spec.Priority != 3 || !o.Spec.NotifyUser || o.Spec.NotifyCount != 30 || o.FragmentSize != "4M" || o.Spec.NotifyCanAbort {
			t.Errorf("%+v", o)
		}
	})
	t.Run("package-assign", func(t *testing.T) {
		assign := func(f *Factory, run func(*packageAssignOptions) error) *cobra.Command {
			return newPackageAssign(f, true, run)
		}
		o := parse(t, assign, "1700000001", "pc1", "pc2", "-g", "lab", "-g", "web")
		if o.ID != "1700000001" || !o.Assign || !slices.Equal(o.Target.Devices, []string{"pc1", "pc2"}) ||
			!slices.Equal(o.Target.Groups, []string{"lab", "web"}) || o.Target.All {
			t.Errorf("%+v", o)
		}
		unassign := func(f *Factory, run func(*packageAssignOptions) error) *cobra.Command {
			return newPackageAssign(f, false, run)
		}
		if o := parse(t, unassign, "1700000001", "--all"); o.Assign || !o.Target.All {
			t.Errorf("unassign: %+v", o)
		}
	})
	t.Run("package-deploy-now", func(t *testing.T) {
		if o := parse(t, newPackageDeployNow, "1700000001", "--group", "lab"); o.ID != "1700000001" || !slices.Equal(o.Target.Groups, []string{"lab"}) {
			t.Errorf("%+v", o)
		}
	})
	t.Run("package-download-config", func(t *testing.T) {
		// Only the values given change.
		o := parse(t, newDownloadConfig, "--frag-latency", "2", "--enabled=false")
		cur := api.DownloadConfig{Enabled: true, PeriodLength: 10, FragLatency: 10, CycleLatency: 60}
		if !o.set(&cur) || cur != (api.DownloadConfig{Enabled: false, PeriodLength: 10, FragLatency: 2, CycleLatency: 60}) {
			t.Errorf("%+v", cur)
		}
		o = parse(t, newDownloadConfig)
		if o.set(&cur) {
			t.Error("no flag changed something")
		}
	})
	t.Run("preboot-assign-image", func(t *testing.T) {
		o := parse(t, newPrebootAssignImage, "52:54:00:12:34:56", "win11.img", "--multicast", "lab", "--clients", "4", "--device", "pc1")
		if o.MAC != "52:54:00:12:34:56" || o.Name != "win11.img" || o.Multicast != "lab" || o.Clients != 4 || o.Wait != 300 || o.Device != "pc1" || o.Take {
			t.Errorf("%+v", o)
		}
	})
	t.Run("preboot-clear", func(t *testing.T) {
		if o := parse(t, newPrebootClear, "52:54:00:00:00:a1", "52:54:00:00:00:a2"); len(o.MACs) != 2 {
			t.Errorf("%+v", o)
		}
	})
	t.Run("registration-key-create", func(t *testing.T) {
		o := parse(t, newRegKeyCreate, "branch", "-g", "lab", "-l", "5", "-d", "Branch office")
		if o.Key.Key != "branch" || o.Key.Group != "lab" || o.Key.Limit != 5 || o.Key.Description != "Branch office" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("zenserver-restore", func(t *testing.T) {
		if o := parse(t, newRestore, "z.zbk", "--dry-run"); o.File != "z.zbk" || !o.DryRun {
			t.Errorf("%+v", o)
		}
	})
	t.Run("satellite-add-role", func(t *testing.T) {
		// The role defaults to Content.
		o := parse(t, newSatelliteAddRole, "sat1", "--content-url", "http://10.0.0.9:8080/content", "--prefetch-interval", "30m")
		if o.Device != "sat1" || o.Role != "Content" || o.ContentURL != "http://10.0.0.9:8080/content" || o.Prefetch != "30m" {
			t.Errorf("%+v", o)
		}
		if o := parse(t, newSatelliteRemoveRole, "sat1", "Authentication"); o.Device != "sat1" || o.Role != "Authentication" {
			t.Errorf("remove: %+v", o)
		}
	})
	t.Run("server-address-set", func(t *testing.T) {
		o := parse(t, newServerAddressSet, "zone2", "--ip", "10.0.0.6,10.0.0.7", "--dns", "zone2.acme", "--advertise", "zone2.acme:443")
		if o.Name != "zone2" || !slices.Equal(o.Req.IPs, []string{"10.0.0.6", "10.0.0.7"}) || !slices.Equal(o.Req.DNSNames, []string{"zone2.acme"}) || o.Req.Advertise != "zone2.acme:443" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("closest-server-rule-set", func(t *testing.T) {
		o := parse(t, newClosestRuleSet, "--group", "branch", "sat1", "localhost")
		if o.Scope.Group != "branch" || o.Scope.Zone || !slices.Equal(o.Servers, []string{"sat1", "localhost"}) {
			t.Errorf("%+v", o)
		}
	})
	t.Run("content-replication-status", func(t *testing.T) {
		if o := parse(t, newReplicationStatus, "--server", "zone2", "--package", "image:win11.img"); o.Server != "zone2" || o.Package != "image:win11.img" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("content-scrub", func(t *testing.T) {
		if o := parse(t, newContentScrub, "--package", "1700000001"); o.Package != "1700000001" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("group-create", func(t *testing.T) {
		if o := parse(t, newGroupCreate, "lab", "-d", "Lab machines"); o.Name != "lab" || o.Description != "Lab machines" {
			t.Errorf("%+v", o)
		}
	})
}
