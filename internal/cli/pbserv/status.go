package pbserv

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/config"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/service"
	"zonekit/internal/ui"
)

// StatusOptions are the status command's inputs.
type StatusOptions struct {
	*Options
	Output string
}

func newStatus(opts *Options, runF func(*StatusOptions) error) *cobra.Command {
	so := &StatusOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "status",
		Aliases: []string{"zmgmcast-status"},
		Short:   "Show every preboot service and the imaging statistics",
		Long: `Show whether each preboot service runs, and the imaging service's
statistics since it started (as 'zmgmcast -status' does): PXE requests
(every request of any kind, including failed and refused ones), images sent
and images received. Restarting the imaging service resets them.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(so)
			}
			return statusRun(so)
		},
	}
	cmd.Flags().StringVarP(&so.Output, "output", "o", "table", "output format: table or json")
	return cmd
}

type serviceStatus struct {
	Service string `json:"service"`
	Title   string `json:"title"`
	Running bool   `json:"running"`
	Pid     int    `json:"pid,omitempty"`
}

type statusJSON struct {
	Services   []serviceStatus   `json:"services"`
	Statistics *imaging.Stats    `json:"statistics,omitempty"`
	Tasks      []api.PrebootWork `json:"tasks,omitempty"`
	TasksError string            `json:"tasks_error,omitempty"`
}

func statusRun(o *StatusOptions) error {
	format, err := ui.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	l := o.Layout()
	var res statusJSON
	for _, svc := range conf.Services() {
		s := service.ReadStatus(l, svc)
		res.Services = append(res.Services, serviceStatus{svc, service.Title(svc), s.Running, s.Pid})
	}
	if service.ReadStatus(l, conf.Imaging).Running {
		if st, err := imaging.ReadStats(l.StatsFile()); err == nil {
			res.Statistics = &st
		}
	}
	// The zone's imaging tasks, asked as this server (its certificate).
	if z, err := newZoneWork(config.Paths{Home: config.ResolveHome(o.Home)}); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res.Tasks, err = z.Tasks(ctx)
		cancel()
		if err != nil {
			res.TasksError = err.Error()
		}
	}
	if format == ui.FormatJSON {
		return ui.JSON(o.IO.Out, res)
	}
	rows := [][]string{}
	for _, s := range res.Services {
		state, pid := "stopped", "-"
		if s.Running {
			state, pid = "running", fmt.Sprint(s.Pid)
		}
		rows = append(rows, []string{s.Service, s.Title, state, pid})
	}
	if err := ui.Table(o.IO.Out, []string{"SERVICE", "NAME", "STATE", "PID"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(o.IO.Out)
	printStats(o.Options, l)
	switch {
	case res.TasksError != "":
		fmt.Fprintf(o.IO.Out, "\nImaging tasks: the zone server did not answer: %s\n", res.TasksError)
	case len(res.Tasks) > 0:
		fmt.Fprintln(o.IO.Out, "\nImaging tasks:")
		return ui.Table(o.IO.Out, TaskHeaders(), TaskRows(res.Tasks))
	}
	return nil
}

// TaskHeaders and TaskRows lay out imaging tasks (here and in zman).
func TaskHeaders() []string {
	return []string{"MAC", "ACTION", "IMAGE", "STATUS", "BYTES", "DURATION", "ERROR"}
}

// TaskRows is one row per task.
func TaskRows(tasks []api.PrebootWork) [][]string {
	rows := [][]string{}
	for _, t := range tasks {
		dur, bytes := "-", "-"
		if !t.Started.IsZero() && !t.Finished.IsZero() {
			dur = t.Finished.Sub(t.Started).Round(time.Second).String()
		}
		if t.Bytes > 0 {
			bytes = fmt.Sprint(t.Bytes)
		}
		rows = append(rows, []string{t.MAC, t.Action, t.Image, t.Status, bytes, dur, t.Error})
	}
	return rows
}

// printStats prints the imaging statistics of the reference.
func printStats(o *Options, l conf.Layout) {
	st, err := imaging.ReadStats(l.StatsFile())
	if err != nil || !service.ReadStatus(l, conf.Imaging).Running {
		fmt.Fprintln(o.IO.Out, "Imaging statistics: the imaging service is not running")
		return
	}
	fmt.Fprintf(o.IO.Out, "Imaging statistics since %s:\n", st.Started.Local().Format(time.DateTime))
	fmt.Fprintf(o.IO.Out, "  PXE Requests:    %d\n", st.PXERequests)
	fmt.Fprintf(o.IO.Out, "  Images Sent:     %d\n", st.ImagesSent)
	fmt.Fprintf(o.IO.Out, "  Images Received: %d\n", st.ImagesReceived)
}
