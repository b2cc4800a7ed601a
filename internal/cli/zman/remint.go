package zman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/ui"
)

// ParseActivation reads an activation date: "now", "+DURATION" (Go
// durations plus days, e.g. +36h, +7d), RFC 3339, or a local
// "YYYY-MM-DD[ HH:MM]".
func ParseActivation(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, nil
	case strings.EqualFold(s, "now"):
		return now, nil
	case strings.HasPrefix(s, "+"):
		rest := s[1:]
		if d, ok := strings.CutSuffix(rest, "d"); ok {
			n, err := strconv.Atoi(d)
			if err != nil || n < 0 {
				return time.Time{}, errkind.New(errkind.Usage, "activation %q: want +N days like +7d", s)
			}
			return now.AddDate(0, 0, n), nil
		}
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return time.Time{}, errkind.New(errkind.Usage, "activation %q: want a duration like +36h or +7d", s)
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errkind.New(errkind.Usage, "activation %q: want now, +DURATION (+36h, +7d), RFC 3339 or \"YYYY-MM-DD HH:MM\" local time", s)
}

// changeFlags are the flags shared by the commands that start a change.
type changeFlags struct {
	Name       string
	Activation string
	CommonName string
	KeyType    string
	DNSNames   []string
}

func (c *changeFlags) add(fs *pflag.FlagSet, cnHelp string) {
	fs.StringVar(&c.Activation, "activation", "", "when the new certificates take effect: now, +DURATION (+7d), RFC 3339 or \"YYYY-MM-DD HH:MM\" (required unless the CA has expired)")
	fs.StringVar(&c.Name, "name", "", "a name for this change (default: its kind and date)")
	fs.StringVar(&c.CommonName, "common-name", "", cnHelp)
	fs.StringVar(&c.KeyType, "key-type", "", "key type: ecdsa-p256, rsa-2048, rsa-3072, rsa-4096 (default: the current CA's)")
	fs.StringSliceVar(&c.DNSNames, "dns-name", nil, "additional DNS name for each server certificate's SAN (repeatable)")
}

func (c *changeFlags) request() (api.RemintRequest, error) {
	t, err := ParseActivation(c.Activation, time.Now())
	if err != nil {
		return api.RemintRequest{}, err
	}
	return api.RemintRequest{Name: c.Name, Activation: t, CommonName: c.CommonName, KeyType: c.KeyType, DNSNames: c.DNSNames}, nil
}

// printChange shows a certificate change as people or scripts want it.
func (f *Factory) printChange(ch api.CertificateChange) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(f.IO.Out, ch)
	}
	if ch.Kind == "activated" {
		why := "activation now"
		if ch.CAExpired {
			why = "the zone CA had expired"
		}
		switch {
		case ch.Activated == "" || ch.Retrust:
			fmt.Fprintf(f.IO.Out, "The change was activated at once (%s): the zone has a new CA, and devices that did not receive it beforehand must run 'zac retrust'.\n", why)
		default:
			fmt.Fprintf(f.IO.Out, "The change was activated at once (%s): the servers use their new certificates under the same zone CA; devices need do nothing.\n", why)
		}
		return nil
	}
	activation := ui.LocalDate(ch.Activation)
	if ch.Immediate {
		activation = "Immediate"
	}
	pairs := [][2]string{{"Change", ch.Name}, {"Kind", ch.Kind}, {"Started", ui.LocalDate(ch.Started) + " by " + ch.Actor},
		{"Activation", activation}, {"Cancelable", strconv.FormatBool(ch.Cancelable)}}
	if ch.Stalled {
		pairs = append(pairs, [2]string{"Stalled", "past its activation, waiting for certificates: cancel it with certificate-change-cancel"})
	}
	if ch.FutureCA != nil {
		pairs = append(pairs, [2]string{"Future CA", ch.FutureCA.Subject}, [2]string{"Future CA SHA-256", ch.FutureCA.SHA256},
			[2]string{"Future CA expires", ui.LocalDate(ch.FutureCA.NotAfter)})
	}
	if ch.LastError != "" {
		pairs = append(pairs, [2]string{"Last error", ch.LastError})
	}
	ui.KeyValues(f.IO.Out, pairs)
	fmt.Fprintln(f.IO.Out)
	rows := make([][]string, 0, len(ch.Servers))
	for _, s := range ch.Servers {
		status := s.Status
		if s.Error != "" {
			status += ": " + s.Error
		}
		exp, sha := "-", "-"
		if s.Cert != nil {
			exp, sha = ui.LocalDate(s.Cert.NotAfter), s.Cert.SHA256
		}
		rows = append(rows, []string{s.Server, status, exp, sha})
	}
	return ui.Table(f.IO.Out, []string{"SERVER", "FUTURE CERTIFICATE", "EXPIRES", "SHA-256"}, rows)
}

