// Package zac is the command tree of zac, the endpoint agent.
package zac

import (
	"os"

	"github.com/spf13/cobra"

	"zonekit/internal/agent"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/ui"
	"zonekit/internal/version"
)

// Options are zac's global flags and streams.
type Options struct {
	IO     *ui.IOStreams
	Home   string
	Output string
}

// Agent returns the agent of the resolved home.
func (o *Options) Agent() *agent.Agent { return agent.New(agent.ResolveHome(o.Home)) }

// Main runs zac with the process's arguments and streams.
func Main() int {
	io := ui.System()
	return cmdutil.Run(NewRoot(&Options{IO: io}), io, ReferenceArgs(os.Args[1:]))
}

// NewRoot builds the zac command tree.
func NewRoot(opts *Options) *cobra.Command {
	root := &cobra.Command{
		Use:     "zac",
		Short:   "The zonekit endpoint agent",
		Version: version.String(),
		Long: `zac is the zonekit agent on a managed device. It registers the device with
a zone, trusting only the zone CA certificate it is given (cacert.pem in the
agent's home, or --cacert), and from then on talks to the zone's servers
with the device certificate the zone issued.

The agent's home is --home, else $ZAC_HOME, else /var/opt/zonekit-agent
for root and ~/.local/share/zonekit-agent for other users.`,
		Args: cmdutil.NoArgs,
		// -o is checked before anything is done, so that a typo in it
		// cannot fail a registration that has already happened.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			_, err := ui.ParseFormat(opts.Output)
			return err
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SetVersionTemplate("zac " + version.Long() + "\n")
	root.PersistentFlags().StringVar(&opts.Home, "home", "", "agent home directory (or ZAC_HOME)")
	root.PersistentFlags().StringVarP(&opts.Output, "output", "o", "table", "output format: table or json")
	root.AddCommand(newRegister(opts, nil), newUnregister(opts, nil), newZoneConfig(opts, nil), newRefresh(opts, nil),
		newRetrust(opts, nil), newCertInfo(opts, nil), newSPKCompile(opts), newSPKProcess(opts), newSPKUninstall(opts),
		newAgent(opts), newPackageList(opts), newPackageCancel(opts))
	root.AddCommand(newSatelliteServe(opts), newAuthServerReconfigure(opts), newRemintSatelliteCert(opts), newImportAuthCert(opts))
	return root
}
