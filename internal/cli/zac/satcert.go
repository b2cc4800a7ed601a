package zac

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"software.sslmate.com/src/go-pkcs12"

	"zonekit/internal/agent"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/ui"
)

// SatCertOptions are the inputs of asr, rsc and iac.
type SatCertOptions struct {
	*Options
	Type             string
	Cert             string
	Key              string
	CAs              []string
	Keystore         string
	KeystorePassFile string
	Prompter         ui.Prompter
	// The reference's Java keystore, alias, credentials and restart flag:
	// accepted so that its command line runs, and not needed here.
	refKeystore, refKeystorePass, refAlias, refUser, refPassword string
	refRestart                                                   bool
}

func newAuthServerReconfigure(opts *Options) *cobra.Command {
	o := &SatCertOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "authentication-server-reconfigure -t all",
		Aliases: []string{"asr"},
		Short:   "Have the zone CA issue this satellite's certificate for all its roles",
		Long: `Make a new key on this satellite and have the zone CA certify it, through
the zone servers, for the names of all the satellite's roles (the hosts of
its auth and content URLs, as set with 'zman satellite-add-role'). The key
never leaves the device. The certificate and key go to HOME/satellite/cert.pem
and HOME/security/satellite.key; a running 'zac satellite-serve' takes
them at its next handshake. Agents, which trust only the zone CA, accept
it. Run it after adding a role or changing a role's URL, and after a
change of the zone CA.`,
		Example: `  zac authentication-server-reconfigure -t all
  zac asr -t all`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.EqualFold(o.Type, "all") {
				return errkind.New(errkind.Usage, "-t/--type %q: only \"all\" is supported (one certificate covers all the satellite's roles)", o.Type)
			}
			return satCertRequest(cmd.Context(), o, false)
		},
	}
	cmd.Flags().StringVarP(&o.Type, "type", "t", "", `which roles' certificates to reconfigure: all (required)`)
	return cmd
}

func newRemintSatelliteCert(opts *Options) *cobra.Command {
	o := &SatCertOptions{Options: opts}
	return &cobra.Command{
		Use:     "remint-satellite-cert",
		Aliases: []string{"rsc"},
		Short:   "Remint this satellite's certificate from the current zone CA",
		Long: `Have the zone CA certify this satellite's current key again, for the names
of all its roles (after a change or remint of the zone CA, or when the
certificate nears its end). Without a key yet, a new one is made, as 'zac
asr -t all' does. A running 'zac satellite-serve' takes the new
certificate at its next handshake.`,
		Example: `  zac remint-satellite-cert
  zac rsc`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return satCertRequest(cmd.Context(), o, true)
		},
	}
}

func satCertRequest(ctx context.Context, o *SatCertOptions, keep bool) error {
	res, err := o.Agent().RequestSatelliteCert(ctx, keep)
	if err != nil {
		return err
	}
	return printSatCert(o, res, "issued by the zone")
}

func printSatCert(o *SatCertOptions, res agent.SatelliteCertResult, how string) error {
	format, err := ui.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(o.IO.Out, res)
	}
	fmt.Fprintf(o.IO.Out, "Satellite certificate %s: %s (%s), %s, valid until %s.\n", how, res.Subject,
		strings.Join(res.Names, ", "), res.Issuer, res.NotAfter.Format(time.DateOnly))
	return nil
}

func newImportAuthCert(opts *Options) *cobra.Command {
	o := &SatCertOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "import-authentication-cert -c CERT -k KEY [--ca CA]... | --keystore FILE.p12",
		Aliases: []string{"iac"},
		Short:   "Import a certificate and key for this satellite",
		Long: `Install a server certificate and its private key, made elsewhere (an
external CA that the zone trusts, or the zone CA by hand), as this
satellite's HTTPS certificate. Give the certificate (-c, PEM or DER, the
chain may follow the leaf) and key (-k/--pk, PEM or DER) with the signing
authority's certificates (--ca, repeatable) when they are not in the
certificate file, or a PKCS#12 keystore (--keystore) whose passphrase
comes from --keystore-pass-file, $ZAC_KEYSTORE_PASSPHRASE or a prompt.

The certificate must be for the key, serve TLS, and chain to a CA of this
device's trust store (cacert.pem): agents trust nothing else. Anything
else is refused and the current certificate stays. A running 'zac
satellite-serve' takes the new one at its next handshake.`,
		Example: `  zac import-authentication-cert -c sat1.pem -k sat1.key
  zac iac --pk private-key.der -c signed-server-certificate.der --ca signing-authority.der
  ZAC_KEYSTORE_PASSPHRASE=... zac iac --keystore sat1.p12`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return importAuthCertRun(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Cert, "cert", "c", "", "the signed server certificate (PEM or DER; chain may follow)")
	f.StringVarP(&o.Key, "private-key", "k", "", "its private key (PEM or DER)")
	f.StringVar(&o.Key, "pk", "", "same as --private-key (the reference's spelling)")
	f.StringArrayVar(&o.CAs, "ca", nil, "the signing authority's certificate (repeatable)")
	f.StringVar(&o.Keystore, "keystore", "", "a PKCS#12 file holding key, certificate and chain, instead of -c/-k")
	f.StringVar(&o.KeystorePassFile, "keystore-pass-file", "", "read the keystore passphrase from the first line of this file")
	// The reference's command line (zac iac -pk K -c C -ca CA -ks JKS -ksp P
	// -a ALIAS -u U -p P -rc): ReferenceArgs turns its single-dash names
	// into these; the Java keystore, alias and credentials say where the
	// reference stores the pair, which zac keeps in its own home.
	f.StringVar(&o.refKeystore, "ref-ks", "", "the reference's -ks (its Java keystore): accepted, not needed")
	f.StringVar(&o.refKeystorePass, "ref-ksp", "", "the reference's -ksp: accepted, not needed")
	f.StringVar(&o.refAlias, "ref-a", "", "the reference's -a (alias): accepted, not needed")
	f.BoolVar(&o.refRestart, "ref-rc", false, "the reference's -rc (restart): not needed, satellite-serve takes the certificate at its next handshake")
	f.StringVarP(&o.refUser, "user", "u", "", "accepted for the reference's command line; not needed")
	f.StringVarP(&o.refPassword, "password", "p", "", "accepted for the reference's command line; not needed")
	for _, n := range []string{"ref-ks", "ref-ksp", "ref-a", "ref-rc"} {
		f.MarkHidden(n)
	}
	return cmd
}