func (f *Factory) startChange(ctx context.Context, path string, req api.RemintRequest) error {
	return f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var ch api.CertificateChange
		if err := c.Post(ctx, api.Prefix+path, req, &ch); err != nil {
			return err
		}
		f.printWarnings(ch.Warnings)
		return f.printChange(ch)
	})
}

func newCARemint(f *Factory) *cobra.Command {
	var cf changeFlags
	var years int
	cmd := &cobra.Command{
		Use:     "certificate-authority-remint --activation WHEN",
		Aliases: []string{"carm"},
		Short:   "Remint the internal zone CA: new key and certificate, activated later",
		Long: `Remint the internal zone CA: a new key and certificate (common name the zone
name unless --common-name, --key-type, --years 1-10), and a future
certificate for every server under the new CA, with --dns-name added to
each one's names. Nothing changes until --activation, which must come
before the current CA expires ("Immediate" once it has expired). Until
then every agent that contacts the zone learns the future CA and trusts it
beside the current one; at activation the servers switch certificates
without a restart, and agents renew their device certificates at their next
refresh. The old CA's key certifies the new CA, so an agent that missed the
change re-establishes trust with 'zac retrust'.

Cancel with certificate-change-cancel until ten minutes before activation.`,
		Example: `  zman certificate-authority-remint --activation +14d
  zman carm --activation "2027-01-10 06:00" --key-type rsa-3072 --years 5`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := cf.request()
			if err != nil {
				return err
			}
			req.Years = years
			return f.startChange(cmd.Context(), "/certificate-authority/remint", req)
		},
	}
	cf.add(cmd.Flags(), "common name of the new CA (default the zone name)")
	cmd.Flags().IntVar(&years, "years", 10, "validity of the new CA in years (1-10)")
	return cmd
}

