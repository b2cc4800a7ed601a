package zman

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

func newDeviceInventory(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "device-inventory DEVICE",
		Aliases: []string{"dinv"},
		Short:   "Show the inventory an OCS Inventory NG agent reported for a device",
		Args:    cmdutil.ExactArgs(1, "the device (ID or name)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var inv api.Inventory
				if err := c.Get(ctx, api.Prefix+"/devices/"+url.PathEscape(args[0])+"/inventory", &inv); err != nil {
					return err
				}
				format, err := f.Format()
				if err != nil {
					return err
				}
				if format == ui.FormatJSON {
					return ui.JSON(f.IO.Out, inv)
				}
				ui.KeyValues(f.IO.Out, [][2]string{
					{"Reported", ui.LocalDate(inv.Time)}, {"Agent", inv.AgentID}, {"Host", inv.Hostname}, {"OS", inv.OS},
					{"CPU", fmt.Sprintf("%s (%d)", inv.CPU, inv.CPUs)}, {"Memory", fmt.Sprintf("%d MB", inv.MemoryMB)},
					{"IP", inv.IP}, {"MAC addresses", strings.Join(inv.MACs, ", ")}, {"Software", fmt.Sprint(len(inv.Software))},
				})
				if len(inv.Software) == 0 {
					return nil
				}
				fmt.Fprintln(f.IO.Out)
				rows := make([][]string, 0, len(inv.Software))
				for _, s := range inv.Software {
					rows = append(rows, []string{s.Name, s.Version})
				}
				return ui.Table(f.IO.Out, []string{"SOFTWARE", "VERSION"}, rows)
			})
		},
	}
}
