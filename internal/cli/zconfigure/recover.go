package zconfigure

import (
	"fmt"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/provision"
)

// RecoverOptions are the RecoverCluster action's inputs.
type RecoverOptions struct {
	*Options
	Rejoin bool
}

func newRecoverCluster(opts *Options, runF func(*RecoverOptions) error) *cobra.Command {
	o := &RecoverOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "RecoverCluster",
		Short: "Restart the zone's replication from this server after logs or a majority were lost",
		Long: `Get a zone's replication going again when no leader can be elected any
more: every server lost its replication log (data/raft), or a majority of
the servers is gone for good, or the zone's only server was restored from
a backup. Run it with the zone server stopped.

On ONE server (the one whose store is the most recent): it removes the
replication log and, at the next start, the server leads a new cluster of
its own (a new cluster incarnation) from its store. Then start the
others: a server without a log, or with --rejoin, copies the store from it
and follows it; the zone's servers are voters again once they caught up.
A server whose log belongs to the old incarnation is refused (its log
says so) until it ran 'zconfigure -c RecoverCluster --rejoin'.

Changes that only the lost servers held are lost. Never run it without
--rejoin on two servers of a zone: each would lead a zone of its own.`,
		Example: `  zconfigure -c RecoverCluster               # on the server to restart from
  zconfigure -c RecoverCluster --rejoin      # on each other server that kept an old log`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return recoverRun(o)
		},
	}
	cmd.Flags().BoolVar(&o.Rejoin, "rejoin", false, "only drop this server's log: it copies the store from the recovered server at its next start")
	return cmd
}

func recoverRun(o *RecoverOptions) error {
	res, err := provision.RecoverCluster(o.Paths(), o.Rejoin)
	if err != nil {
		return err
	}
	out := o.IO.Out
	if res.Rejoin {
		fmt.Fprintf(out, "Replication log removed. At its next start this server copies the zone store from a server of the recovered cluster and follows it.\n")
	} else {
		fmt.Fprintf(out, "Replication log removed. At its next start this server leads a new cluster of zone %s from its store (change %d, incarnation %q).\n", res.Zone, res.Applied, res.Incarnation)
		if res.Servers > 1 {
			fmt.Fprintf(out, "The zone's %d other server(s) join it when they start; a server that kept its old log needs 'zconfigure -c RecoverCluster --rejoin' first.\n", res.Servers-1)
		}
	}
	fmt.Fprintln(out, "Start the zone server: zconfigure -c Start --action start")
	return nil
}
