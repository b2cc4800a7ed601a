package zman

import (
	"context"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

type satelliteAddRoleOptions struct {
	f          *Factory
	Device     string
	Role       string
	ContentURL string
	Parent     string
	Prefetch   string
	AuthURL    string
}

func newSatelliteAddRole(f *Factory, runF func(*satelliteAddRoleOptions) error) *cobra.Command {
	opts := &satelliteAddRoleOptions{f: f}
	cmd := &cobra.Command{
		Use:     "satellite-add-role DEVICE [ROLE]",
		Aliases: []string{"sar"},
		Short:   "Make a managed device a satellite (roles Content, Authentication)",
		Long: `Give a device (id, or name when unambiguous) a satellite role; on the
device run 'zac satellite-serve' (or install its unit with 'zac
satellite-serve --install-unit').

Content (the default) caches package fragments for its site. --content-url
is where agents fetch from it (http://HOST:PORT/content); --parent is where
it pulls from (a zone server's content port or another satellite);
--prefetch-interval makes it pull the content of every active package on
that schedule, ahead of requests (default: on first request only). Agents
get its content URL first in the fragment locations of their packages,
closest to their address first, and fail over to the next location.

Authentication serves agents over HTTPS at --auth-url (https://HOST:PORT)
with the satellite's own certificate from the zone CA (on the satellite:
'zac asr -t all', or 'zac iac' to import one), and relays their
registration, refresh, package and status calls to the zone servers.
Agents put it first in their server list (closest first) at their next
refresh, and it also serves info files to them when it holds Content too.

Adding a role the device holds changes its URLs.`,
		Example: `  zman satellite-add-role branch-sat1 Content --content-url http://branch-sat1:8080/content --parent http://zone1:80/content --prefetch-interval 30m
  zman sar branch-sat1 Authentication --auth-url https://branch-sat1:8443
  zman sar hq-sat --content-url http://hq-sat:8080/content`,
		Args: deviceAndRole,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Device, opts.Role = args[0], "Content"
			if len(args) == 2 {
				opts.Role = args[1]
			}
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				req := api.SatelliteRoleAdd{Role: opts.Role, ContentURL: opts.ContentURL, Parent: opts.Parent,
					Prefetch: opts.Prefetch, AuthURL: opts.AuthURL}
				if err := c.Post(ctx, api.Prefix+"/satellites/"+url.PathEscape(opts.Device)+"/roles", req, nil); err != nil {
					return err
				}
				return opts.f.done(map[string]any{"device": opts.Device, "role": req},
					"Device %s holds the %s satellite role.\n", opts.Device, opts.Role)
			})
		},
	}
	cmd.Flags().StringVar(&opts.ContentURL, "content-url", "", "where agents fetch fragments from it, http://HOST:PORT/content")
	cmd.Flags().StringVar(&opts.Parent, "parent", "", "where it pulls from, http://HOST:PORT/content")
	cmd.Flags().StringVar(&opts.Prefetch, "prefetch-interval", "", "Content: pull every active package's content this often (e.g. 30m; at least 1m)")
	cmd.Flags().StringVar(&opts.AuthURL, "auth-url", "", "Authentication: where agents reach it, https://HOST:PORT")
	return cmd
}

type satelliteRemoveRoleOptions struct {
	f      *Factory
	Device string
	Role   string
}

func newSatelliteRemoveRole(f *Factory, runF func(*satelliteRemoveRoleOptions) error) *cobra.Command {
	opts := &satelliteRemoveRoleOptions{f: f}
	return &cobra.Command{
		Use:     "satellite-remove-role DEVICE [ROLE]",
		Aliases: []string{"srr"},
		Short:   "Take a satellite role (default Content) from a device",
		Long: `Take a satellite role from a device; without roles left it is an ordinary
managed device again. Agents stop using it at their next refresh; stop its
'zac satellite-serve' afterwards.`,
		Args: deviceAndRole,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Device, opts.Role = args[0], "Content"
			if len(args) == 2 {
				opts.Role = args[1]
			}
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := c.Delete(ctx, api.Prefix+"/satellites/"+url.PathEscape(opts.Device)+"/roles/"+url.PathEscape(opts.Role)); err != nil {
					return err
				}
				return opts.f.done(map[string]any{"device": opts.Device, "role": opts.Role, "removed": true},
					"Device %s no longer holds the %s satellite role.\n", opts.Device, opts.Role)
			})
		},
	}
}

type satelliteListOptions struct{ f *Factory }

func newSatelliteList(f *Factory, runF func(*satelliteListOptions) error) *cobra.Command {
	opts := &satelliteListOptions{f: f}
	return &cobra.Command{
		Use:     "satellite-list",
		Aliases: []string{"satl"},
		Short:   "List the devices holding satellite roles",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var sats []api.Satellite
				if err := c.Get(ctx, api.Prefix+"/satellites", &sats); err != nil {
					return err
				}
				return opts.f.print(sats, []string{"DEVICE", "ID", "ADDRESS", "ROLES", "CONTENT URL", "PARENT", "PREFETCH", "AUTH URL", "CERT EXPIRES", "ADDED"}, func() [][]string {
					rows := make([][]string, 0, len(sats))
					for _, s := range sats {
						rows = append(rows, []string{s.DeviceName, s.DeviceID, s.Address, strings.Join(s.Roles, ", "), s.ContentURL, s.Parent, s.Prefetch, s.AuthURL, ui.Date(s.CertNotAfter), ui.Date(s.Added)})
					}
					return rows
				})
			})
		},
	}
}

func deviceAndRole(cmd *cobra.Command, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return errkind.New(errkind.Usage, "%s takes a DEVICE and optionally the ROLE (Content or Authentication)", cmd.Name())
	}
	return nil
}
