package pbserv

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/atomicfile"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/service"
	"zonekit/internal/ui"
)

// Options are what every pbserv command shares.
type Options struct {
	IO         *ui.IOStreams
	Home       string
	Executable func() (string, error)
}

// Layout resolves the home into the preboot services' layout.
func (o *Options) Layout() conf.Layout { return conf.Layout{Home: config.ResolveHome(o.Home)} }

// ServiceOptions are a service verb's inputs.
type ServiceOptions struct {
	*Options
	Service string
	Verb    string
	Wait    time.Duration
}

func serviceShort(svc string) string {
	return map[string]string{
		conf.Imaging:   "the imaging service: stores and serves images, resolves preboot work, keeps statistics",
		conf.ProxyDHCP: "the proxy DHCP service: tells PXE clients their boot file (ports 67 and 4011)",
		conf.TFTP:      "the TFTP service: serves boot files from TFTPDirectory (port 69)",
		conf.Policy:    "the preboot policy service: hands iPXE clients the work assigned to them",
	}[svc]
}

type verb struct{ name, short, long string }

// verbs are the control actions of every service.
func verbs() []verb {
	return []verb{
		{"start", "Start the service in the background", "Start the service as a background daemon and wait until it listens. The\nconfiguration file is written with its defaults first when there is none.\nThe daemon's own output goes to logs/preboot/SERVICE.out."},
		{"stop", "Stop the service", "Stop the background daemon; transfers under way get up to --wait to finish."},
		{"restart", "Stop the service if it runs, then start it", ""},
		{"force-reload", "Make the running service reread its configuration file", "Make the running daemon reread its configuration file (SIGHUP) and wait until\nit has. Transfers under way go on with the settings they started with; new\nrequests get the new ones. A file with errors, or a change the service can\nonly make on restart, is refused and changes nothing."},
		{"status", "Show whether the service runs", "Print whether the service runs; exit 0 when it does and 3 when it does not."},
		{"showpid", "Print the service's process ID", "Print the daemon's process ID; exit 3 when it does not run."},
		{"install", "Start the service when the server boots (systemd)", "Write a systemd unit (/etc/systemd/system/zonekit-SERVICE.service, or under\n$ZONEKIT_SYSTEMD_DIR) that runs 'pbserv SERVICE run', and enable it with\nsystemctl. Also writes the configuration file with its defaults when missing."},
		{"run", "Run the service in the foreground (what start and systemd run)", "Run the service in the foreground until SIGTERM or SIGINT; SIGHUP rereads the\nconfiguration. The configuration file is written with its defaults when\nthere is none. The log goes to the file its configuration names."},
	}
}

