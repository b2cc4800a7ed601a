package zconfigure

import (
	"slices"
	"testing"

	"github.com/spf13/cobra"

	"zonekit/internal/ui"
)

// parseAction runs zconfigure args with the action built by build, whose
// runF captures the parsed options, and returns them.
func parseAction[O any](t *testing.T, build func(*Options, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	io, _, _, _ := ui.Test()
	opts := &Options{IO: io}
	var got *O
	root := rootWith(opts, build(opts, func(o *O) error { got = o; return nil }))
	if err := execute(t, root, io, args...); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if got == nil {
		t.Fatalf("%q: the action did not run", args)
	}
	return got
}

// The actions without a flag test of their own (NewZone, Start and the
// packs have theirs).
func TestFlagParsing(t *testing.T) {
	t.Run("JoinZone", func(t *testing.T) {
		o := parseAction(t, newJoinZone, "-Z", "-c", "JoinZone", "--server", "https://zone1:443", "--fingerprint", "3A:5F",
			"--admin-password-command", "pass show zone", "--dns", "zone2,zone2.acme", "--ip", "10.0.0.6",
			"--port", "8443", "--advertise", "zone2.acme:8443", "--key-type", "rsa-2048")
		if o.Server != "https://zone1:443" || o.Fingerprint != "3A:5F" || o.AdminName != "Administrator" ||
			o.Password.Command != "pass show zone" || !slices.Equal(o.DNSNames, []string{"zone2", "zone2.acme"}) ||
			!slices.Equal(o.IPs, []string{"10.0.0.6"}) || o.Port != 8443 || o.Advertise != "zone2.acme:8443" ||
			o.KeyType != "rsa-2048" || !o.NoPrompt {
			t.Errorf("%+v", o)
		}
	})
	t.Run("RecoverCluster", func(t *testing.T) {
		if o := parseAction(t, newRecoverCluster, "-cRecoverCluster", "--rejoin"); !o.Rejoin {
			t.Errorf("%+v", o)
		}
		if o := parseAction(t, newRecoverCluster, "-c", "RecoverCluster"); o.Rejoin {
			t.Errorf("default: %+v", o)
		}
	})
	t.Run("SSL", func(t *testing.T) {
		o := parseAction(t, newSSL, "--home", "/z", "-c", "SSL", "--option", "3", "--cert", "srv.p7b", "--key", "srv.key", "-f",
			"--dns-name", "www", "--dns-name", "alias")
		if o.Home != "/z" || o.Option != 3 || o.CertFile != "srv.p7b" || o.KeyFile != "srv.key" || !o.Force ||
			!slices.Equal(o.DNSNames, []string{"www", "alias"}) || o.Years != 10 || o.CSRFile != "" {
			t.Errorf("%+v", o)
		}
		if o := parseAction(t, newSSL, "-c", "SSL", "--csr", "-", "--key-type", "rsa-3072", "--years", "3"); o.CSRFile != "-" || o.KeyType != "rsa-3072" || o.Years != 3 {
			t.Errorf("%+v", o)
		}
	})
}