func newCAChange(f *Factory) *cobra.Command {
	var cf changeFlags
	var years int
	var internal bool
	var external, caServer string
	var manual bool
	var subj api.RemintRequest
	cmd := &cobra.Command{
		Use:     "certificate-authority-change (--internal | --external CHAINFILE) --activation WHEN",
		Aliases: []string{"cach"},
		Short:   "Change the zone CA to a new internal CA or to an external one",
		Long: `Change the zone certificate authority.

--internal makes a new internal CA with a new subject (--common-name) on
the server this command talks to (or --ca-server, which must be that
server: the key is made where it will live), and a future certificate for
every server under it.

--external FILE makes an external CA the zone CA. FILE holds its root
certificate, or for an intermediate CA the whole chain up to the root
(.der .cer .crt .p7b .pem .cert); the root becomes the future CA. Each
server then needs a certificate from that CA: by default zonekit makes a
key and CSR on each server (subject fields --organization, --ou,
--locality, --state, --country; --key-type; --dns-name), which you download
with server-certificate-csr (one, or --all as a zip), have signed, and
import with server-certificate-import. With --manual you instead place
server.<ext> (the certificate with its chain) and key.der in each
server's remint-repo directory, where the server picks them up.

Activation and cancel work as for certificate-authority-remint.`,
		Example: `  zman certificate-authority-change --internal --common-name "ACME zone CA 2027" --activation +7d
  zman cach --external corp-root.pem --organization ACME --country DE --activation +14d`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if internal == (external != "") {
				return errkind.New(errkind.Usage, "choose --internal or --external FILE")
			}
			req, err := cf.request()
			if err != nil {
				return err
			}
			req.Years, req.CAServer, req.Manual = years, caServer, manual
			req.Organization, req.OrganizationalUnit, req.Locality, req.State, req.Country =
				subj.Organization, subj.OrganizationalUnit, subj.Locality, subj.State, subj.Country
			if external != "" {
				chainPEM, err := readChainAsPEM(external)
				if err != nil {
					return err
				}
				req.External, req.ChainPEM = true, chainPEM
			}
			return f.startChange(cmd.Context(), "/certificate-authority/change", req)
		},
	}
	cf.add(cmd.Flags(), "common name of the new internal CA (a new subject)")
	fs := cmd.Flags()
	fs.BoolVar(&internal, "internal", false, "change to a new internal CA")
	fs.StringVar(&external, "external", "", "change to the external CA whose root or chain is in this file")
	fs.StringVar(&caServer, "ca-server", "", "server that will hold the new internal CA (the one this command talks to)")
	fs.IntVar(&years, "years", 10, "validity of a new internal CA in years (1-10)")
	fs.BoolVar(&manual, "manual", false, "external: place certificates and keys in each server's remint-repo instead of CSRs")
	addSubjectFlags(fs, &subj)
	return cmd
}

func addSubjectFlags(fs *pflag.FlagSet, subj *api.RemintRequest) {
	fs.StringVar(&subj.Organization, "organization", "", "CSR subject: organization (O)")
	fs.StringVar(&subj.OrganizationalUnit, "ou", "", "CSR subject: organizational unit (OU)")
	fs.StringVar(&subj.Locality, "locality", "", "CSR subject: locality (L)")
	fs.StringVar(&subj.State, "state", "", "CSR subject: state or province (ST)")
	fs.StringVar(&subj.Country, "country", "", "CSR subject: two-letter country (C)")
}

func newServerCertRemint(f *Factory) *cobra.Command {
	var cf changeFlags
	var manual bool
	var subj api.RemintRequest
	cmd := &cobra.Command{
		Use:     "server-certificate-remint [SERVER...] --activation WHEN",
		Aliases: []string{"scrm"},
		Short:   "Remint the certificates of selected servers (all by default)",
		Long: `Remint the certificates of the servers named (all when none is named).

With an internal CA the server holding the CertAuth role issues each a new
certificate: common name the server's FQDN (or --common-name, for one
server), --key-type, names plus --dns-name. With an external CA each server
gets a key and CSR (download with server-certificate-csr, import with
server-certificate-import), or with --manual you place server.<ext> and
key.der in its remint-repo. The new certificates take effect at
--activation; cancel with certificate-change-cancel until ten minutes
before.`,
		Example: `  zman server-certificate-remint --activation +1d
  zman scrm zone1.acme.example --dns-name zone.acme.example --activation now`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := cf.request()
			if err != nil {
				return err
			}
			req.Servers, req.Manual = args, manual
			req.Organization, req.OrganizationalUnit, req.Locality, req.State, req.Country =
				subj.Organization, subj.OrganizationalUnit, subj.Locality, subj.State, subj.Country
			return f.startChange(cmd.Context(), "/server-certificates/remint", req)
		},
	}
	cf.add(cmd.Flags(), "common name of the new certificate (one server only; default its FQDN)")
	cmd.Flags().BoolVar(&manual, "manual", false, "external CA: place certificates and keys in remint-repo instead of CSRs")
	addSubjectFlags(cmd.Flags(), &subj)
	return cmd
}

