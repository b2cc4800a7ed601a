// Package pbserv is the command tree of pbserv, the preboot services
// program. The services themselves (proxy DHCP, TFTP, preboot policy and
// imaging) arrive with the preboot issue; this tree fixes the program's
// entry point and shared behaviour.
package pbserv

import (
	"os"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
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
	root := &cobra.Command{
		Use:     "pbserv",
		Short:   "zonekit preboot services",
		Version: version.String(),
		Long: `pbserv runs and controls zonekit's preboot services on Primary Servers
and imaging satellites: proxy DHCP, TFTP, the preboot policy service and
imaging, each controlled with 'pbserv SERVICE start|stop|restart|
force-reload|status|showpid|install'.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SetVersionTemplate("pbserv {{.Version}}\n")
	return root
}
