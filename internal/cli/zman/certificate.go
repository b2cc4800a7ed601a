package zman

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/password"
	"zonekit/internal/pki"
	"zonekit/internal/ui"
)

type caInfoOptions struct {
	f         *Factory
	PEM       bool
	DevicePEM bool
}

func newCAInfo(f *Factory, runF func(*caInfoOptions) error) *cobra.Command {
	o := &caInfoOptions{f: f}
	cmd := &cobra.Command{
		Use:   "certificate-authority-info",
		Short: "Show the zone certificate authority: validity, key, fingerprints, status",
		Long: `Show the zone certificate authority: subject and issuer, validity (in your
time zone), key type and length, MD5, SHA-1 and SHA-256 fingerprints, status
(valid, expiring within 90 days, or expired), whether it is internal or
external, and which server holds the CertAuth role. While a change of CA
is under way the future CA is shown too.

The device CA is the CA that issues device certificates (at registration
and renewal), satellite certificates and CPK signatures: the zone CA itself
when it is internal; under an external zone CA, whose key the zone does
not hold, a CA the zone keeps for this (see certificate-device-ca-rotate).
--device-pem prints it in PEM, for example to check a device certificate
with 'openssl verify -CAfile'.

--pem prints the CA certificate in PEM instead, followed by the future CA
during a change: a file that zman --cacert, curl --cacert and agents can
use before and after the activation.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var ca api.CertificateAuthority
				if err := c.Get(ctx, api.Prefix+"/certificate-authority", &ca); err != nil {
					return err
				}
				format, err := o.f.Format()
				if err != nil {
					return err
				}
				if o.DevicePEM {
					switch {
					case ca.DeviceCAIsZoneCA:
						fmt.Fprint(o.f.IO.Out, ca.PEM)
					case ca.DeviceCA != nil:
						fmt.Fprint(o.f.IO.Out, ca.DeviceCA.PEM)
					default:
						return errkind.New(errkind.NotFound, "the zone has no device CA yet: its servers make one within seconds of a change to an external CA")
					}
					return nil
				}
				if o.PEM {
					fmt.Fprint(o.f.IO.Out, ca.PEM)
					if ca.FutureCA != nil {
						fmt.Fprint(o.f.IO.Out, ca.FutureCA.PEM)
					}
					return nil
				}
				if format == ui.FormatJSON {
					return ui.JSON(o.f.IO.Out, ca)
				}
				kind := "external"
				if ca.Internal {
					kind = "internal"
				}
				ui.KeyValues(o.f.IO.Out, [][2]string{
					{"Subject", ca.Subject},
					{"Issuer", ca.Issuer},
					{"Valid from", ui.LocalDate(ca.NotBefore)},
					{"Expires", ui.LocalDate(ca.NotAfter)},
					{"Status", ca.Status},
					{"Key", ca.Key},
					{"MD5", ca.MD5},
					{"SHA-1", ca.SHA1},
					{"SHA-256", ca.SHA256},
					{"Type", kind},
					{"CertAuth role", ca.CertAuthServer},
				})
				if ca.Change != "" {
					ui.KeyValues(o.f.IO.Out, [][2]string{{"Change under way", ca.Change}})
				}
				if ca.FutureCA != nil {
					ui.KeyValues(o.f.IO.Out, [][2]string{
						{"Future CA", ca.FutureCA.Subject},
						{"Future CA expires", ui.LocalDate(ca.FutureCA.NotAfter)},
						{"Future CA SHA-256", ca.FutureCA.SHA256},
					})
				}
				switch {
				case ca.DeviceCAIsZoneCA:
					ui.KeyValues(o.f.IO.Out, [][2]string{{"Device CA", "the zone CA"}})
				case ca.DeviceCA != nil:
					ui.KeyValues(o.f.IO.Out, [][2]string{
						{"Device CA", ca.DeviceCA.Subject},
						{"Device CA expires", ui.LocalDate(ca.DeviceCA.NotAfter)},
						{"Device CA key", ca.DeviceCA.Key},
						{"Device CA SHA-256", ca.DeviceCA.SHA256},
					})
				default:
					ui.KeyValues(o.f.IO.Out, [][2]string{{"Device CA", "none yet"}})
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&o.PEM, "pem", false, "print the CA certificate (and a future one) in PEM")
	cmd.Flags().BoolVar(&o.DevicePEM, "device-pem", false, "print the CA that issues device certificates in PEM")
	cmd.MarkFlagsMutuallyExclusive("pem", "device-pem")
	return cmd
}

type serverCertListOptions struct{ f *Factory }

func newServerCertList(f *Factory, runF func(*serverCertListOptions) error) *cobra.Command {
	o := &serverCertListOptions{f: f}
	return &cobra.Command{
		Use:     "server-certificate-list",
		Aliases: []string{"scl"},
		Short:   "List the Primary Servers' certificates with validity, fingerprints and status",
		Long: `List each Primary Server's certificate: issued to, subject, issuer, validity
(in your time zone), MD5, SHA-1 and SHA-256 fingerprints, status (valid,
expiring within 90 days, or expired), the status of a future certificate
while a remint is under way, and the server's version. -o json gives every
field.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var certs []api.ServerCertificate
				if err := c.Get(ctx, api.Prefix+"/server-certificates", &certs); err != nil {
					return err
				}
				return o.f.print(certs, []string{"SERVER", "ISSUED TO", "ISSUED BY", "VALID FROM", "EXPIRES", "STATUS", "FUTURE CERTIFICATE", "UPDATE", "VERSION", "SHA-256", "SHA-1", "MD5"}, func() [][]string {
					rows := make([][]string, 0, len(certs))
					for _, sc := range certs {
						rows = append(rows, []string{sc.Server, sc.IssuedTo, sc.IssuedBy, ui.LocalDate(sc.NotBefore), ui.LocalDate(sc.NotAfter),
							sc.Status, dash(sc.FutureStatus), dash(sc.UpdateStatus), sc.Version, sc.SHA256, sc.SHA1, sc.MD5})
					}
					return rows
				})
			})
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type caExportOptions struct {
	f      *Factory
	File   string
	Delete bool
	Legacy bool
	Force  bool
	pass   passphraseSource
}

