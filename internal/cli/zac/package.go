package zac

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/agent"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

// RefreshOptions are refresh's inputs.
type RefreshOptions struct {
	*Options
	Verbose bool
	Now     bool
}

func newRefresh(opts *Options, runF func(*RefreshOptions) error) *cobra.Command {
	o := &RefreshOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "refresh",
		Aliases: []string{"ref"},
		Short:   "Contact the zone now and deploy the packages assigned to this device",
		Long: `Contact the zone (its servers in order until one answers), record the
contact, send the package results waiting in the local cache, learn the
packages assigned to this device and the zone's download configuration,
and run the download engine: download periods until every package is
deployed, or until a whole period made no progress (a server is down; the
next refresh or 'zac agent' resumes where this one stopped, at the byte).

Meant for cron and login scripts: nothing prompts, and the exit status says
what is left:
  0  every assigned package is deployed and its result is with the zone
  6  work is still pending: packages not deployed yet, or results not sent
     (a server is down, downloads are turned off, or the latencies below
     spread the work over more time than one run); run it again later
  7  every package is finished, but some that finished in this run failed
  8  another zac (zac agent, or a refresh) is deploying on this device: it
     takes this work too; nothing was done
  5  no zone server could be reached (the engine still worked offline
     with the packages it knew)
zac package-list shows where each package stands.
The engine's log is logs/deploy.log in the agent's home (-v: also stderr).
On a terminal, a status line shows the package, the fragment and how long
the engine waits before its next attempt.

The zone's download settings (zman package-download-config) pace the
engine as OCS agents are paced: a package of priority P takes one step
(its info file, one fragment, or its action) every P cycles; FRAG_LATENCY
seconds (default 10) follow each fragment, CYCLE_LATENCY seconds (default
60) each cycle of PERIOD_LENGTH (default 10) cycles, PERIOD_LATENCY each
period. With the defaults a one-fragment package of priority 5 needs
about 10 minutes, a 3-fragment one about 20: the latencies spread 1,000
devices' downloads over time. --now ignores them for this run (the zone's
'zman package-deploy-now' does the same for a package or device from the
zone's side).`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return refreshRun(cmd.Context(), o)
		},
	}
	cmdutil.VerboseFlag(cmd.Flags(), &o.Verbose, "also write the engine's log to stderr")
	cmd.Flags().BoolVar(&o.Now, "now", false, "ignore the zone's download latencies in this run: deploy as fast as the servers answer")
	return cmd
}

func refreshRun(ctx context.Context, o *RefreshOptions) error {
	format, err := ui.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	a := o.Agent()
	// The contact and the package list share one TLS connection.
	a.ReuseConnections = true
	defer a.Close()
	st, rerr := a.Refresh(ctx)
	if rerr != nil && errkind.Is(rerr, errkind.NotFound) {
		return rerr
	}
	var log io.Writer
	if o.Verbose {
		log = o.IO.ErrOut
	}
	start := time.Now()
	do := agent.DeployOptions{Log: log, Now: o.Now}
	// On a terminal, one line says where the engine stands and how long it
	// waits, so that the zone's latencies never look like a hang.
	if o.IO.ErrTTY && !o.Verbose {
		do.Status = func(line string) { fmt.Fprintf(o.IO.ErrOut, "\r\x1b[K%s", line) }
		defer fmt.Fprint(o.IO.ErrOut, "\r\x1b[K")
	}
	res, err := a.Deploy(ctx, do)
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		if err := ui.JSON(o.IO.Out, struct {
			State agent.State `json:"state"`
			agent.DeployResult
		}{st, res}); err != nil {
			return err
		}
	} else {
		if rerr == nil {
			fmt.Fprintf(o.IO.Out, "Refreshed: zone %s answered at %s.\n", st.ZoneName, ui.Date(st.LastContact))
		}
		for _, p := range res.Packages {
			if !p.Done() || !p.Updated.Before(start.Add(-time.Second)) {
				fmt.Fprintf(o.IO.Out, "Package %s: %s\n", p.ID, describe(p))
			}
		}
	}
	if rerr != nil {
		return rerr
	}
	return resultError(res)
}

