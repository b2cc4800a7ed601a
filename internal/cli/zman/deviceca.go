package zman

import (
	"context"
	"net/http"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

type deviceCARotateOptions struct{ f *Factory }

func newDeviceCARotate(f *Factory, runF func(*deviceCARotateOptions) error) *cobra.Command {
	o := &deviceCARotateOptions{f: f}
	return &cobra.Command{
		Use:     "certificate-device-ca-rotate",
		Aliases: []string{"cdr"},
		Short:   "Replace the device CA that issues device certificates under an external zone CA",
		Long: `Replace the zone's device CA: the CA the zone keeps while its CA is
external (the zone holds no key of an external CA), which issues device
certificates at registration and renewal, satellite certificates and CPK
signatures. The zone makes one by itself when a change to an external CA
activates, and a new one 90 days before it expires; rotate it by hand when
its key may have leaked, or to shorten its life.

Every zone server accepts device certificates from the new device CA at
once and from the replaced one until it expires; agents are asked at their
next refresh to renew a certificate the replaced one issued. Under an
internal zone CA there is no separate device CA (the zone CA issues device
certificates): remint the zone CA with certificate-authority-remint.

certificate-authority-info shows the device CA; --device-pem prints it.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var ca api.CertSummary
				if err := c.Do(ctx, http.MethodPost, api.Prefix+"/certificate-authority/device-ca/rotate", nil, &ca); err != nil {
					return err
				}
				return o.f.done(ca, "Device CA: %s\nSHA-256: %s\nExpires: %s\n", ca.Subject, ca.SHA256, ui.LocalDate(ca.NotAfter))
			})
		},
	}
}
