package zman

import (
	"slices"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/ui"
)

// parse builds a command with a runF that captures its parsed options,
// runs it on args and returns them: flag parsing tested without a server.
func parse[O any](t *testing.T, build func(*Factory, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	io, _, _, _ := ui.Test()
	f := &Factory{IO: io, Global: &Global{}}
	var got *O
	cmd := build(f, func(o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Out)
	cmd.SetErr(io.ErrOut)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%s %q: %v", cmd.Name(), args, err)
	}
	if got == nil {
		t.Fatalf("%s %q: runF not called", cmd.Name(), args)
	}
	return got
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
}