func newChangeInfo(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "certificate-change-info",
		Aliases: []string{"cci"},
		Short:   "Show the certificate change under way and each server's future certificate",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var ch api.CertificateChange
				if err := c.Get(ctx, api.Prefix+"/certificate-changes/current", &ch); err != nil {
					return err
				}
				return f.printChange(ch)
			})
		},
	}
}

func newChangeCancel(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "certificate-change-cancel",
		Aliases: []string{"ccc"},
		Short:   "Cancel the certificate change under way (until ten minutes before activation, or once stalled)",
		Long: `Cancel the remint or change of CA under way. The future keys and
certificates are discarded; agents drop the future CA at their next
refresh. A change can no longer be cancelled in the ten minutes before its
activation, while the servers may be switching; but a change past its
activation that still waits for a server's certificate (from an external
CA, say) is stalled: nothing has switched, and it can be cancelled so that
another change can start. certificate-expiry-check reports a stalled
change as CRITICAL.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var ch api.CertificateChange
				if err := c.Do(ctx, http.MethodDelete, api.Prefix+"/certificate-changes/current", nil, &ch); err != nil {
					return err
				}
				return f.done(ch, "Cancelled %s %q.\n", ch.Kind, ch.Name)
			})
		},
	}
}

func newServerCSR(f *Factory) *cobra.Command {
	var all string
	var regenerate bool
	var dnsNames []string
	cmd := &cobra.Command{
		Use:     "server-certificate-csr (SERVER [FILE] | --all FILE.zip | --regenerate SERVER [--dns-name NAME]...)",
		Aliases: []string{"scsr"},
		Short:   "Download the CSR of a server (or all, as a zip) for an external CA",
		Long: `Download the certificate signing request a server made for the change under
way: SERVER's to FILE (or stdout, also with FILE -), or with --all every
server's, one SERVER.csr each, in a zip file.

--regenerate discards SERVER's CSR (and a certificate already imported for
it): the server makes a new key and CSR, with the names --dns-name adds,
for when the external CA refused the CSR or it lacks a name. Download it
again afterwards.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if regenerate {
				if len(args) != 1 || all != "" {
					return errkind.New(errkind.Usage, "--regenerate takes one SERVER")
				}
				return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
					var ch api.CertificateChange
					if err := c.Post(ctx, api.Prefix+"/server-certificates/"+url.PathEscape(args[0])+"/csr", api.CSRRegenerate{DNSNames: dnsNames}, &ch); err != nil {
						return err
					}
					return f.printChange(ch)
				})
			}
			if len(dnsNames) > 0 {
				return errkind.New(errkind.Usage, "--dns-name goes with --regenerate")
			}
			var path, out string
			switch {
			case all != "" && len(args) == 0:
				path, out = "/certificate-changes/current/csrs.zip", all
			case all == "" && (len(args) == 1 || len(args) == 2):
				path = "/server-certificates/" + url.PathEscape(args[0]) + "/csr"
				if len(args) == 2 && args[1] != "-" {
					out = args[1]
				}
			default:
				return errkind.New(errkind.Usage, "give SERVER [FILE], or --all FILE.zip")
			}
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Stream(ctx, http.MethodGet, api.Prefix+path, nil, "")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
				if err != nil {
					return err
				}
				if out == "" {
					_, err = f.IO.Out.Write(data)
					return err
				}
				return atomicfile.WriteFile(out, data, 0o644)
			})
		},
	}
	cmd.Flags().StringVar(&all, "all", "", "write every server's CSR into this zip file")
	cmd.Flags().BoolVar(&regenerate, "regenerate", false, "have SERVER make a new key and CSR for the change under way")
	cmd.Flags().StringArrayVar(&dnsNames, "dns-name", nil, "with --regenerate: a DNS name to add to the CSR (repeatable)")
	return cmd
}

