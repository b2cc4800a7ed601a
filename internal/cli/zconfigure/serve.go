package zconfigure

import (
	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/daemon"
)

func newServe(opts *Options) *cobra.Command {
	return &cobra.Command{
		Use:         "serve",
		Annotations: map[string]string{cmdutil.OwnShutdown: "yes"},
		Short:       "Run the zone server in the foreground (systemd runs this)",
		Long: `Run the zone server in the foreground until SIGTERM or SIGINT. It opens the
zone store (refusing, within seconds, if another process has it), serves the
HTTPS API on the configured port and writes its structured log to
logs/zoneserver.log. On SIGTERM it lets requests in flight finish, closes
the store and exits 0. The zonekit-server.service unit (make install, the
zonekit-server package) runs exactly this.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(opts.Properties) > 0 {
				if err := applyProperties(opts); err != nil {
					return err
				}
			}
			return daemon.Serve(cmd.Context(), opts.Paths(), opts.IO.ErrOut)
		},
	}
}
