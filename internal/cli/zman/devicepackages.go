package zman

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

// newDevicePackageList is the per-device view of deployments, as the OCS
// console's "Customization" tab gives it.
func newDevicePackageList(f *Factory) *cobra.Command {
	var history bool
	cmd := &cobra.Command{
		Use:     "device-package-list DEVICE",
		Aliases: []string{"dpl"},
		Short:   "Show the packages assigned to a device: status, attempts, last error, history",
		Long: `Show every package assigned to a device (ID or name): its status, how many
results the device reported (attempts), the last error it reported with
the agent's detail, and when the status last changed. --history adds each
package's last status changes. The action's output and exit code of one
package are in 'zman package-stats ID --device DEVICE'.`,
		Example: `  zman device-package-list pc1
  zman dpl pc1 --history -o json`,
		Args: cmdutil.ExactArgs(1, "the device (ID or name)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var deps []api.Deployment
				if err := c.Get(ctx, api.Prefix+"/devices/"+url.PathEscape(args[0])+"/packages", &deps); err != nil {
					return err
				}
				return f.print(deps, []string{"PACKAGE", "NAME", "STATUS", "ATTEMPTS", "UPDATED", "LAST ERROR"}, func() [][]string {
					rows := [][]string{}
					for _, d := range deps {
						rows = append(rows, []string{d.Package, d.PackageName, d.Status, strconv.Itoa(d.Attempts), ui.Date(d.Updated), d.LastError})
						if history {
							for _, h := range d.History {
								rows = append(rows, []string{"", "", "  " + h.Status, "", ui.Date(h.Time), ""})
							}
						}
					}
					return rows
				})
			})
		},
	}
	cmd.Flags().BoolVar(&history, "history", false, "also list each package's last status changes")
	return cmd
}

// printDeployment shows one device's whole record for one package,
// output included.
func printDeployment(f *Factory, d api.Deployment) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(f.IO.Out, d)
	}
	code := ""
	if d.ExitCode != nil {
		code = strconv.Itoa(*d.ExitCode)
	}
	var hist []string
	for _, h := range d.History {
		hist = append(hist, h.Status+" "+ui.Date(h.Time))
	}
	ui.KeyValues(f.IO.Out, [][2]string{
		{"Package", d.Package + " (" + d.PackageName + ")"}, {"Device", d.DeviceName + " (" + d.DeviceID + ")"},
		{"Status", d.Status}, {"Exit code", code}, {"Attempts", strconv.Itoa(d.Attempts)},
		{"Assigned", ui.Date(d.Assigned)}, {"Updated", ui.Date(d.Updated)}, {"Detail", d.Detail},
		{"Last error", d.LastError}, {"History", strings.Join(hist, "; ")},
	})
	if d.Output != "" {
		fmt.Fprintf(f.IO.Out, "Output (the last %d KiB at most, secrets masked):\n%s", api.MaxStatusOutput>>10, d.Output)
		if !strings.HasSuffix(d.Output, "\n") {
			fmt.Fprintln(f.IO.Out)
		}
	}
	return nil
}
