package zman

import (
	"context"
	"sort"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/spk"
)

// spkScope is the --zone/--group/--device choice of the spk-values commands.
type spkScope struct {
	zone   bool
	group  string
	device string
}

func (s *spkScope) add(fs *pflag.FlagSet) {
	fs.BoolVar(&s.zone, "zone", false, "the zone's values (the default)")
	fs.StringVar(&s.group, "group", "", "the values of this group's members")
	fs.StringVar(&s.device, "device", "", "this device's values (ID or name)")
}

func (s *spkScope) resolve() (scope, target string, err error) {
	n := 0
	for _, set := range []bool{s.zone, s.group != "", s.device != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return "", "", errkind.New(errkind.Usage, "choose one of --zone, --group, --device")
	case s.group != "":
		return "group", s.group, nil
	case s.device != "":
		return "device", s.device, nil
	}
	return "zone", "", nil
}

func newSPKValuesSet(f *Factory) *cobra.Command {
	var sc spkScope
	var secret bool
	cmd := &cobra.Command{
		Use:     "spk-values-set [--zone | --group GROUP | --device DEVICE] [--secret] NAME=value...",
		Aliases: []string{"spkvs"},
		Short:   "Set values of server software package variables for the zone, a group or a device",
		Long: `Set values that CPKs deployed through the zone receive for their variables.
A device gets the zone's values, overridden by those of its groups (in
name order), overridden by its own: the most specific wins. --secret marks
the values as secret: the zone server seals them with the zone's SPK
values key before storing them (the store and the replication log never
hold them in clear), listings mask them, and agents mask them in their
logs whatever the package declares. Agents fetch their values with
'zac spk-process --zone-values'.`,
		Example: `  zman spk-values-set TREE_NAME=ACME ADMIN_CONTEXT=corp
  zman spk-values-set --group branch SITE=branch
  zman spk-values-set --device srv7 --secret PASSWD=...`,
		Args: cmdutil.MinimumArgs(1, "NAME=value"),
		RunE: func(cmd *cobra.Command, args []string) error {
			scope, target, err := sc.resolve()
			if err != nil {
				return err
			}
			vals, err := spk.ParseValues(args)
			if err != nil {
				return errkind.Wrap(errkind.Usage, err)
			}
			req := api.SPKValuesChange{Scope: scope, Target: target, Set: map[string]api.SPKValue{}}
			for k, v := range vals {
				req.Set[k] = api.SPKValue{Value: v, Secret: secret}
			}
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := c.Post(ctx, api.Prefix+"/spk-values", req, nil); err != nil {
					return err
				}
				names := make([]string, 0, len(req.Set))
				for k := range req.Set {
					names = append(names, k)
				}
				sort.Strings(names)
				// Names only: a value may be secret.
				return f.done(map[string]any{"scope": scope, "target": target, "set": names},
					"Set %d value(s) at %s scope.\n", len(vals), scopeName(scope, target))
			})
		},
	}
	sc.add(cmd.Flags())
	cmd.Flags().BoolVar(&secret, "secret", false, "mark the values secret (masked in listings)")
	return cmd
}

func scopeName(scope, target string) string {
	if target == "" {
		return scope
	}
	return scope + " " + target
}

func newSPKValuesUnset(f *Factory) *cobra.Command {
	var sc spkScope
	cmd := &cobra.Command{
		Use:     "spk-values-unset [--zone | --group GROUP | --device DEVICE] NAME...",
		Aliases: []string{"spkvu"},
		Short:   "Remove values of server software package variables",
		Args:    cmdutil.MinimumArgs(1, "a variable name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			scope, target, err := sc.resolve()
			if err != nil {
				return err
			}
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := c.Post(ctx, api.Prefix+"/spk-values", api.SPKValuesChange{Scope: scope, Target: target, Unset: args}, nil); err != nil {
					return err
				}
				return f.done(map[string]any{"scope": scope, "target": target, "removed": args},
					"Removed %d value(s) at %s scope.\n", len(args), scopeName(scope, target))
			})
		},
	}
	sc.add(cmd.Flags())
	return cmd
}

func newSPKValuesList(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "spk-values-list",
		Aliases: []string{"spkvl"},
		Short:   "List the values of server software package variables at every scope",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var all []api.SPKValues
				if err := c.Get(ctx, api.Prefix+"/spk-values", &all); err != nil {
					return err
				}
				return f.print(all, []string{"SCOPE", "NAME", "VALUE"}, func() [][]string {
					var rows [][]string
					for _, s := range all {
						names := make([]string, 0, len(s.Values))
						for k := range s.Values {
							names = append(names, k)
						}
						sort.Strings(names)
						for _, k := range names {
							rows = append(rows, []string{scopeName(s.Scope, s.Target), k, s.Values[k].Value})
						}
					}
					return rows
				})
			})
		},
	}
}
