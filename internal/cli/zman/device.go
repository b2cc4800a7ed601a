package zman

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

type deviceListOptions struct{ f *Factory }

func newDeviceList(f *Factory, runF func(*deviceListOptions) error) *cobra.Command {
	opts := &deviceListOptions{f: f}
	return &cobra.Command{
		Use:     "device-list",
		Aliases: []string{"dl"},
		Short:   "List registered devices",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return deviceListRun(cmd.Context(), opts)
		},
	}
}

func deviceListRun(ctx context.Context, o *deviceListOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		devs, err := listDevices(ctx, c)
		if err != nil {
			return err
		}
		if format, err := o.f.Format(); err == nil && format == ui.FormatJSON {
			return writeDevicesJSON(o.f.IO.Out, devs)
		}
		return o.f.print(devs, []string{"NAME", "ID", "KIND", "OS", "ADDRESS", "REGISTERED", "LAST CONTACT", "GROUPS"}, func() [][]string {
			rows := make([][]string, 0, len(devs))
			for _, d := range devs {
				rows = append(rows, []string{d.Name, d.ID, d.Kind, d.OS, d.Address, ui.Date(d.Registered), ui.Date(d.LastContact), strings.Join(d.Groups, ", ")})
			}
			return rows
		})
	})
}

// writeDevicesJSON writes what ui.JSONArray writes of devs, device by
// device through one buffer, with the device list's own encoder.
func writeDevicesJSON(w io.Writer, devs []*api.Device) error {
	if len(devs) == 0 {
		return ui.JSONArray(w, []api.Device{})
	}
	buf := append(make([]byte, 0, 80<<10), "[\n  "...)
	for i := range devs {
		if i > 0 {
			buf = append(buf, ",\n  "...)
		}
		var err error
		if buf, err = api.AppendDevice(buf, devs[i], "  ", "  "); err != nil {
			return err
		}
		if len(buf) >= 64<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, "\n]\n"...)
	_, err := w.Write(buf)
	return err
}

// devicePage is how many devices zman asks for at a time: the server's
// largest page, so that it never holds more of a large zone for one
// listing.
const devicePage = 10000

// maxDevicePageBytes bounds the answer zman reads for one page.
const maxDevicePageBytes = 256 << 20

// listDevices takes the zone's devices page by page (id order) and
// sorts them by name, then id, as the server's whole list is sorted.
// The list is of pointers into the pages: sorting and printing never
// copy a device.
func listDevices(ctx context.Context, c *client.Client) ([]*api.Device, error) {
	var all []*api.Device
	after := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(devicePage)}}
		if after != "" {
			q.Set("after", after)
		}
		page, err := devicesPage(ctx, c, api.Prefix+"/devices?"+q.Encode())
		if err != nil {
			return nil, err
		}
		if len(page) > devicePage || len(page) > 0 && after != "" && page[0].ID <= after {
			// A server from before paging answers its whole list, sorted.
			if after == "" {
				return pointers(page), nil
			}
			return nil, errors.New("the server does not page device lists (GET /devices?limit=N): upgrade it")
		}
		all = append(all, pointers(page)...)
		if len(page) < devicePage {
			break
		}
		after = page[len(page)-1].ID
	}
	// By name, then id (the pages' order).
	slices.SortFunc(all, func(a, b *api.Device) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return all, nil
}

func pointers(devs []api.Device) []*api.Device {
	out := make([]*api.Device, len(devs))
	for i := range devs {
		out[i] = &devs[i]
	}
	return out
}

// devicesPage reads a page whole, then decodes it with the device
// list's own decoder (api.DecodeDevices).
func devicesPage(ctx context.Context, c *client.Client, path string) ([]api.Device, error) {
	resp, err := c.Stream(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if resp.ContentLength > 0 && resp.ContentLength <= maxDevicePageBytes {
		buf.Grow(int(resp.ContentLength))
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxDevicePageBytes+1)); err != nil {
		return nil, fmt.Errorf("device list: %w", err)
	}
	if buf.Len() > maxDevicePageBytes {
		return nil, fmt.Errorf("device list: a page of more than %d MiB", maxDevicePageBytes>>20)
	}
	page, err := api.DecodeDevices(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("device list: %w", err)
	}
	return page, nil
}

type deviceDeleteOptions struct {
	f    *Factory
	Refs []string
	Yes  bool
}

