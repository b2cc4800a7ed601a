package zman

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

func replicationCommands(f *Factory) []*cobra.Command {
	return []*cobra.Command{newReplicationStatus(f, nil), newReplicationSchedule(f, nil), newContentScrub(f, nil),
		newClosestRuleSet(f, nil), newClosestRuleList(f, nil), newClosestRuleClear(f, nil)}
}

type replicationStatusOptions struct {
	f       *Factory
	Server  string
	Package string
}

func newReplicationStatus(f *Factory, runF func(*replicationStatusOptions) error) *cobra.Command {
	o := &replicationStatusOptions{f: f}
	cmd := &cobra.Command{
		Use:     "content-replication-status",
		Aliases: []string{"crs"},
		Short:   "List what each Primary Server holds of each package and image",
		Long: `List, for every Primary Server of the zone and every package (and preboot
image), whether the server holds it (present), lacks it (missing), is
pulling it from a peer (in-flight, with the bytes received so far; "stale"
when no progress was recorded for a minute), or found its copy damaged
(see content-scrub) and has not yet repaired it. Each
server records its own state as it works, so any server answers for all.
ERROR is why the last pull of a missing package failed; PEER is the server
it came or is coming from.`,
		Example: `  zman content-replication-status
  zman crs --package 1795296158 -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				q := url.Values{}
				if o.Server != "" {
					q.Set("server", o.Server)
				}
				if o.Package != "" {
					q.Set("package", o.Package)
				}
				path := api.Prefix + "/content-replication"
				if len(q) > 0 {
					path += "?" + q.Encode()
				}
				var st api.ReplicationStatus
				if err := c.Get(ctx, path, &st); err != nil {
					return err
				}
				return o.f.print(st, []string{"SERVER", "KIND", "PACKAGE", "NAME", "STATE", "BYTES", "SIZE", "PEER", "UPDATED", "ERROR"}, func() [][]string {
					rows := make([][]string, 0, len(st.Entries))
					for _, e := range st.Entries {
						state := e.State
						if e.Stale {
							state += " (stale)"
						}
						rows = append(rows, []string{e.Server, e.Kind, dash(e.Package), e.Name, state, fmt.Sprint(e.Bytes), fmt.Sprint(e.Size),
							dash(e.Peer), ui.Date(e.Updated), dash(e.Error)})
					}
					return rows
				})
			})
		},
	}
	cmd.Flags().StringVar(&o.Server, "server", "", "only this server (name or id)")
	cmd.Flags().StringVar(&o.Package, "package", "", "only this package id (or image:NAME)")
	return cmd
}

type replicationScheduleOptions struct {
	f        *Factory
	Interval time.Duration
	Now      bool
}

func newReplicationSchedule(f *Factory, runF func(*replicationScheduleOptions) error) *cobra.Command {
	o := &replicationScheduleOptions{f: f}
	cmd := &cobra.Command{
		Use:     "content-replication-schedule [--interval DURATION] [--now]",
		Aliases: []string{"crsch"},
		Short:   "Show or set how often Primary Servers pull content from each other",
		Long: `Show the zone's content replication schedule, or set it. Every Primary
Server makes a pass every --interval (at least 1m; 15m until set): it
pulls from its peers the packages and preboot images it lacks and removes
those the zone deleted. A server also makes a pass as soon as it sees a
package created, activated or deleted, and retries sooner (every 30s)
while something is missing. --now asks every server for a pass at once.`,
		Example: `  zman content-replication-schedule
  zman content-replication-schedule --interval 1h
  zman crsch --now`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return replicationScheduleRun(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.Interval, "interval", 0, "time between passes (e.g. 15m, 2h; at least 1m)")
	cmd.Flags().BoolVar(&o.Now, "now", false, "ask every server for a pass now")
	return cmd
}

func replicationScheduleRun(ctx context.Context, o *replicationScheduleOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var sc api.ReplicationSchedule
		if o.Interval != 0 {
			req := api.ReplicationSchedule{IntervalSeconds: int64(o.Interval / time.Second)}
			if o.Interval%time.Second != 0 || req.IntervalSeconds == 0 {
				return errkind.New(errkind.Usage, "--interval %s: want whole seconds, at least 1m", o.Interval)
			}
			if err := c.Do(ctx, http.MethodPut, api.Prefix+"/content-replication/schedule", req, &sc); err != nil {
				return err
			}
		}
		if o.Now {
			if err := c.Post(ctx, api.Prefix+"/content-replication/now", struct{}{}, &sc); err != nil {
				return err
			}
		}
		if o.Interval == 0 && !o.Now {
			if err := c.Get(ctx, api.Prefix+"/content-replication/schedule", &sc); err != nil {
				return err
			}
		}
		format, err := o.f.Format()
		if err != nil {
			return err
		}
		if format == ui.FormatJSON {
			return ui.JSON(o.f.IO.Out, sc)
		}
		ui.KeyValues(o.f.IO.Out, [][2]string{
			{"Interval", sc.Interval},
			{"Last pass requested", ui.Date(sc.Requested)},
		})
		return nil
	})
}

// ruleScope holds the --zone/--group/--device choice of the rule commands.
type ruleScope struct {
	Zone   bool
	Group  string
	Device string
}

func (r *ruleScope) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.Zone, "zone", false, "the zone's rule (every device)")
	cmd.Flags().StringVar(&r.Group, "group", "", "the rule of a group's members")
	cmd.Flags().StringVar(&r.Device, "device", "", "the rule of one device (id or name)")
}

func (r *ruleScope) resolve() (scope, target string, err error) {
	n := 0
	if r.Zone {
		n, scope = n+1, "zone"
	}
	if r.Group != "" {
		n, scope, target = n+1, "group", r.Group
	}
	if r.Device != "" {
		n, scope, target = n+1, "device", r.Device
	}
	if n != 1 {
		return "", "", errkind.New(errkind.Usage, "give exactly one of --zone, --group GROUP, --device DEVICE")
	}
	return scope, target, nil
}

type closestRuleSetOptions struct {
	f       *Factory
	Scope   ruleScope
	Servers []string
}

func newClosestRuleSet(f *Factory, runF func(*closestRuleSetOptions) error) *cobra.Command {
	o := &closestRuleSetOptions{f: f}
	cmd := &cobra.Command{
		Use:     "closest-server-rule-set (--zone | --group GROUP | --device DEVICE) SERVER...",
		Aliases: []string{"csrs"},
		Short:   "Set the order in which devices try the Primary Servers",
		Long: `Set a closest-server rule: the Primary Servers (names or ids) that the devices
it applies to try first, closest first. A device follows its own rule, else
the rule of its first group (by name) that has one, else the zone's; the
servers a rule leaves out come after those it names, by name. Without any
rule a device tries the server that activated a package (for content) or
the server answering it (for API calls) first, then the others by name.

Agents learn the order at their next refresh (the server list) and with
their packages (info and fragment locations: content satellites first,
then the Primary Servers that hold the package, in this order). A rule
given again replaces the old one.`,
		Example: `  zman closest-server-rule-set --zone zone1.example.com zone2.example.com
  zman csrs --group branch-berlin zone2.example.com`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Servers = args
			if _, _, err := o.Scope.resolve(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			scope, target, _ := o.Scope.resolve()
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				req := api.ClosestServerRule{Scope: scope, Target: target, Servers: o.Servers}
				if err := c.Do(ctx, http.MethodPut, api.Prefix+"/closest-server-rules", req, nil); err != nil {
					return err
				}
				return o.f.done(req, "Closest-server rule of %s: %s.\n", strings.TrimSpace(scope+" "+target), strings.Join(o.Servers, ", "))
			})
		},
	}
	o.Scope.addFlags(cmd)
	return cmd
}

type closestRuleListOptions struct{ f *Factory }

func newClosestRuleList(f *Factory, runF func(*closestRuleListOptions) error) *cobra.Command {
	o := &closestRuleListOptions{f: f}
	return &cobra.Command{
		Use:     "closest-server-rule-list",
		Aliases: []string{"csrl"},
		Short:   "List the closest-server rules",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var rules []api.ClosestServerRule
				if err := c.Get(ctx, api.Prefix+"/closest-server-rules", &rules); err != nil {
					return err
				}
				return o.f.print(rules, []string{"SCOPE", "TARGET", "SERVERS", "SET"}, func() [][]string {
					rows := make([][]string, 0, len(rules))
					for _, r := range rules {
						target := r.Target
						if r.Name != "" {
							target = r.Name + " (" + r.Target + ")"
						}
						rows = append(rows, []string{r.Scope, dash(target), strings.Join(r.Servers, ", "), ui.Date(r.Set)})
					}
					return rows
				})
			})
		},
	}
}

type closestRuleClearOptions struct {
	f     *Factory
	Scope ruleScope
}

func newClosestRuleClear(f *Factory, runF func(*closestRuleClearOptions) error) *cobra.Command {
	o := &closestRuleClearOptions{f: f}
	cmd := &cobra.Command{
		Use:     "closest-server-rule-clear (--zone | --group GROUP | --device DEVICE)",
		Aliases: []string{"csrc"},
		Short:   "Remove a closest-server rule",
		Long: `Remove the closest-server rule of the zone, a group or a device; the devices
it applied to follow the next rule that applies (group, then zone) or the
default order.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			scope, target, err := o.Scope.resolve()
			if err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				q := url.Values{"scope": {scope}}
				if target != "" {
					q.Set("target", target)
				}
				if err := c.Delete(ctx, api.Prefix+"/closest-server-rules?"+q.Encode()); err != nil {
					return err
				}
				return o.f.done(map[string]any{"scope": scope, "target": target, "removed": true},
					"Closest-server rule of %s removed.\n", strings.TrimSpace(scope+" "+target))
			})
		},
	}
	o.Scope.addFlags(cmd)
	return cmd
}
