package pbserv

import (
	"testing"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdtest"
	"zonekit/internal/ui"
)

// parse runs a command through its runF: flag parsing tested without a service.
func parse[O any](t *testing.T, build func(*Options, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	io, _, _, _ := ui.Test()
	return cmdtest.Parse(t, &Options{IO: io}, build, args...)
}

func TestFlagParsing(t *testing.T) {
	t.Run("status", func(t *testing.T) {
		if o := parse(t, newStatus, "-o", "json"); o.Output != "json" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("image-upload", func(t *testing.T) {
		o := parse(t, newImageUpload, "win11.img", "-n", "win11", "--replace", "-s", "10.0.0.2:8099", "-u", "admin", "--password-env", "PW", "--cacert", "ca.pem")
		if o.File != "win11.img" || o.Name != "win11" || !o.Replace || o.Server != "10.0.0.2:8099" || o.User != "admin" || o.PasswordFrom.Env != "PW" || o.CACert != "ca.pem" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("image-download", func(t *testing.T) {
		o := parse(t, newImageDownload, "win11", "-f", "out.img")
		if o.Name != "win11" || o.File != "out.img" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("image-list", func(t *testing.T) {
		if o := parse(t, newImageList); o.Output != "table" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("imaging-build", func(t *testing.T) {
		o := parse(t, newImagingBuild, "--kernel", "6.1.0-18-amd64", "--output", "out")
		if o.Kernel != "6.1.0-18-amd64" || o.Output != "out" {
			t.Errorf("%+v", o)
		}
	})
	t.Run("service", func(t *testing.T) {
		tftp := func(o *Options, run func(*ServiceOptions) error) *cobra.Command { return newServiceCmd(o, "tftp", run) }
		o := parse(t, tftp, "restart", "--wait", "5s")
		if o.Service != "tftp" || o.Verb != "restart" || o.Wait != 5*time.Second {
			t.Errorf("%+v", o)
		}
		if o := parse(t, tftp, "status"); o.Verb != "status" {
			t.Errorf("%+v", o)
		}
	})
}