// uploadCertificate sends the certificate file to SERVER's route op
// ("import" or "certificate") and decodes the answer into out.
func (f *Factory) uploadCertificate(ctx context.Context, server, file, op string, force bool, out any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errkind.New(errkind.NotFound, "%s does not exist", file)
		}
		return errkind.Wrap(errkind.Usage, err)
	}
	return f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		return c.Post(ctx, api.Prefix+"/server-certificates/"+url.PathEscape(server)+"/"+op, api.CertificateUpload{Data: data, Force: force}, out)
	})
}

func newServerCertImport(f *Factory) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "server-certificate-import [-f] SERVER FILE",
		Aliases: []string{"sci"},
		Short:   "Import a server's future certificate signed by the external CA",
		Long: `Import the certificate an external CA issued for SERVER's CSR (PEM, DER or
PKCS#7, with its chain if the CA is an intermediate). It must certify the
key of the CSR and chain to the future CA; wildcard certificates that
cover the server's name are accepted.

It must also cover every name and address by which agents, zman and peer
servers reach the server (its FQDN, its DNS names and addresses, the
address peers use, every name its current certificate covers): one that
drops any is refused with the list, since they would be locked out at
activation. -f accepts it anyway, with a warning that lists what breaks.`,
		Args: cmdutil.ExactArgs(2, "the server and the certificate file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ch api.CertificateChange
			if err := f.uploadCertificate(cmd.Context(), args[0], args[1], "import", force, &ch); err != nil {
				return err
			}
			f.printWarnings(ch.Warnings)
			return f.printChange(ch)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "accept a certificate that drops names or addresses in use (a warning lists them)")
	return cmd
}

// printWarnings puts the server's warnings on stderr, where a script's
// log keeps them apart from the output.
func (f *Factory) printWarnings(warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(f.IO.ErrOut, "zman: warning: %s\n", w)
	}
}

func newServerAddCert(f *Factory) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "server-add-certificate [-f] SERVER CERTFILE",
		Aliases: []string{"sacert"},
		Short:   "Replace a server's certificate now with one you provide",
		Long: `Replace SERVER's certificate at once with CERTFILE (PEM, DER or PKCS#7, with
its chain). It must chain to the zone CA and certify the server's current
key, or on the server itself the key placed in remint-repo/key.der. Its
names must include the server's FQDN, and every name and address by which
agents, zman and peer servers reach it (its DNS names and addresses, the
address peers use, every name its current certificate covers): one that
drops any is refused with the list, since they would be locked out. -f
accepts it anyway (after a change of DNS name), with a warning that lists
what breaks. The server switches without a restart; agents follow at their
next refresh.`,
		Args: cmdutil.ExactArgs(2, "the server and the certificate file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sum api.CertSummary
			if err := f.uploadCertificate(cmd.Context(), args[0], args[1], "certificate", force, &sum); err != nil {
				return err
			}
			f.printWarnings(sum.Warnings)
			format, err := f.Format()
			if err != nil {
				return err
			}
			if format == ui.FormatJSON {
				return ui.JSON(f.IO.Out, sum)
			}
			fmt.Fprintf(f.IO.Out, "Server %s now uses %s (expires %s, SHA-256 %s).\n", args[0], sum.Subject, ui.LocalDate(sum.NotAfter), sum.SHA256)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "accept a certificate that drops the server's FQDN or other names in use (a warning lists them)")
	return cmd
}

// readChainAsPEM reads a CA certificate or chain in any form an external
// CA hands out (PEM, DER, PKCS#7 in DER or PEM) and gives it as PEM: the
// API carries the chain as a JSON string, which binary DER would not
// survive.
func readChainAsPEM(name string) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errkind.New(errkind.NotFound, "%s does not exist", name)
		}
		return "", errkind.Wrap(errkind.Usage, err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return "", errkind.New(errkind.Invalid, "%s: %v", name, err)
	}
	return string(pki.EncodeChainPEM(certs...)), nil
}
