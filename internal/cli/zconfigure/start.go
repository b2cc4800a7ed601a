package zconfigure

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/config"
	"zonekit/internal/daemon"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

// StartOptions are the Start action's inputs.
type StartOptions struct {
	*Options
	Action string
	Wait   time.Duration
}

var serviceActions = []string{"start", "stop", "restart", "status"}

func newStart(opts *Options, runF func(*StartOptions) error) *cobra.Command {
	so := &StartOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "Start",
		Short: "Start, stop, restart or show the zone server in the background",
		Long: `Control the zone server as a background process with a pid file
(data/zoneserver.pid). --action picks start, stop, restart or status; on a
terminal without --action a numbered menu asks. 'status' exits 0 when the
server runs and 3 when it does not. The server's own output goes to
logs/zoneserver.out.`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(so)
			}
			return startRun(so)
		},
	}
	cmd.Flags().StringVar(&so.Action, "action", "", "start, stop, restart or status")
	cmd.Flags().DurationVar(&so.Wait, "wait", 30*time.Second, "how long to wait for the server to start or stop")
	return cmd
}

func startRun(o *StartOptions) error {
	action := o.Action
	if action == "" {
		if !o.CanPrompt() {
			return ui.RequiredError("--action (start, stop, restart or status)")
		}
		i, err := o.Prompter.Menu("Zone server:", serviceActions)
		if err != nil {
			return err
		}
		action = serviceActions[i]
	}
	p := o.Paths()
	if err := p.CheckZone(); err != nil {
		return err
	}
	if len(o.Properties) > 0 {
		if err := config.SetProperties(p, o.Properties); err != nil {
			return err
		}
	}
	out := o.IO.Out
	switch action {
	case "status":
		s := daemon.ReadStatus(p)
		if !s.Running {
			return errkind.New(errkind.NotFound, "the zone server is stopped")
		}
		fmt.Fprintf(out, "The zone server is running (pid %d).\n", s.Pid)
		return nil
	case "stop":
		return stop(o, p)
	case "start":
		return start(o, p)
	case "restart":
		if err := stop(o, p); err != nil {
			return err
		}
		return start(o, p)
	}
	return errkind.New(errkind.Usage, "--action %q: want start, stop, restart or status", action)
}

func start(o *StartOptions, p config.Paths) error {
	exe, err := o.Executable()
	if err != nil {
		return fmt.Errorf("find zconfigure: %w", err)
	}
	s, err := daemon.Start(p, exe, o.Wait)
	if err != nil {
		return err
	}
	cfg, _ := config.LoadServer(p)
	fmt.Fprintf(o.IO.Out, "The zone server is running (pid %d) on port %d.\nStop it with: zconfigure --home %s -c Start --action stop\n", s.Pid, cfg.Port, p.Home)
	return nil
}

func stop(o *StartOptions, p config.Paths) error {
	s, err := daemon.Stop(p, o.Wait)
	if err != nil {
		return err
	}
	if s.Running {
		fmt.Fprintf(o.IO.Out, "The zone server (pid %d) has stopped.\n", s.Pid)
	} else {
		fmt.Fprintln(o.IO.Out, "The zone server was not running.")
	}
	return nil
}