func newDeviceDelete(f *Factory, runF func(*deviceDeleteOptions) error) *cobra.Command {
	opts := &deviceDeleteOptions{f: f}
	cmd := &cobra.Command{
		Use:     "device-delete DEVICE...",
		Aliases: []string{"dd"},
		Short:   "Delete devices from the zone (by id, or by name when unambiguous)",
		Long: `Delete devices from the zone. A deleted device's certificate is refused from
then on; the device must register again to be managed.`,
		Args: cmdutil.MinimumArgs(1, "one or more DEVICE ids or names"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Refs = args
			if runF != nil {
				return runF(opts)
			}
			return deleteEach(cmd.Context(), opts.f, "/devices/", "device", opts.Refs, opts.Yes)
		},
	}
	addYes(cmd, &opts.Yes)
	return cmd
}

type groupCreateOptions struct {
	f           *Factory
	Name        string
	Description string
	Filter      api.DeviceFilter
}

func newGroupCreate(f *Factory, runF func(*groupCreateOptions) error) *cobra.Command {
	opts := &groupCreateOptions{f: f}
	cmd := &cobra.Command{
		Use:     "group-create NAME",
		Aliases: []string{"gc"},
		Short:   "Create a device group, static or defined by a filter",
		Long: `Create a device group. Without a filter it is static: add devices with
group-add-device. With --os, --name, --software (and --version) or
--ip-range it is dynamic: its devices are those matching every filter
given, from their records and the inventory their agents report, at the
moment the group is used to assign a package (as package-assign's own
filters); group-list shows how many match now.`,
		Example: `  zman group-create lab
  zman group-create old-openssl --software 'openssl*' --version '<3.0.13'
  zman group-create berlin --ip-range 10.20.0.0/16 --os linux`,
		Args: cmdutil.ExactArgs(1, "the group's NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				req := api.GroupCreate{Name: opts.Name, Description: opts.Description}
				if opts.Filter != (api.DeviceFilter{}) {
					req.Filter = &opts.Filter
				}
				var g api.Group
				if err := c.Post(ctx, api.Prefix+"/groups", req, &g); err != nil {
					return err
				}
				if g.Filter != nil {
					return opts.f.done(g, "Created dynamic group %s: %d device(s) match it now.\n", g.Name, len(g.Members))
				}
				return opts.f.done(g, "Created group %s.\n", opts.Name)
			})
		},
	}
	cmd.Flags().StringVarP(&opts.Description, "desc", "d", "", "description")
	addFilterFlags(cmd, &opts.Filter.OS, &opts.Filter.NamePattern, &opts.Filter.Software, &opts.Filter.Version, &opts.Filter.IPRange)
	return cmd
}

// addFilterFlags adds the device filter flags package-assign and
// group-create share (zone.DeviceFilter).
func addFilterFlags(cmd *cobra.Command, os, name, software, version, ipRange *string) {
	cmd.Flags().StringVar(os, "os", "", "devices whose OS contains this text (case-insensitive)")
	cmd.Flags().StringVar(name, "name", "", "devices whose name matches this shell pattern")
	cmd.Flags().StringVar(software, "software", "", "devices whose inventory lists software matching this shell pattern (case-insensitive)")
	cmd.Flags().StringVar(version, "version", "", "with --software: its version, exactly or as <, <=, >, >=, != VERSION")
	cmd.Flags().StringVar(ipRange, "ip-range", "", "devices whose address is in this prefix (10.1.0.0/16) or range (10.1.2.10-10.1.2.99)")
}

type groupAddDeviceOptions struct {
	f       *Factory
	Group   string
	Devices []string
}

func newGroupAddDevice(f *Factory, runF func(*groupAddDeviceOptions) error) *cobra.Command {
	opts := &groupAddDeviceOptions{f: f}
	return &cobra.Command{
		Use:     "group-add-device GROUP DEVICE...",
		Aliases: []string{"gad"},
		Short:   "Add devices (ids or names) to a group",
		Args:    cmdutil.MinimumArgs(2, "a GROUP and one or more DEVICEs"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group, opts.Devices = args[0], args[1:]
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := c.Post(ctx, api.Prefix+"/groups/"+url.PathEscape(opts.Group)+"/devices", api.GroupAddDevices{Devices: opts.Devices}, nil); err != nil {
					return err
				}
				return opts.f.done(map[string]any{"group": opts.Group, "added": opts.Devices},
					"Added %d device(s) to group %s.\n", len(opts.Devices), opts.Group)
			})
		},
	}
}

type groupListOptions struct{ f *Factory }