// resultError turns a run's outcome into refresh's exit status: work
// still pending (6) before failures (7), so that a script that runs zac
// refresh until it stops answering 6 sees the failures at the end.
func resultError(res agent.DeployResult) error {
	switch {
	case res.Pending > 0 && res.Disabled:
		return errkind.New(errkind.Pending, "%d assigned package(s) wait: downloads are turned off in this zone (zman package-download-config --enabled=true)", res.Pending)
	case res.Pending > 0:
		return errkind.New(errkind.Pending, "%d assigned package(s) not deployed yet (zac package-list)", res.Pending)
	case res.Failed > 0:
		return errkind.New(errkind.PartlyFailed, "%d package(s) failed on this device (zac package-list)", res.Failed)
	}
	return nil
}

// describe says where a package stands, in a few words.
func describe(p *agent.LocalPackage) string {
	switch p.Phase {
	case agent.PhaseDone:
		if p.Reported {
			return p.Result
		}
		return p.Result + " (result not sent yet)"
	case agent.PhaseDownload:
		s := fmt.Sprintf("downloading, %d/%d fragment(s)", p.Have, p.Fragments)
		if p.Reused > 0 {
			s += fmt.Sprintf(" (%d reused)", p.Reused)
		}
		if p.LastError != "" {
			s += "; last error: " + p.LastError
		}
		return s
	case agent.PhaseNew:
		if p.LastError != "" {
			return "waiting; last error: " + p.LastError
		}
		return "waiting"
	}
	return p.Phase
}

func newPackageList(opts *Options) *cobra.Command {
	return &cobra.Command{
		Use:     "package-list",
		Aliases: []string{"pkl"},
		Short:   "List the packages assigned to this device and where each stands",
		Long: `List every package this device knows: its priority, its phase (new,
downloading, ready, running, done), the fragments in (and how many of
them were reused from the fragment cache or another package on this device
rather than fetched), its result and whether the zone has the result. Read
from the local state only: it works without the zone, and while 'zac
agent' runs. Piped, each package is one line of tab-separated fields,
without headers.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := ui.ParseFormat(opts.Output)
			if err != nil {
				return err
			}
			a := opts.Agent()
			pkgs, err := a.Packages()
			if err != nil {
				return err
			}
			for _, p := range pkgs {
				p.Have = a.FragmentsIn(p)
			}
			if format == ui.FormatJSON {
				if pkgs == nil {
					pkgs = []*agent.LocalPackage{}
				}
				return ui.JSON(opts.IO.Out, pkgs)
			}
			var rows [][]string
			for _, p := range pkgs {
				sent := ""
				if p.Phase == agent.PhaseDone {
					sent = map[bool]string{true: "yes", false: "no"}[p.Reported]
				}
				frags := fmt.Sprintf("%d/%d", p.Have, p.Fragments)
				if p.Reused > 0 {
					// Taken from the fragment cache or another package, not fetched.
					frags += fmt.Sprintf(" (%d reused)", p.Reused)
				}
				rows = append(rows, []string{p.ID, strconv.Itoa(p.Priority), p.Phase,
					frags, p.Result, sent, ui.Date(p.Updated)})
			}
			return ui.Listing(opts.IO.Out, opts.IO.OutTTY, []string{"ID", "Priority", "Phase", "Fragments", "Result", "Sent", "Updated"}, rows)
		},
	}
}

func newPackageCancel(opts *Options) *cobra.Command {
	return &cobra.Command{
		Use:     "package-cancel ID",
		Aliases: []string{"pkc"},
		Short:   "Stop deploying a package on this device",
		Long: `Stop the deployment of a package on this device: the engine (the running
one, or the next) drops its files and reports ERR_ABORTED to the zone. A
package whose action has started cannot be cancelled.`,
		Args: cmdutil.ExactArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := opts.Agent().CancelPackage(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(opts.IO.Out, "Package %s cancelled: the engine reports ERR_ABORTED at its next turn.\n", p.ID)
			return nil
		},
	}
}