func newServiceCmd(opts *Options, svc string, runF func(*ServiceOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   svc,
		Short: "Control " + serviceShort(svc),
		Long: fmt.Sprintf(`Control %s.

Configuration: conf/preboot/%s.conf under the zonekit home (--home or
$ZONEKIT_HOME); 'pbserv %s install' or the first start writes it with every
parameter and its default.`, serviceShort(svc), svc, svc),
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	for _, v := range verbs() {
		so := &ServiceOptions{Options: opts, Service: svc, Verb: v.name}
		long := v.long
		if long == "" {
			long = v.short + "."
		}
		sub := &cobra.Command{
			Use:   v.name,
			Short: v.short,
			Long:  long,
			Args:  cmdutil.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if runF != nil {
					return runF(so)
				}
				if so.Verb == "run" {
					return runDaemon(cmd, so)
				}
				return serviceRun(so)
			},
		}
		if v.name == "run" {
			sub.Annotations = map[string]string{cmdutil.OwnShutdown: "yes"}
		}
		if v.name == "start" || v.name == "stop" || v.name == "restart" || v.name == "force-reload" {
			sub.Flags().DurationVar(&so.Wait, "wait", 30*time.Second, "how long to wait for the service to start, stop or reload")
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func serviceRun(o *ServiceOptions) error {
	l := o.Layout()
	title := service.Title(o.Service)
	out := o.IO.Out
	switch o.Verb {
	case "status":
		s := service.ReadStatus(l, o.Service)
		if !s.Running {
			return errkind.New(errkind.NotFound, "%s not running", title)
		}
		fmt.Fprintf(out, "%s running (pid %d)\n", title, s.Pid)
		if o.Service == conf.Imaging {
			printStats(o.Options, l)
		}
		return nil
	case "showpid":
		s := service.ReadStatus(l, o.Service)
		if !s.Running {
			return errkind.New(errkind.NotFound, "%s not running", title)
		}
		fmt.Fprintln(out, s.Pid)
		return nil
	case "stop":
		return stopService(o, l)
	case "start":
		return startService(o, l)
	case "restart":
		// A broken file must not cost the running service.
		if _, err := l.Load(o.Service); err != nil {
			return err
		}
		if err := stopService(o, l); err != nil {
			return err
		}
		return startService(o, l)
	case "force-reload":
		s, err := service.Reload(l, o.Service, o.Wait)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s (pid %d) reread %s\n", title, s.Pid, l.File(o.Service))
		return nil
	case "install":
		return installService(o, l)
	}
	return errkind.New(errkind.Usage, "unknown action %q", o.Verb)
}

func startService(o *ServiceOptions, l conf.Layout) error {
	if wrote, err := l.WriteDefault(o.Service); err != nil {
		return err
	} else if wrote {
		fmt.Fprintf(o.IO.Out, "Wrote %s with the defaults.\n", l.File(o.Service))
	}
	// Check the configuration here so a mistake reads as one line now.
	if _, err := l.Load(o.Service); err != nil {
		return err
	}
	exe, err := o.Executable()
	if err != nil {
		return fmt.Errorf("find pbserv: %w", err)
	}
	s, err := service.Start(l, o.Service, exe, o.Wait)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "%s running (pid %d)\n", service.Title(o.Service), s.Pid)
	return nil
}

func stopService(o *ServiceOptions, l conf.Layout) error {
	s, err := service.Stop(l, o.Service, o.Wait)
	if err != nil {
		return err
	}
	if s.Running {
		fmt.Fprintf(o.IO.Out, "%s (pid %d) stopped\n", service.Title(o.Service), s.Pid)
	} else {
		fmt.Fprintf(o.IO.Out, "%s was not running\n", service.Title(o.Service))
	}
	return nil
}

func installService(o *ServiceOptions, l conf.Layout) error {
	if wrote, err := l.WriteDefault(o.Service); err != nil {
		return err
	} else if wrote {
		fmt.Fprintf(o.IO.Out, "Wrote %s with the defaults.\n", l.File(o.Service))
	}
	exe, err := o.Executable()
	if err != nil {
		return fmt.Errorf("find pbserv: %w", err)
	}
	res, err := service.Install(l, o.Service, exe, func(path string, data []byte) error {
		return atomicfile.WriteFile(path, data, 0o644)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "Wrote %s.\n", res.Path)
	if res.Enabled {
		fmt.Fprintf(o.IO.Out, "Enabled %s: it starts when the server boots.\n", service.UnitName(o.Service))
	} else {
		fmt.Fprintf(o.IO.ErrOut, "pbserv: %s not enabled (%s); on the target system run: systemctl enable %s\n", service.UnitName(o.Service), res.Why, service.UnitName(o.Service))
	}
	return nil
}

func runDaemon(cmd *cobra.Command, o *ServiceOptions) error {
	opts := service.Options{Layout: o.Layout(), Service: o.Service, Stderr: o.IO.ErrOut}
	// Only the imaging and policy services speak to the zone.
	if o.Service == conf.Imaging || o.Service == conf.Policy {
		if z := zoneOf(o.Options); z != nil {
			opts.Zone, opts.TLS = z, &z.tls
		}
	}
	return service.Run(cmd.Context(), opts)
}
