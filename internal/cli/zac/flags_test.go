package zac

import (
	"testing"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdtest"
	"zonekit/internal/ui"
)

// parse runs a command through its runF: flag parsing tested without a zone.
func parse[O any](t *testing.T, build func(*Options, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	io, _, _, _ := ui.Test()
	return cmdtest.Parse(t, &Options{IO: io}, build, args...)
}

func TestFlagParsing(t *testing.T) {
	t.Run("register", func(t *testing.T) {
		o := parse(t, newRegister, "-k", "branch", "--cacert", "ca.pem", "--hostname", "pc9", "https://zone1:443")
		if o.Server != "https://zone1:443" || o.Key != "branch" || o.CACert != "ca.pem" || o.Hostname != "pc9" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("unregister", func(t *testing.T) {
		if o := parse(t, newUnregister, "-f"); !o.Force {
			t.Errorf("%+v", o)
		}
	})
	t.Run("zone-config", func(t *testing.T) {
		parse(t, newZoneConfig)
	})
	t.Run("retrust", func(t *testing.T) {
		// The user comes from -u, else from $ZAC_USER.
		t.Setenv("ZAC_USER", "from-env")
		o := parse(t, newRetrust, "--password-file", "pw", "--fingerprint", "3A:5F", "--server", "https://zone1")
		if o.User != "from-env" || o.PasswordFrom.File != "pw" || o.Fingerprint != "3A:5F" || o.Server != "https://zone1" {
			t.Errorf("%+v", o)
		}
		if o := parse(t, newRetrust, "-u", "admin"); o.User != "admin" {
			t.Errorf("-u: %+v", o)
		}
	})
	t.Run("cert-info", func(t *testing.T) {
		certInfo := func(o *Options, run func(*string) error) *cobra.Command {
			return newCertInfo(o, func(_ *Options, file string) error { return run(&file) })
		}
		// -u and -p are accepted and ignored.
		if file := parse(t, certInfo, "root.der", "-u", "admin", "-p", "pw"); *file != "root.der" {
			t.Errorf("file %q", *file)
		}
	})
	t.Run("refresh", func(t *testing.T) {
		if o := parse(t, newRefresh, "--verbose", "--now"); !o.Verbose || !o.Now {
			t.Errorf("%+v", o)
		}
		if o := parse(t, newRefresh); o.Verbose || o.Now {
			t.Errorf("defaults: %+v", o)
		}
	})
}