func newCAExport(f *Factory, runF func(*caExportOptions) error) *cobra.Command {
	o := &caExportOptions{f: f}
	cmd := &cobra.Command{
		Use:     "certificate-authority-export [-d] FILE",
		Aliases: []string{"cae"},
		Short:   "Export the zone CA key pair as a passphrase-protected PKCS#12 file",
		Long: `Export the zone CA's key pair and certificate from the server holding the
CertAuth role into FILE, a PKCS#12 file encrypted with AES-256 (PBES2,
PBKDF2-HMAC-SHA-256 with 600,000 iterations) under a passphrase of at least
10 characters. --legacy writes the weak 3DES encoding that some old tools
need.

With -d the CertAuth role is then removed from the server and its copy of
the key deleted, but only after FILE was written and read back with the
passphrase, so the key cannot be lost on the way. Give the role back with
certificate-authority-import.`,
		Args: cmdutil.ExactArgs(1, "the PKCS#12 FILE to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			if runF != nil {
				return runF(o)
			}
			return caExportRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.Delete, "delete", "d", false, "remove the CertAuth role and the CA key from the server afterwards")
	cmd.Flags().BoolVar(&o.Legacy, "legacy", false, "use the weak legacy (3DES) PKCS#12 encryption for old tools")
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "replace FILE if it exists (never replaced otherwise)")
	o.pass.addFlags(cmd.Flags())
	return cmd
}

func caExportRun(ctx context.Context, o *caExportOptions) error {
	if err := refuseOverwrite(o.File, o.Force); err != nil {
		return err
	}
	pass, err := o.pass.read(ctx, o.f.IO, o.f.Prompter, "Passphrase for the CA file", true)
	if err != nil {
		return err
	}
	if err := password.CheckPassphrase(string(pass)); err != nil {
		return err
	}
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		body, err := json.Marshal(api.CAExport{Passphrase: string(pass), Legacy: o.Legacy})
		if err != nil {
			return err
		}
		resp, err := c.Stream(ctx, http.MethodPost, api.Prefix+"/certificate-authority/export", bytes.NewReader(body), "application/json")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return fmt.Errorf("read the exported CA: %w", err)
		}
		// Read it back before anything depends on it.
		ca, err := pki.ImportPKCS12(data, string(pass))
		if err != nil {
			return fmt.Errorf("the exported CA does not read back: %w", err)
		}
		out, err := atomicfile.New(o.File, 0o600)
		if err != nil {
			return err
		}
		defer out.Abort()
		if _, err := out.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", o.File, err)
		}
		if err := commitOnce(out, o.File, o.Force); err != nil {
			return err
		}
		res := map[string]any{"file": o.File, "subject": ca.Cert.Subject.String(), "sha256": pki.Fingerprint(ca.Cert, "sha256")}
		if !o.Delete {
			return o.f.done(res, "Exported the zone CA (%s, SHA-256 %s) to %s.\n", ca.Cert.Subject, pki.Fingerprint(ca.Cert, "sha256"), o.File)
		}
		if format, _ := o.f.Format(); format != ui.FormatJSON {
			fmt.Fprintf(o.f.IO.Out, "Exported the zone CA (%s, SHA-256 %s) to %s.\n", ca.Cert.Subject, pki.Fingerprint(ca.Cert, "sha256"), o.File)
		}
		if written, err := os.ReadFile(o.File); err != nil || !bytes.Equal(written, data) {
			return errkind.New(errkind.Failure, "%s does not hold what was exported; the CertAuth role was kept", o.File)
		}
		var role api.CARole
		if err := c.Post(ctx, api.Prefix+"/certificate-authority/role-disable", api.CARoleDisable{DeleteKey: true}, &role); err != nil {
			return fmt.Errorf("remove the CertAuth role: %w", err)
		}
		res["role_removed_from"] = role.Server
		return o.f.done(res, "Removed the CertAuth role and the CA key from %s.\n", role.Server)
	})
}

