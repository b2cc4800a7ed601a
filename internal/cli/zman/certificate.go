package zman

import (
	"context"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

type caInfoOptions struct{ f *Factory }

func newCAInfo(f *Factory, runF func(*caInfoOptions) error) *cobra.Command {
	o := &caInfoOptions{f: f}
	return &cobra.Command{
		Use:   "certificate-authority-info",
		Short: "Show the zone certificate authority: validity, key, fingerprints, status",
		Long: `Show the zone certificate authority: subject and issuer, validity (in your
time zone), key type and length, MD5, SHA-1 and SHA-256 fingerprints, status
(valid, expiring within 90 days, or expired), whether it is internal or
external, and which server holds the CertAuth role.`,
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
				return nil
			})
		},
	}
}

type serverCertListOptions struct{ f *Factory }

func newServerCertList(f *Factory, runF func(*serverCertListOptions) error) *cobra.Command {
	o := &serverCertListOptions{f: f}
	return &cobra.Command{
		Use:     "server-certificate-list",
		Aliases: []string{"scl"},
		Short:   "List the Primary Servers' certificates with validity, fingerprints and status",
		Long: `List each Primary Server's certificate: issued to, subject, issuer, validity
(in your time zone), SHA-1 and SHA-256 fingerprints, status (valid,
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
				return o.f.print(certs, []string{"SERVER", "ISSUED TO", "ISSUED BY", "VALID FROM", "EXPIRES", "STATUS", "FUTURE CERTIFICATE", "VERSION", "SHA-256"}, func() [][]string {
					rows := make([][]string, 0, len(certs))
					for _, sc := range certs {
						rows = append(rows, []string{sc.Server, sc.IssuedTo, sc.IssuedBy, ui.LocalDate(sc.NotBefore), ui.LocalDate(sc.NotAfter),
							sc.Status, dash(sc.FutureStatus), sc.Version, sc.SHA256})
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
