package zman

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

type zoneInfoOptions struct{ f *Factory }

func newZoneInfo(f *Factory, runF func(*zoneInfoOptions) error) *cobra.Command {
	opts := &zoneInfoOptions{f: f}
	return &cobra.Command{
		Use:   "zone-info",
		Short: "Show the zone: name, CA summary, servers and device count",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return zoneInfoRun(cmd.Context(), opts)
		},
	}
}

func zoneInfoRun(ctx context.Context, o *zoneInfoOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var z api.ZoneInfo
		if err := c.Get(ctx, api.Prefix+"/zone", &z); err != nil {
			return err
		}
		format, err := o.f.Format()
		if err != nil {
			return err
		}
		if format == ui.FormatJSON {
			return ui.JSON(o.f.IO.Out, z)
		}
		kind := "external"
		if z.CA.Internal {
			kind = "internal"
		}
		names := make([]string, 0, len(z.Servers))
		for _, s := range z.Servers {
			names = append(names, s.Name)
		}
		ui.KeyValues(o.f.IO.Out, [][2]string{
			{"Zone", z.Name},
			{"Zone ID", z.ID},
			{"Created", ui.Date(z.Created)},
			{"Certificate authority", fmt.Sprintf("%s (%s)", z.CA.Subject, kind)},
			{"CA key", z.CA.Key},
			{"CA valid", fmt.Sprintf("%s to %s (%s)", ui.Date(z.CA.NotBefore), ui.Date(z.CA.NotAfter), z.CA.Status)},
			{"CA SHA-256", z.CA.SHA256},
			{"CertAuth role", z.CA.CertAuthRole},
			{"Servers", fmt.Sprintf("%d (%s)", len(z.Servers), strings.Join(names, ", "))},
			{"Devices", strconv.Itoa(z.DeviceCount)},
		})
		return nil
	})
}

type serverListOptions struct{ f *Factory }

func newServerList(f *Factory, runF func(*serverListOptions) error) *cobra.Command {
	opts := &serverListOptions{f: f}
	return &cobra.Command{
		Use:     "server-list",
		Aliases: []string{"sl"},
		Short:   "List the zone's Primary Servers with their roles and certificate expiry",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return serverListRun(cmd.Context(), opts)
		},
	}
}

func serverListRun(ctx context.Context, o *serverListOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var servers []api.Server
		if err := c.Get(ctx, api.Prefix+"/servers", &servers); err != nil {
			return err
		}
		return o.f.print(servers, []string{"NAME", "ADDRESSES", "PORT", "ROLES", "VERSION", "CERTIFICATE EXPIRES"}, func() [][]string {
			rows := make([][]string, 0, len(servers))
			for _, s := range servers {
				rows = append(rows, []string{s.Name, strings.Join(s.IPs, ", "), strconv.Itoa(s.Port),
					strings.Join(s.Roles, ", "), s.Version, ui.Date(s.CertNotAfter)})
			}
			return rows
		})
	})
}
