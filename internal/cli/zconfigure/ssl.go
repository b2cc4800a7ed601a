package zconfigure

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"zonekit/internal/atomicfile"
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
	CertFile string // option 3
	KeyFile  string
	Force    bool
	CSRFile  string // write a CSR for the current key instead
}

var sslChoices = []string{
	"Remint Primary Server Certificate",
	"Remint both CA and Primary Server Certificate",
	"Import a Primary Server Certificate issued by the (external) CA",
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
  3  Import a Primary Server Certificate (--cert FILE: PEM, DER or PKCS#7,
     with its chain) that the zone CA's owner issued: the way to renew an
     expired certificate under an external CA while the server is stopped.
     It must chain to the zone CA, be valid now, certify this server's key
     (or the one given with --key FILE) and cover every name and address
     the server is reached by (-f accepts it anyway, with a warning that
     lists what breaks). --csr FILE (- for stdout) first writes a CSR for
     the current key, with those names, for the CA to sign.

On a terminal without --option a numbered menu asks; with -Z option 1 is
taken, and with --cert option 3. Afterwards start the server (zconfigure
-c Start --action start); devices that cannot connect any more run 'zac
retrust'.`,
		Example: `  zconfigure -c SSL -Z
  zconfigure -c SSL --option 2 --key-type rsa-3072 --years 5
  zconfigure -c SSL --csr server.csr
  zconfigure -c SSL --option 3 --cert renewed.p7b`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return sslRun(o)
		},
	}
	cmd.Flags().IntVar(&o.Option, "option", 0, "1 remint the server certificate, 2 remint the CA and the server certificate, 3 import a server certificate")
	cmd.Flags().StringVar(&o.CertFile, "cert", "", "option 3: the server certificate (PEM, DER or PKCS#7, with its chain)")
	cmd.Flags().StringVar(&o.KeyFile, "key", "", "option 3: the key it certifies (default: this server's current key)")
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "option 3: accept a certificate that drops names or addresses in use")
	cmd.Flags().StringVar(&o.CSRFile, "csr", "", "write a CSR for this server's current key to FILE (- for stdout) and stop")
	cmd.Flags().StringVar(&o.KeyType, "key-type", "", "key type of the new keys (default: the current CA's)")
	cmd.Flags().IntVar(&o.Years, "years", 10, "validity of a new CA in years (1-10)")
	cmd.Flags().StringSliceVar(&o.DNSNames, "dns-name", nil, "additional DNS name for the server certificate (repeatable)")
	return cmd
}

func sslRun(o *SSLOptions) error {
	if o.CSRFile != "" {
		return sslCSR(o)
	}
	choice := o.Option
	if choice == 0 && o.CertFile != "" {
		choice = 3
	}
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
	if choice < 1 || choice > 3 {
		return errkind.New(errkind.Usage, "--option %d: want 1, 2 or 3", choice)
	}
	if choice == 3 {
		return sslImport(o)
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

// sslImport is option 3: a certificate from the zone CA's owner, offline.
func sslImport(o *SSLOptions) error {
	if o.CertFile == "" {
		return errkind.New(errkind.Usage, "option 3 needs the certificate: --cert FILE")
	}
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			return nil, errkind.New(errkind.NotFound, "%s does not exist", name)
		}
		return data, err
	}
	cert, err := read(o.CertFile)
	if err != nil {
		return err
	}
	var key []byte
	if o.KeyFile != "" {
		if key, err = read(o.KeyFile); err != nil {
			return err
		}
	}
	res, err := provision.RepairSSL(provision.RepairOptions{Paths: o.Paths(), Mode: provision.RepairImport, Cert: cert, Key: key, Force: o.Force})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(o.IO.ErrOut, "zconfigure: warning: %s\n", w)
	}
	c := res.Server.Cert
	fmt.Fprintf(o.IO.Out, "Imported server certificate: %s, issued by %s, expires %s\n  SHA-256 %s\n", c.Subject.CommonName, c.Issuer, c.NotAfter.UTC().Format("2006-01-02"), pki.Fingerprint(c, "sha256"))
	fmt.Fprintln(o.IO.Out, "Start the zone server: zconfigure -c Start --action start")
	return nil
}

// sslCSR writes a CSR for this server's current key, for option 3.
func sslCSR(o *SSLOptions) error {
	csr, err := provision.ServerCSR(o.Paths())
	if err != nil {
		return err
	}
	if o.CSRFile == "-" {
		_, err := o.IO.Out.Write(csr)
		return err
	}
	if err := atomicfile.WriteFile(o.CSRFile, csr, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "Wrote a CSR for this server's key to %s: have the CA sign it, then run zconfigure -c SSL --option 3 --cert CERTFILE\n", o.CSRFile)
	return nil
}
