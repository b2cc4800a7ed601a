// Package pbserv is the command tree of pbserv, the preboot services
// program: the four services (pbserv imaging, proxydhcp, tftp,
// zmgprebootpolicy) with their control verbs and foreground daemons, the
// status and statistics, and the imaging client commands.
package pbserv

import (
	"os"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/ui"
	"zonekit/internal/version"
)

// Main runs pbserv with the process's arguments and streams.
func Main() int {
	io := ui.System()
	return cmdutil.Run(NewRoot(io), io, os.Args[1:])
}

// NewRoot builds the pbserv command tree.
func NewRoot(io *ui.IOStreams) *cobra.Command {
	opts := &Options{IO: io, Executable: os.Executable}
	root := &cobra.Command{
		Use:     "pbserv",
		Short:   "zonekit preboot services",
		Version: version.String(),
		Long: `pbserv runs and controls zonekit's preboot services on Primary Servers
and imaging satellites: proxy DHCP, TFTP, the preboot policy service and
imaging, each controlled with 'pbserv SERVICE start|stop|restart|
force-reload|status|showpid|install' and run in the foreground with
'pbserv SERVICE run'.

Files live under the zonekit home (--home, $ZONEKIT_HOME, /var/opt/zonekit
for root): conf/preboot/SERVICE.conf, logs/preboot/SERVICE.log,
data/preboot/SERVICE.pid, and images in data/images.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SetVersionTemplate("pbserv " + version.Long() + "\n")
	root.PersistentFlags().StringVar(&opts.Home, "home", "", "zonekit home directory (default $ZONEKIT_HOME, /var/opt/zonekit for root)")
	for _, svc := range conf.Services() {
		root.AddCommand(newServiceCmd(opts, svc, nil))
	}
	root.AddCommand(newStatus(opts, nil), newImageUpload(opts, nil), newImageDownload(opts, nil), newImageList(opts, nil),
		newImagingBuild(opts, nil), newImagingClient(opts))
	return root
}
