package zconfigure

import (
	"fmt"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
)

// SSLOptions are the SSL action's inputs.
type SSLOptions struct {
	*Options
	Option   int
	KeyType  string
	Years    int
	DNSNames []string
}

var sslChoices = []string{
	"Remint Primary Server Certificate",
	"Remint both CA and Primary Server Certificate",
}

func newSSL(opts *Options, runF func(*SSLOptions) error) *cobra.Command {
	o := &SSLOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "SSL",
		Short: "Repair expired certificates offline: remint the server certificate, or the CA too",
		Long: `Repair the zone's certificates when they have expired and nothing can connect.
Run it on the Primary Server with the zone server stopped.

  1  Remint Primary Server Certificate: a new key and certificate for this
     server under the current zone CA (which must still be valid and whose
     key this server holds).
  2  Remint both CA and Primary Server Certificate: a new internal CA with
     the same subject (its key certified by the old CA's key, so agents can
     follow with 'zac retrust'), and this server's certificate under it.

On a terminal without --option a numbered menu asks; with -Z option 1 is
taken. Afterwards start the server (zconfigure -c Start --action start);
devices that cannot connect any more run 'zac retrust'.`,
		Example: `  zconfigure -c SSL -Z
  zconfigure -c SSL --option 2 --key-type rsa-3072 --years 5`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return sslRun(o)
		},
	}
	cmd.Flags().IntVar(&o.Option, "option", 0, "1 remint the server certificate, 2 remint the CA and the server certificate")
	cmd.Flags().StringVar(&o.KeyType, "key-type", "", "key type of the new keys (default: the current CA's)")
	cmd.Flags().IntVar(&o.Years, "years", 10, "validity of a new CA in years (1-10)")
	cmd.Flags().StringSliceVar(&o.DNSNames, "dns-name", nil, "additional DNS name for the server certificate (repeatable)")
	return cmd
}

func sslRun(o *SSLOptions) error {
	choice := o.Option
	if choice == 0 {
		if o.CanPrompt() {
			i, err := o.Prompter.Menu("Choose an option:", sslChoices)
			if err != nil {
				return err
			}
			choice = i + 1
		} else {
			choice = 1
		}
	}
	if choice != 1 && choice != 2 {
		return errkind.New(errkind.Usage, "--option %d: want 1 or 2", choice)
	}
	var kt pki.KeyType
	if o.KeyType != "" {
		var err error
		if kt, err = pki.ParseKeyType(o.KeyType); err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
	}
	res, err := provision.RepairSSL(provision.RepairOptions{Paths: o.Paths(), Mode: provision.RepairMode(choice), KeyType: kt, Years: o.Years, DNSNames: o.DNSNames})
	if err != nil {
		return err
	}
	out := o.IO.Out
	if res.CA != nil {
		fmt.Fprintf(out, "New zone CA: %s, expires %s\n  SHA-256 %s\n", res.CA.Cert.Subject, res.CA.Cert.NotAfter.UTC().Format("2006-01-02"), pki.Fingerprint(res.CA.Cert, "sha256"))
	}
	c := res.Server.Cert
	fmt.Fprintf(out, "New server certificate: %s, expires %s\n  SHA-256 %s\n", c.Subject.CommonName, c.NotAfter.UTC().Format("2006-01-02"), pki.Fingerprint(c, "sha256"))
	fmt.Fprintln(out, "Start the zone server: zconfigure -c Start --action start")
	if res.CA != nil {
		fmt.Fprintln(out, "Devices re-establish trust with: zac retrust -u ADMINISTRATOR")
	}
	return nil
}