type caImportOptions struct {
	f    *Factory
	File string
	pass passphraseSource
}

func newCAImport(f *Factory, runF func(*caImportOptions) error) *cobra.Command {
	o := &caImportOptions{f: f}
	cmd := &cobra.Command{
		Use:     "certificate-authority-import FILE",
		Aliases: []string{"cai"},
		Short:   "Import the zone CA key pair from PKCS#12 and give this server the CertAuth role",
		Long: `Import the zone CA key pair from FILE (as written by
certificate-authority-export) into the server zman talks to, which then
holds the CertAuth role. The file must hold this zone's CA: another CA is
refused. A wrong passphrase exits 12, a missing FILE 3.

A file larger than 512 KiB, or whose MAC or encryption asks for more than
2,000,000 key-derivation iterations, is refused before any work on it (by
zman and again by the server): no CA backup needs that, a hostile file
uses it to keep a CPU busy. A refused import writes nothing.`,
		Args: cmdutil.ExactArgs(1, "the PKCS#12 FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			if runF != nil {
				return runF(o)
			}
			return caImportRun(cmd.Context(), o)
		},
	}
	o.pass.addFlags(cmd.Flags())
	return cmd
}

func caImportRun(ctx context.Context, o *caImportOptions) error {
	data, err := readPKCS12File(o.File)
	if err != nil {
		return err
	}
	pass, err := o.pass.read(ctx, o.f.IO, o.f.Prompter, "Passphrase of the CA file", false)
	if err != nil {
		return err
	}
	// Check locally first: a wrong passphrase needs no server round trip.
	if _, err := pki.ImportPKCS12(data, string(pass)); err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	}
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var role api.CARole
		if err := c.Post(ctx, api.Prefix+"/certificate-authority/import", api.CAImport{PKCS12: data, Passphrase: string(pass)}, &role); err != nil {
			return err
		}
		return o.f.done(role, "Imported the zone CA; %s holds the CertAuth role.\n", role.Server)
	})
}

type caRoleOptions struct {
	f         *Factory
	DeleteKey bool
}

func newCARoleEnable(f *Factory, runF func(*caRoleOptions) error) *cobra.Command {
	o := &caRoleOptions{f: f}
	return &cobra.Command{
		Use:     "certificate-authority-role-enable",
		Aliases: []string{"care"},
		Short:   "Give the CertAuth role to the server, which must have the CA key",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var role api.CARole
				if err := c.Post(ctx, api.Prefix+"/certificate-authority/role-enable", struct{}{}, &role); err != nil {
					return err
				}
				return o.f.done(role, "%s holds the CertAuth role.\n", role.Server)
			})
		},
	}
}

func newCARoleDisable(f *Factory, runF func(*caRoleOptions) error) *cobra.Command {
	o := &caRoleOptions{f: f}
	cmd := &cobra.Command{
		Use:     "certificate-authority-role-disable",
		Aliases: []string{"card"},
		Short:   "Take the CertAuth role from the server (it stops issuing certificates)",
		Long: `Take the CertAuth role from the server: it stops issuing device
certificates, so registrations fail until a server holds the role again.
The CA key stays on the server unless --delete-key is given; export it
first (certificate-authority-export).`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var role api.CARole
				if err := c.Post(ctx, api.Prefix+"/certificate-authority/role-disable", api.CARoleDisable{DeleteKey: o.DeleteKey}, &role); err != nil {
					return err
				}
				kept := "kept"
				if !role.KeyKept {
					kept = "deleted"
				}
				return o.f.done(role, "%s no longer holds the CertAuth role; its CA key was %s.\n", role.Server, kept)
			})
		},
	}
	cmd.Flags().BoolVar(&o.DeleteKey, "delete-key", false, "also delete the server's copy of the CA key")
	return cmd
}

// readPKCS12File reads a CA backup, refusing before it is all read a file
// larger than any CA backup (`cai /dev/zero` must not read for ever) and
// saying plainly when it is PEM rather than PKCS#12.
func readPKCS12File(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errkind.New(errkind.NotFound, "%s does not exist", name)
		}
		return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("read %s: %w", name, err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, pki.MaxPKCS12Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > pki.MaxPKCS12Size {
		return nil, errkind.New(errkind.Invalid, "%s is larger than %d bytes: not a CA backup", name, pki.MaxPKCS12Size)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		return nil, errkind.New(errkind.Invalid, "%s is PEM, not PKCS#12: make a PKCS#12 file of the CA certificate and key with openssl pkcs12 -export -in CA.pem -inkey CA.key -out CA.p12", name)
	}
	return data, nil
}
