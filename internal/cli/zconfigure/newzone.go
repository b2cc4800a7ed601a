package zconfigure

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/ui"
)

// NewZoneOptions are the NewZone action's flags.
type NewZoneOptions struct {
	*Options
	ZoneName  string
	AdminName string
	Password  cmdutil.PasswordFlags // --admin-password-file, -env, -command
	DNSNames  []string
	IPs       []string
	Port      int
	KeyType   string
	CAYears   int
	changed   func(string) bool
}

// PasswordEnvDefault is read when no password source is given.
const PasswordEnvDefault = "ZONEKIT_ADMIN_PASSWORD"

func newNewZone(opts *Options, runF func(*NewZoneOptions) error) *cobra.Command {
	o := &NewZoneOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "NewZone",
		Short: "Create a new zone with this machine as its first Primary Server",
		Long: `Create a new management zone in the home directory: the internal zone CA,
this Primary Server (roles CertAuth, Database and MasterPrimary) with its
TLS certificate (the first DNS name as CN, every DNS name and IP address as
subject alternative names), the first administrator and the zone store.

On a terminal it asks for what the flags do not give; without one (or
with -Z) the zone name and the administrator's password are required:
the password comes from --admin-password-file, from the variable named by
--admin-password-env, or from $ZONEKIT_ADMIN_PASSWORD.`,
		Example: `  zconfigure -c NewZone --zone-name Acme --admin-password-env PW --dns zone1.acme.example --ip 10.0.0.5
  zconfigure --home ./demo -c NewZone -Z --zone-name demo --admin-password-file pw.txt --port 8443`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed = func(name string) bool { return cmd.Flags().Changed(name) }
			if runF != nil {
				return runF(o)
			}
			return newZoneRun(o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.ZoneName, "zone-name", "", "name of the new zone")
	fl.StringVar(&o.AdminName, "admin-name", "Administrator", "name of the first administrator")
	o.Password.AddFlags(fl, "admin-")
	fl.StringSliceVar(&o.DNSNames, "dns", nil, "the server's DNS names, FQDN first (repeatable; default this host's name and localhost)")
	fl.StringSliceVar(&o.IPs, "ip", nil, "the server's IP addresses (repeatable; default loopback and this host's addresses)")
	fl.IntVar(&o.Port, "port", 443, "HTTPS port of the zone server")
	fl.StringVar(&o.KeyType, "key-type", string(pki.ECDSAP256), "key type of the CA and server: ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096")
	fl.IntVar(&o.CAYears, "ca-years", 10, "validity of the zone CA in years (1-10)")
	return cmd
}

func newZoneRun(o *NewZoneOptions) error {
	if err := o.ask(); err != nil {
		return err
	}
	kt, err := pki.ParseKeyType(o.KeyType)
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	pw, err := o.password()
	if err != nil {
		return err
	}
	p := o.Paths()
	res, err := provision.NewZone(provision.NewZoneOptions{
		Paths: p, ZoneName: o.ZoneName, AdminName: o.AdminName, AdminPassword: pw,
		DNSNames: o.DNSNames, IPs: o.IPs, Port: o.Port, KeyType: kt, CAYears: o.CAYears,
		Properties: o.Properties,
	})
	if err != nil {
		return err
	}
	ui.KeyValues(o.IO.Out, [][2]string{
		{"Created zone", o.ZoneName},
		{"Home", p.Home},
		{"Primary Server", fmt.Sprintf("%s (roles %s)", res.Server.Name, "CertAuth, Database, MasterPrimary")},
		{"Server names", strings.Join(append(append([]string{}, o.DNSNames...), o.IPs...), ", ")},
		{"Zone CA", fmt.Sprintf("%s, %s, expires %s", res.CA.Cert.Subject.CommonName, pki.KeyDescription(res.CA.Cert.PublicKey), ui.Date(res.CA.Cert.NotAfter))},
		{"CA SHA-256", pki.Fingerprint(res.CA.Cert, "sha256")},
		{"CA certificate", p.CACert()},
		{"Administrator", o.AdminName},
	})
	fmt.Fprintf(o.IO.Out, "\nStart the zone server with: zconfigure --home %s -c Start --action start\n", p.Home)
	return nil
}

// ask fills in what the flags left out, on a terminal only.
func (o *NewZoneOptions) ask() error {
	can := o.CanPrompt()
	if o.ZoneName == "" {
		if !can {
			return ui.RequiredError("--zone-name")
		}
		v, err := o.Prompter.Input("Zone name:", "")
		if err != nil {
			return err
		}
		o.ZoneName = v
	}
	if !can {
		o.defaults()
		return nil
	}
	ask := func(flag, q string, dst *string) error {
		if o.changed(flag) {
			return nil
		}
		v, err := o.Prompter.Input(q, *dst)
		if err != nil {
			return err
		}
		*dst = v
		return nil
	}
	if err := ask("admin-name", "Administrator name:", &o.AdminName); err != nil {
		return err
	}
	o.defaults()
	dns, ips, port, years := strings.Join(o.DNSNames, ","), strings.Join(o.IPs, ","), strconv.Itoa(o.Port), strconv.Itoa(o.CAYears)
	for _, q := range []struct {
		flag, msg string
		dst       *string
	}{
		{"dns", "Server DNS names (FQDN first, comma-separated):", &dns},
		{"ip", "Server IP addresses (comma-separated):", &ips},
		{"port", "HTTPS port:", &port},
		{"ca-years", "CA validity in years (1-10):", &years},
	} {
		if err := ask(q.flag, q.msg, q.dst); err != nil {
			return err
		}
	}
	if !o.changed("key-type") {
		names := []string{}
		for _, k := range pki.KeyTypes() {
			names = append(names, string(k))
		}
		v, err := o.Prompter.Select("Key type:", names, o.KeyType)
		if err != nil {
			return err
		}
		o.KeyType = v
	}
	o.DNSNames, o.IPs = splitList(dns), splitList(ips)
	var err error
	if o.Port, err = strconv.Atoi(port); err != nil {
		return errkind.New(errkind.Usage, "port %q is not a number", port)
	}
	if o.CAYears, err = strconv.Atoi(years); err != nil {
		return errkind.New(errkind.Usage, "CA validity %q is not a number", years)
	}
	return nil
}

func (o *NewZoneOptions) defaults() {
	if len(o.DNSNames) == 0 {
		o.DNSNames = provision.DefaultDNSNames()
	}
	if len(o.IPs) == 0 {
		o.IPs = provision.DefaultIPs()
	}
}

func (o *NewZoneOptions) password() (string, error) {
	return o.adminPassword(context.Background(), &o.Password, PasswordEnvDefault, o.AdminName, true)
}

// adminPassword reads an administrator's password from the file or
// variable given, else from defaultEnv when it is set, else from a prompt
// (not with -Z). confirm asks twice, for a new password.
func (o *Options) adminPassword(ctx context.Context, from *cmdutil.PasswordFlags, defaultEnv, admin string, confirm bool) (string, error) {
	io := o.IO
	if o.NoPrompt {
		io = &ui.IOStreams{In: o.IO.In, Out: o.IO.Out, ErrOut: o.IO.ErrOut}
	}
	return from.Read(ctx, io, o.Prompter, "Password for "+admin+":", defaultEnv, from.Names("$"+defaultEnv), confirm)
}

func splitList(s string) []string {
	var out []string // nil, not empty, when s names nothing
	return append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })...)
}
