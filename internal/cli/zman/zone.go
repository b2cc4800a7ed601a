package zman

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
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
		return o.f.print(servers, []string{"NAME", "ADDRESSES", "PORT", "ROLES", "VERSION", "CERTIFICATE EXPIRES", "REPLICATION"}, func() [][]string {
			rows := make([][]string, 0, len(servers))
			for _, s := range servers {
				rows = append(rows, []string{s.Name, strings.Join(s.IPs, ", "), strconv.Itoa(s.Port),
					strings.Join(s.Roles, ", "), s.Version, ui.Date(s.CertNotAfter), replicationCell(s.Replication)})
			}
			return rows
		})
	})
}

// replicationCell says how a server keeps up: its raft state and, for a
// follower, how many changes it has yet to apply.
func replicationCell(r *api.Replication) string {
	if r == nil {
		return "-"
	}
	out := r.State
	if r.State == "Follower" && !r.Voter {
		out += ", non-voter"
	}
	if r.State == "Follower" && r.Behind > 0 {
		out += fmt.Sprintf(", %d behind", r.Behind)
	}
	return out
}

type serverDeleteOptions struct {
	f    *Factory
	Name string
	Yes  bool
}

func newServerDelete(f *Factory, runF func(*serverDeleteOptions) error) *cobra.Command {
	opts := &serverDeleteOptions{f: f}
	cmd := &cobra.Command{
		Use:     "server-delete SERVER",
		Aliases: []string{"sd"},
		Short:   "Remove a Primary Server from the zone",
		Long: `Remove a Primary Server from the zone: its record, so that its certificate
no longer opens the zone's peer links, and its membership in store
replication, so that the remaining servers need a majority of themselves
only. The server holding the CertAuth role cannot be removed: move the
zone CA first (certificate-authority-export -d, certificate-authority-import
on the new holder). Stop the removed server's zone server afterwards.`,
		Example: "  zman server-delete zone3.acme.example",
		Args:    cmdutil.ExactArgs(1, "SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return serverDeleteRun(cmd.Context(), opts)
		},
	}
	addYes(cmd, &opts.Yes)
	return cmd
}

func serverDeleteRun(ctx context.Context, o *serverDeleteOptions) error {
	if err := o.f.confirmDelete(o.Yes, "server "+o.Name+" from the zone"); err != nil {
		return err
	}
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var out api.Server
		if err := c.Do(ctx, http.MethodDelete, api.Prefix+"/servers/"+url.PathEscape(o.Name), nil, &out); err != nil {
			return err
		}
		for _, w := range out.Warnings {
			fmt.Fprintf(o.f.IO.ErrOut, "zman: warning: %s\n", w)
		}
		return o.f.done(map[string]any{"server": o.Name, "removed": true, "warnings": out.Warnings}, "Removed server %s from the zone.\n", o.Name)
	})
}

type serverAddressOptions struct {
	f    *Factory
	Name string
	Req  api.ServerAddress
}

func newServerAddressSet(f *Factory, runF func(*serverAddressOptions) error) *cobra.Command {
	opts := &serverAddressOptions{f: f}
	cmd := &cobra.Command{
		Use:     "server-address-set SERVER [--ip IP]... [--dns NAME]... [--advertise HOST:PORT]",
		Aliases: []string{"sas"},
		Short:   "Record a Primary Server's new IP addresses, DNS names or peer address",
		Long: `Record that a Primary Server moved: its IP addresses and DNS names (the
subject alternative names of its next certificate) and the host:port its
peers reach it at. Then remint its certificate with the new names
(server-certificate-remint SERVER) and restart it on its new address
(zconfigure -D server.address=... -D cluster.advertise=...). Agents learn
the servers' names at their next refresh. See docs/cluster.md.`,
		Example: `  zman server-address-set zone2.acme.example --ip 10.1.0.6 --advertise 10.1.0.6:443
  zman server-certificate-remint zone2.acme.example --activate now`,
		Args: cmdutil.ExactArgs(1, "SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if len(opts.Req.IPs) == 0 && len(opts.Req.DNSNames) == 0 && opts.Req.Advertise == "" {
				return errkind.New(errkind.Usage, "give --ip, --dns or --advertise")
			}
			if runF != nil {
				return runF(opts)
			}
			return serverAddressRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringSliceVar(&opts.Req.IPs, "ip", nil, "the server's IP addresses, all of them (repeatable)")
	cmd.Flags().StringSliceVar(&opts.Req.DNSNames, "dns", nil, "the server's DNS names, all of them, its new name first (repeatable)")
	cmd.Flags().StringVar(&opts.Req.Advertise, "advertise", "", "host:port where the zone's other servers reach it")
	return cmd
}

func serverAddressRun(ctx context.Context, o *serverAddressOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var sv api.Server
		if err := c.Post(ctx, api.Prefix+"/servers/"+url.PathEscape(o.Name)+"/address", o.Req, &sv); err != nil {
			return err
		}
		return o.f.done(sv, "Recorded server %s: names %s; addresses %s; peers reach it at %s.\n", sv.Name,
			strings.Join(sv.DNSNames, ", "), strings.Join(sv.IPs, ", "), sv.Address)
	})
}

type serverRoleMoveOptions struct {
	f      *Factory
	Role   string
	Server string
}

func newServerRoleMove(f *Factory, runF func(*serverRoleMoveOptions) error) *cobra.Command {
	opts := &serverRoleMoveOptions{f: f}
	return &cobra.Command{
		Use:     "server-role-move ROLE SERVER",
		Aliases: []string{"srm"},
		Short:   "Move the Database and MasterPrimary roles to another Primary Server",
		Long: `Move the Database and MasterPrimary roles to SERVER. Both follow the
zone's store replication leader, so they move together: the leader hands
its leadership to SERVER, which must be a running member. Use it before
taking the current holder down for maintenance; if the holder dies, the
others elect a new one by themselves.

The CertAuth role moves with the zone CA's key instead: export it with
certificate-authority-export -d on its holder and import it with
certificate-authority-import on the new one.`,
		Example: "  zman server-role-move Database zone2.acme.example",
		Args:    cmdutil.ExactArgs(2, "ROLE SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Role, opts.Server = args[0], args[1]
			switch strings.ToLower(opts.Role) {
			case "database", "masterprimary":
			case "certauth":
				return errkind.New(errkind.Usage, "the CertAuth role moves with the CA key: certificate-authority-export -d on its holder, then certificate-authority-import on %s", opts.Server)
			default:
				return errkind.New(errkind.Usage, "role %q: give Database or MasterPrimary", opts.Role)
			}
			if runF != nil {
				return runF(opts)
			}
			return serverRoleMoveRun(cmd.Context(), opts)
		},
	}
}

func serverRoleMoveRun(ctx context.Context, o *serverRoleMoveOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var sv api.Server
		if err := c.Post(ctx, api.Prefix+"/servers/"+url.PathEscape(o.Server)+"/leader", nil, &sv); err != nil {
			return err
		}
		return o.f.done(sv, "Server %s holds the Database and MasterPrimary roles.\n", sv.Name)
	})
}
