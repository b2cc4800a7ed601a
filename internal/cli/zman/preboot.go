package zman

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

// prebootCommands assign the work a machine does at its next network
// boot: restore or take an image, or show a preboot menu (issue 8).
func prebootCommands(f *Factory) []*cobra.Command {
	return []*cobra.Command{newPrebootAssignImage(f, nil), newPrebootAssignMenu(f, nil), newPrebootList(f, nil), newPrebootClear(f, nil)}
}

type prebootAssignOptions struct {
	f         *Factory
	MAC       string
	Name      string // image or menu
	Take      bool
	Device    string
	Multicast string
	Clients   int
	Wait      int
}

func (o *prebootAssignOptions) run(ctx context.Context, req api.PrebootAssign) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var out api.PrebootWork
		if err := c.Do(ctx, "PUT", api.Prefix+"/preboot/work/"+url.PathEscape(o.MAC), req, &out); err != nil {
			return err
		}
		what := "menu " + out.Menu
		switch out.Action {
		case "image":
			what = "restore of image " + out.Image
			if out.Session != "" {
				what += fmt.Sprintf(" (multicast session %s, %d clients)", out.Session, out.Clients)
			}
		case "take-image":
			what = "taking of image " + out.Image
		}
		return o.f.done(out, "Assigned %s to %s; it happens at the machine's next network boot.\n", what, out.MAC)
	})
}

func newPrebootAssignImage(f *Factory, runF func(*prebootAssignOptions) error) *cobra.Command {
	opts := &prebootAssignOptions{f: f}
	cmd := &cobra.Command{
		Use:     "preboot-assign-image MAC IMAGE",
		Aliases: []string{"pai"},
		Short:   "Have a machine restore an image (or take one) at its next network boot",
		Long: `Assign an image to the machine with the MAC address: at its next network
boot the preboot policy service hands it the imaging script, which restores
IMAGE from the imaging service (pbserv), or with --take sends an image of
the machine to the imaging service under that name. --device records the
registered device the machine is.

The assignment is an imaging task that runs once: it is queued until the
machine's imaging environment starts it, then running, then done or
failed (zman preboot-list shows which, with the bytes moved, the time taken
and the error). A started or finished task is not served again; assign it
anew to repeat it. An image to restore must exist on the zone server's
imaging service, and an image to take must not (exit 3 and 4).

With --multicast SESSION the machines assigned the same session receive the
image together, sent once by udp-sender: the session starts when --clients
machines have joined, or --wait seconds after the first one joined. A
machine that misses the session restores over HTTPS instead; each machine
reports its own result.`,
		Args: cmdutil.ExactArgs(2, "the machine's MAC address and the IMAGE name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.MAC, opts.Name = args[0], args[1]
			if runF != nil {
				return runF(opts)
			}
			action := "image"
			if opts.Take {
				action = "take-image"
			}
			req := api.PrebootAssign{Action: action, Image: opts.Name, Device: opts.Device}
			if opts.Multicast != "" {
				req.Session, req.Clients, req.Wait = opts.Multicast, opts.Clients, opts.Wait
			}
			return opts.run(cmd.Context(), req)
		},
	}
	cmd.Flags().BoolVar(&opts.Take, "take", false, "take an image of the machine instead of restoring one")
	cmd.Flags().StringVar(&opts.Multicast, "multicast", "", "restore in the multicast SESSION: assign each machine with the same session name")
	cmd.Flags().IntVar(&opts.Clients, "clients", 1, "with --multicast: start once this many machines joined")
	cmd.Flags().IntVar(&opts.Wait, "wait", 300, "with --multicast: or this many seconds after the first joined")
	cmd.Flags().StringVar(&opts.Device, "device", "", "the registered device (name or ID) the machine is")
	return cmd
}

func newPrebootAssignMenu(f *Factory, runF func(*prebootAssignOptions) error) *cobra.Command {
	opts := &prebootAssignOptions{f: f}
	cmd := &cobra.Command{
		Use:     "preboot-assign-menu MAC MENU",
		Aliases: []string{"pam"},
		Short:   "Show a machine a preboot menu at its next network boot",
		Long: `Assign a preboot menu to the machine with the MAC address: at its next
network boot the preboot policy service hands it the iPXE menu MENU
(conf/preboot/menus/MENU.ipxe on the server running the policy service).
A menu that server does not have is refused (exit 3).`,
		Args: cmdutil.ExactArgs(2, "the machine's MAC address and the MENU name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.MAC, opts.Name = args[0], args[1]
			if runF != nil {
				return runF(opts)
			}
			return opts.run(cmd.Context(), api.PrebootAssign{Action: "menu", Menu: opts.Name, Device: opts.Device})
		},
	}
	cmd.Flags().StringVar(&opts.Device, "device", "", "the registered device (name or ID) the machine is")
	return cmd
}

type prebootListOptions struct{ f *Factory }

func newPrebootList(f *Factory, runF func(*prebootListOptions) error) *cobra.Command {
	opts := &prebootListOptions{f: f}
	return &cobra.Command{
		Use:     "preboot-list",
		Aliases: []string{"pl"},
		Short:   "List the preboot work assigned to machines",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var works []api.PrebootWork
				if err := c.Get(ctx, api.Prefix+"/preboot/work", &works); err != nil {
					return err
				}
				return opts.f.print(works, []string{"MAC", "ACTION", "IMAGE OR MENU", "STATUS", "DEVICE", "ASSIGNED", "BY", "RESULT"}, func() [][]string {
					rows := make([][]string, 0, len(works))
					for _, w := range works {
						name := w.Image
						if w.Action == "menu" {
							name = w.Menu
						}
						rows = append(rows, []string{w.MAC, w.Action, name, w.Status, w.DeviceName, ui.Date(w.Assigned), w.Actor, taskResult(w)})
					}
					return rows
				})
			})
		},
	}
}

// taskResult says how a finished imaging task went: the bytes moved and
// how long it took, and the error of a failed one.
func taskResult(w api.PrebootWork) string {
	if w.Finished.IsZero() {
		return ""
	}
	r := fmt.Sprintf("%d bytes in %s", w.Bytes, w.Finished.Sub(w.Started).Round(time.Second))
	if w.Error != "" {
		r += ": " + w.Error
	}
	return r
}

type prebootClearOptions struct {
	f    *Factory
	MACs []string
}

func newPrebootClear(f *Factory, runF func(*prebootClearOptions) error) *cobra.Command {
	opts := &prebootClearOptions{f: f}
	return &cobra.Command{
		Use:     "preboot-clear MAC...",
		Aliases: []string{"pc"},
		Short:   "Remove the preboot work of machines (they get the default menu)",
		Args:    cmdutil.MinimumArgs(1, "one or more MAC addresses"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.MACs = args
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				for _, mac := range opts.MACs {
					if err := c.Delete(ctx, api.Prefix+"/preboot/work/"+url.PathEscape(mac)); err != nil {
						return err
					}
				}
				var lines strings.Builder
				for _, mac := range opts.MACs {
					fmt.Fprintf(&lines, "Cleared the preboot work of %s.\n", mac)
				}
				return opts.f.done(map[string]any{"cleared": opts.MACs}, "%s", lines.String())
			})
		},
	}
}