// referenceIACFlags are the reference's single-dash multi-letter names
// for zac iac, and ours.
var referenceIACFlags = map[string]string{
	"-pk": "--pk", "-ca": "--ca", "-ks": "--ref-ks", "-ksp": "--ref-ksp", "-a": "--ref-a", "-rc": "--ref-rc",
}

// ReferenceArgs rewrites the reference's single-dash flags of zac iac
// (-pk, -ca, -ks, -ksp, -a, -rc), which a POSIX parser reads as bundles of
// one-letter flags, into zac's names; other commands' arguments pass as
// they are.
func ReferenceArgs(args []string) []string {
	i := slices.IndexFunc(args, func(a string) bool { return a == "iac" || a == "import-authentication-cert" })
	if i < 0 {
		return args
	}
	out := slices.Clone(args)
	for j := i + 1; j < len(out); j++ {
		if out[j] == "--" {
			break
		}
		if long, ok := referenceIACFlags[out[j]]; ok {
			out[j] = long
		}
	}
	return out
}

func importAuthCertRun(ctx context.Context, o *SatCertOptions) error {
	if o.refKeystore != "" || o.refAlias != "" || o.refKeystorePass != "" {
		fmt.Fprintln(o.IO.ErrOut, "zac: note: -ks, -ksp and -a name the Java keystore the reference writes; zac keeps the certificate in its own home, so they were not used")
	}
	var certs []*x509.Certificate
	var key crypto.Signer
	switch {
	case o.Keystore != "" && (o.Cert != "" || o.Key != ""):
		return errkind.New(errkind.Usage, "give --keystore or -c/-k, not both")
	case o.Keystore != "":
		data, err := os.ReadFile(o.Keystore)
		if err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
		pass, err := keystorePass(ctx, o)
		if err != nil {
			return err
		}
		k, leaf, chain, err := pkcs12.DecodeChainMaxIterations(data, pass, pki.MaxPKCS12Iterations)
		if err != nil {
			if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
				return errkind.New(errkind.Passphrase, "wrong passphrase for %s", o.Keystore)
			}
			return errkind.New(errkind.Invalid, "%s: not a PKCS#12 keystore with a key and certificate: %v", o.Keystore, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return errkind.New(errkind.Invalid, "%s: unsupported key type %T", o.Keystore, k)
		}
		key, certs = signer, append([]*x509.Certificate{leaf}, chain...)
	case o.Cert == "" || o.Key == "":
		return errkind.New(errkind.Usage, "give the certificate and key (-c CERT -k KEY) or a keystore (--keystore FILE.p12)")
	default:
		data, err := os.ReadFile(o.Cert)
		if err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
		if certs, err = pki.ParseCertificates(data); err != nil {
			return errkind.New(errkind.Invalid, "%s: %v", o.Cert, err)
		}
		kdata, err := os.ReadFile(o.Key)
		if err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
		if key, err = pki.ParsePrivateKey(kdata); err != nil {
			return errkind.New(errkind.Invalid, "%s: %v", o.Key, err)
		}
	}
	for _, f := range o.CAs {
		data, err := os.ReadFile(f)
		if err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
		more, err := pki.ParseCertificates(data)
		if err != nil {
			return errkind.New(errkind.Invalid, "%s: %v", f, err)
		}
		certs = append(certs, more...)
	}
	if !pki.SameKey(certs[0].PublicKey, key) {
		// The leaf may not come first in a file: CheckServerCert finds it.
		found := false
		for _, c := range certs {
			found = found || pki.SameKey(c.PublicKey, key)
		}
		if !found {
			return errkind.New(errkind.Invalid, "certificate refused: no certificate given is for this private key")
		}
	}
	res, err := o.Agent().ImportSatelliteCert(certs, key)
	if err != nil {
		return err
	}
	return printSatCert(o, res, "imported")
}

func keystorePass(ctx context.Context, o *SatCertOptions) (string, error) {
	src := ui.SecretSource{File: o.KeystorePassFile, FD: -1}
	if _, ok := os.LookupEnv("ZAC_KEYSTORE_PASSPHRASE"); ok && o.KeystorePassFile == "" {
		src.Env = "ZAC_KEYSTORE_PASSPHRASE"
	}
	p := o.Prompter
	if p == nil {
		p = ui.NewPrompter(o.IO)
	}
	return src.Read(ctx, o.IO, p, ui.SecretPrompt{What: "passphrase", Prompt: "Keystore passphrase:",
		FlagHint: "--keystore-pass-file or ZAC_KEYSTORE_PASSPHRASE"})
}