func newGroupList(f *Factory, runF func(*groupListOptions) error) *cobra.Command {
	opts := &groupListOptions{f: f}
	return &cobra.Command{
		Use:     "group-list",
		Aliases: []string{"gl"},
		Short:   "List device groups",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var groups []api.Group
				if err := c.Get(ctx, api.Prefix+"/groups", &groups); err != nil {
					return err
				}
				return opts.f.print(groups, []string{"NAME", "DEVICES", "FILTER", "DESCRIPTION", "CREATED"}, func() [][]string {
					rows := make([][]string, 0, len(groups))
					for _, g := range groups {
						rows = append(rows, []string{g.Name, strconv.Itoa(len(g.Members)), filterText(g.Filter), g.Description, ui.Date(g.Created)})
					}
					return rows
				})
			})
		},
	}
}

type regKeyCreateOptions struct {
	f   *Factory
	Key api.RegistrationKey
}

func newRegKeyCreate(f *Factory, runF func(*regKeyCreateOptions) error) *cobra.Command {
	opts := &regKeyCreateOptions{f: f}
	cmd := &cobra.Command{
		Use:     "registration-key-create [KEY]",
		Aliases: []string{"rkc"},
		Short:   "Create a registration key (random when KEY is omitted)",
		Long: `Create a registration key. Devices register with it (zac register -k KEY);
with --group they join that group, with --limit the key works that many
times only. Without KEY a random key is made and printed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.ExactArgs(1, "at most one KEY")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Key.Key = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var k api.RegistrationKey
				if err := c.Post(ctx, api.Prefix+"/registration-keys", opts.Key, &k); err != nil {
					return err
				}
				format, err := opts.f.Format()
				if err != nil {
					return err
				}
				if format == ui.FormatJSON {
					return ui.JSON(opts.f.IO.Out, k)
				}
				fmt.Fprintf(opts.f.IO.Out, "Created registration key %s.\n", k.Key)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&opts.Key.Group, "group", "g", "", "group that registering devices join")
	cmd.Flags().IntVarP(&opts.Key.Limit, "limit", "l", 0, "how many registrations the key allows (0 is unlimited)")
	cmd.Flags().StringVarP(&opts.Key.Description, "desc", "d", "", "description")
	return cmd
}

type regKeyListOptions struct{ f *Factory }

func newRegKeyList(f *Factory, runF func(*regKeyListOptions) error) *cobra.Command {
	opts := &regKeyListOptions{f: f}
	return &cobra.Command{
		Use:     "registration-key-list",
		Aliases: []string{"rkl"},
		Short:   "List registration keys and how often they were used",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return opts.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var keys []api.RegistrationKey
				if err := c.Get(ctx, api.Prefix+"/registration-keys", &keys); err != nil {
					return err
				}
				return opts.f.print(keys, []string{"KEY", "GROUP", "USES", "LIMIT", "DESCRIPTION"}, func() [][]string {
					rows := make([][]string, 0, len(keys))
					for _, k := range keys {
						limit := "unlimited"
						if k.Limit > 0 {
							limit = strconv.Itoa(k.Limit)
						}
						rows = append(rows, []string{k.Key, k.Group, strconv.Itoa(k.Uses), limit, k.Description})
					}
					return rows
				})
			})
		},
	}
}

type regKeyDeleteOptions struct {
	f    *Factory
	Keys []string
	Yes  bool
}

func newRegKeyDelete(f *Factory, runF func(*regKeyDeleteOptions) error) *cobra.Command {
	opts := &regKeyDeleteOptions{f: f}
	cmd := &cobra.Command{
		Use:     "registration-key-delete KEY...",
		Aliases: []string{"rkd"},
		Short:   "Delete registration keys",
		Args:    cmdutil.MinimumArgs(1, "one or more KEYs"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Keys = args
			if runF != nil {
				return runF(opts)
			}
			return deleteEach(cmd.Context(), opts.f, "/registration-keys/", "registration key", opts.Keys, opts.Yes)
		},
	}
	addYes(cmd, &opts.Yes)
	return cmd
}

// filterText shows a dynamic group's filter as its flags ("" for a
// static group).
func filterText(f *api.DeviceFilter) string {
	if f == nil {
		return ""
	}
	var parts []string
	for _, kv := range [][2]string{{"--os", f.OS}, {"--name", f.NamePattern}, {"--software", f.Software}, {"--version", f.Version}, {"--ip-range", f.IPRange}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	return strings.Join(parts, " ")
}
