package zac

import (
	"testing"

	"github.com/spf13/cobra"

	"zonekit/internal/ui"
)

// parse builds a command with a runF that captures its parsed options,
// runs it on args and returns them: flag parsing tested without a zone.
func parse[O any](t *testing.T, build func(*Options, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	io, _, _, _ := ui.Test()
	var got *O
	cmd := build(&Options{IO: io}, func(o *O) error { got = o; return nil })
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
