package zac

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/spf13/cobra"

	"zonekit/internal/agent"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/ui"
)

// RetrustOptions are the retrust command's inputs.
type RetrustOptions struct {
	*Options
	User         string
	Password     string
	PasswordFrom cmdutil.PasswordFlags
	Server       string
	Fingerprint  string
	Prompter     ui.Prompter
}

func newRetrust(opts *Options, runF func(*RetrustOptions) error) *cobra.Command {
	o := &RetrustOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "retrust -u ADMIN [--fingerprint SHA256]",
		Aliases: []string{"retr"},
		Short:   "Re-establish this device's trust in its zone after a change of CA",
		Long: `Re-establish trust between this device and its zone when the device missed
a change of the zone CA (it was off during the whole change, or the CA was
repaired offline with 'zconfigure -c SSL').

zac asks a zone server for the zone's current CA and believes it only if
the device already trusts it, if a CA the device trusts certified it (the
cross certificate every internal remint leaves behind), if it matches
--fingerprint (the SHA-256 that 'zman certificate-authority-info' prints),
or if you confirm it at the terminal. Only then are the administrator's
credentials sent, over TLS verified against that CA, and the zone issues
the device a new certificate.

The password comes from --password-file, --password-env, --password-command,
-p, $ZAC_PASSWORD or a prompt; prefer a file, a variable or a command, as
arguments are visible to other users.`,
		Example: `  zac retrust -u admin --password-file /root/.zone-pass
  ZAC_PASSWORD=... zac retr -u admin --fingerprint 3A:5F:...`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.User = cmdutil.FlagOrEnv(cmd.Flags(), "user", "ZAC_USER")
			if runF != nil {
				return runF(o)
			}
			return retrustRun(cmd.Context(), cmd, o)
		},
	}
	cmd.Flags().StringVarP(&o.User, "user", "u", "", "zone administrator (or ZAC_USER)")
	cmd.Flags().StringVarP(&o.Password, "password", "p", "", "administrator password (or ZAC_PASSWORD; visible to other users, prefer the variable)")
	o.PasswordFrom.AddFlags(cmd.Flags(), "")
	cmd.Flags().StringVar(&o.Server, "server", "", "zone server to ask, https://SERVER:PORT (default the servers this device knows)")
	cmd.Flags().StringVar(&o.Fingerprint, "fingerprint", "", "SHA-256 fingerprint of the zone CA to accept")
	return cmd
}

func retrustRun(ctx context.Context, cmd *cobra.Command, o *RetrustOptions) error {
	p := o.Prompter
	if p == nil {
		p = ui.NewPrompter(o.IO)
	}
	if o.User == "" {
		if !o.IO.CanPrompt() {
			return ui.RequiredError("-u/--user (or ZAC_USER)")
		}
		var err error
		if o.User, err = p.Input("Administrator:", ""); err != nil {
			return err
		}
	}
	// A password source flag beats ZAC_PASSWORD; beside -p it is a mistake.
	pass := cmdutil.FlagOrEnv(cmd.Flags(), "password", "ZAC_PASSWORD")
	if o.PasswordFrom.Given() {
		if cmd.Flags().Changed("password") {
			return errkind.New(errkind.Usage, "give the password one way only: -p/--password or %s", o.PasswordFrom.Names())
		}
		pass = ""
	}
	if pass == "" {
		var err error
		pass, err = o.PasswordFrom.Read(ctx, o.IO, p, "Password for "+o.User+":", "",
			o.PasswordFrom.Names("-p/--password", "ZAC_PASSWORD"), false)
		if err != nil {
			return err
		}
	}
	ro := agent.RetrustOptions{Server: o.Server, User: o.User, Password: pass, Fingerprint: o.Fingerprint}
	if o.IO.CanPrompt() && o.Fingerprint == "" {
		ro.Confirm = func(ca *x509.Certificate) (bool, error) {
			fmt.Fprintf(o.IO.ErrOut, "Nothing this device trusts vouches for the zone's CA:\n  %s\n  SHA-256 %s\n", ca.Subject, pki.Fingerprint(ca, "sha256"))
			return p.Confirm("Trust it? (compare with 'zman certificate-authority-info')", false)
		}
	}
	res, err := o.Agent().Retrust(ctx, ro)
	if err != nil {
		return err
	}
	format, err := ui.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(o.IO.Out, res)
	}
	fmt.Fprintf(o.IO.Out, "Trust re-established with %s: zone CA %s (SHA-256 %s, %s); device %s has a new certificate.\n",
		res.Server, res.CA, res.SHA256, res.VouchedBy, res.DeviceID)
	return nil
}

func newCertInfo(opts *Options, runF func(*Options, string) error) *cobra.Command {
	var user, pass string
	cmd := &cobra.Command{
		Use:     "cert-info FILE [-u ADMIN -p PASSWORD]",
		Aliases: []string{"cin"},
		Short:   "Add a root certificate to this device's trust store",
		Long: `Add the CA certificate(s) in FILE (PEM, DER or PKCS#7) to the agent's trust
store (cacert.pem in its home), so that the device trusts zone servers
whose certificates they issued: for example the root of an external CA the
zone is changing to. Certificates already trusted are skipped. Roots added
this way are kept (in added-ca.pem) when the zone refreshes the trust
store.

-u and -p, which the reference's command line carries, are accepted but
not needed: the trust store is this device's, guarded by its file
permissions, and no zone server is asked.`,
		Example: `  zac cert-info corp-root.der
  zac cert-info corp-root.pem -u admin -p "$PW"`,
		Args: cmdutil.ExactArgs(1, "the certificate file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts, args[0])
			}
			added, err := opts.Agent().AddTrustedCA(args[0])
			if err != nil {
				return err
			}
			if len(added) == 0 {
				fmt.Fprintf(opts.IO.Out, "Already trusted: nothing added.\n")
				return nil
			}
			for _, c := range added {
				fmt.Fprintf(opts.IO.Out, "Trusted %s (SHA-256 %s).\n", c.Subject, pki.Fingerprint(c, "sha256"))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "user", "u", "", "accepted for the reference's command line; not needed")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "accepted for the reference's command line; not needed")
	return cmd
}
