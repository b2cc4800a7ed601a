package zconfigure

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/ui"
)

// JoinZoneOptions are the JoinZone action's flags.
type JoinZoneOptions struct {
	*Options
	Server      string
	Fingerprint string
	AdminName   string
	Password    cmdutil.PasswordFlags // --admin-password-file, -env, -command
	DNSNames    []string
	IPs         []string
	Port        int
	Advertise   string
	KeyType     string
}

// AdminPasswordEnvDefault is read for JoinZone when no password source is given.
const AdminPasswordEnvDefault = "ZMAN_PASSWORD"

func newJoinZone(opts *Options, runF func(*JoinZoneOptions) error) *cobra.Command {
	o := &JoinZoneOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "JoinZone",
		Short: "Add this machine to an existing zone as another Primary Server",
		Long: `Add this machine to an existing zone as a Primary Server. JoinZone asks a
running server of the zone (--server) for a server certificate from the
zone CA (the key is made here and never leaves), records the new server in
the zone, copies the zone store and writes this server's configuration.
The zone CA is accepted only if its SHA-256 fingerprint matches
--fingerprint (zman certificate-authority-info prints it), so nothing is
sent to a server that merely claims to be the zone.

At its first start (zconfigure -c Start) the new server asks the zone to
make it a replication member; from then on every change made on any server
reaches it, and it serves administrators and agents like the others.

The administrator's password comes from --admin-password-file, the
variable named by --admin-password-env, or $ZMAN_PASSWORD; on a terminal
it is asked for.`,
		Example: `  zconfigure -c JoinZone --server https://zone1.acme.example --fingerprint 3A:5F:... \
      --admin-name Administrator --admin-password-env PW --dns zone2.acme.example --ip 10.0.0.6
  zconfigure -c Start --action start`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return joinZoneRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Server, "server", "", "a running server of the zone (https://host:port)")
	fl.StringVar(&o.Fingerprint, "fingerprint", "", "SHA-256 fingerprint of the zone CA to accept")
	fl.StringVar(&o.AdminName, "admin-name", "Administrator", "zone administrator to authenticate as")
	o.Password.AddFlags(fl, "admin-")
	fl.StringSliceVar(&o.DNSNames, "dns", nil, "this server's DNS names, FQDN first (repeatable; default this host's name and localhost)")
	fl.StringSliceVar(&o.IPs, "ip", nil, "this server's IP addresses (repeatable; default loopback and this host's addresses)")
	fl.IntVar(&o.Port, "port", 443, "HTTPS port of this zone server")
	fl.StringVar(&o.Advertise, "advertise", "", "host:port where the zone's servers reach this one (default: first DNS name and --port)")
	fl.StringVar(&o.KeyType, "key-type", string(pki.ECDSAP256), "key type of this server's key: ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096")
	return cmd
}

func joinZoneRun(ctx context.Context, o *JoinZoneOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Server == "" {
		if !o.CanPrompt() {
			return ui.RequiredError("--server")
		}
		v, err := o.Prompter.Input("A running server of the zone (https://host:port):", "")
		if err != nil {
			return err
		}
		o.Server = v
	}
	if o.Fingerprint == "" {
		t, err := provision.ZoneCA(ctx, o.Server)
		if err != nil {
			return err
		}
		if !o.CanPrompt() {
			return ui.RequiredErrorHint("--fingerprint", "the zone CA at "+o.Server+" claims SHA-256 "+fingerprintOf(t.CAPEM)+"; compare it with 'zman certificate-authority-info' on a server you trust")
		}
		fp := fingerprintOf(t.CAPEM)
		ok, err := o.Prompter.Confirm(fmt.Sprintf("The zone CA has SHA-256 %s. Is that the fingerprint 'zman certificate-authority-info' shows?", fp), false)
		if err != nil {
			return err
		}
		if !ok {
			return errkind.New(errkind.Cancelled, "the zone CA was not confirmed")
		}
		o.Fingerprint = fp
	}
	kt, err := pki.ParseKeyType(o.KeyType)
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	if len(o.DNSNames) == 0 {
		o.DNSNames = provision.DefaultDNSNames()
	}
	if len(o.IPs) == 0 {
		o.IPs = provision.DefaultIPs()
	}
	pw, err := o.adminPassword(ctx, &o.Password, AdminPasswordEnvDefault, o.AdminName, false)
	if err != nil {
		return err
	}
	p := o.Paths()
	res, err := provision.JoinZone(ctx, provision.JoinZoneOptions{Paths: p, ServerURL: o.Server, Fingerprint: o.Fingerprint,
		AdminName: o.AdminName, AdminPassword: pw, DNSNames: o.DNSNames, IPs: o.IPs, Port: o.Port, Advertise: o.Advertise,
		KeyType: kt, Properties: o.Properties})
	if err != nil {
		return err
	}
	ui.KeyValues(o.IO.Out, [][2]string{
		{"Joined zone", res.Zone},
		{"Home", p.Home},
		{"Primary Server", o.DNSNames[0]},
		{"Server names", strings.Join(append(append([]string{}, o.DNSNames...), o.IPs...), ", ")},
		{"Zone CA SHA-256", res.CA},
		{"Replication via", res.Join},
	})
	fmt.Fprintf(o.IO.Out, "\nStart the zone server with: zconfigure --home %s -c Start --action start\n", p.Home)
	return nil
}

func fingerprintOf(caPEM string) string {
	c, err := pki.ParseCertPEM([]byte(caPEM))
	if err != nil {
		return "(unreadable certificate)"
	}
	return pki.Fingerprint(c, "sha256")
}
