package zac

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/agent"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
)

// AgentOptions are the agent loop's inputs.
type AgentOptions struct {
	*Options
	Interval     time.Duration
	ExitWhenDone bool
	Verbose      bool
}

func newAgent(opts *Options) *cobra.Command {
	o := &AgentOptions{Options: opts}
	cmd := &cobra.Command{
		Use:         "agent",
		Annotations: map[string]string{cmdutil.OwnShutdown: "yes"},
		Short:       "Run the agent: refresh and deploy packages, again and again",
		Long: `Run zac as the device's long-running agent (the zac-agent.service unit runs
it under systemd; on Windows the pack's install.cmd makes it the
zonekit-agent service, and zac answers the service manager itself): refresh with the zone, run the download engine until
every package is deployed or a period makes no progress, wait --interval,
and again. Results the zone could not take wait in the local cache and go
with the next contact. Only one engine runs per device: a 'zac refresh'
started meanwhile says so and leaves the work to this one.

SIGTERM or Ctrl-C stops the loop between steps; a package action already
running is left to finish (or to its execution timeout). The engine's log
is logs/deploy.log in the agent's home.

--exit-when-done ends the loop once every assigned package is deployed and
its result sent (exit status 0), for scripts that wait for a deployment.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			run := func(ctx context.Context) error { return agentRun(ctx, o) }
			if ok, err := asService(cmd.Context(), run); ok {
				return err
			}
			return run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Interval, "interval", 10*time.Minute, "time between refreshes")
	f.BoolVar(&o.ExitWhenDone, "exit-when-done", false, "exit once every assigned package is deployed")
	cmdutil.VerboseFlag(f, &o.Verbose, "also write the engine's log to stderr")
	return cmd
}

func agentRun(ctx context.Context, o *AgentOptions) error {
	if o.Interval <= 0 {
		return errkind.New(errkind.Usage, "--interval must be positive")
	}
	a := o.Agent()
	// A CPK run that was killed is rolled back before anything else;
	// one under way (zac spk-process) is left to itself.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := a.RecoverSPK(rctx, o.IO.ErrOut, nil); err != nil && rctx.Err() == nil {
		fmt.Fprintf(o.IO.ErrOut, "zac: %v\n", err)
	}
	cancel()
	if _, err := a.State(); err != nil {
		return err
	}
	var log io.Writer
	if o.Verbose {
		log = o.IO.ErrOut
	}
	// A round's calls share connections; none is kept across the interval.
	a.ReuseConnections = true
	defer a.Close()
	for {
		if _, err := a.Refresh(ctx); err != nil {
			if errkind.Is(err, errkind.NotFound) {
				return err
			}
			fmt.Fprintf(o.IO.ErrOut, "zac: %v\n", err)
		}
		res, err := a.Deploy(ctx, agent.DeployOptions{Log: log})
		a.Close()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errkind.Is(err, errkind.NotFound) {
				return err
			}
			fmt.Fprintf(o.IO.ErrOut, "zac: %v\n", err)
		} else if o.ExitWhenDone && res.Contacted && res.Pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Interval):
		}
	}
}
