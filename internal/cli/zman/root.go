// Package zman is the command tree of zman, the zone administrator's
// client. Every command is an API call to a zone server.
package zman

import (
	"os"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/ui"
	"zonekit/internal/version"
)

// Main runs zman with the process's arguments and streams.
func Main() int {
	io := ui.System()
	return cmdutil.Run(NewRoot(NewFactory(io)), io, os.Args[1:])
}

// NewRoot builds the zman command tree around f.
func NewRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:     "zman",
		Short:   "Administer a zonekit management zone",
		Version: version.String(),
		Long: `zman administers a zonekit management zone: administrators, servers,
devices, groups and registration keys. Every command is a call to a zone
server's HTTPS API, authenticated as a zone administrator.

The server is --host/--port (or ZMAN_HOST/ZMAN_PORT); on a zone server itself
the local zone's port and CA certificate are found from ZONEKIT_HOME. The
server is trusted only if its certificate is issued by the zone CA
(--cacert or ZMAN_CACERT).

Credentials come from -U and --password-file/--password-env/
--password-command (or -P), then ZMAN_USER/ZMAN_PASSWORD, then a credential
stored with 'zman admin-store-credential', then a prompt on a terminal.

A saved context (context-create, context-use, --context or ZMAN_CONTEXT)
gives the server, CA file, administrator and password source when flags
and variables do not.`,
		Args: cmdutil.NoArgs,
		// -o is checked before any API call, so that a typo in it cannot
		// turn a change the server has made into a reported failure.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			f.running = cmd
			_, err := f.Format()
			return err
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SetVersionTemplate("zman " + version.Long() + "\n")
	f.Global.AddFlags(root.PersistentFlags())

	root.AddGroup(
		&cobra.Group{ID: "zone", Title: "Zone and servers:"},
		&cobra.Group{ID: "admin", Title: "Administrators:"},
		&cobra.Group{ID: "device", Title: "Devices, groups and registration keys:"},
		&cobra.Group{ID: "cert", Title: "Certificates:"},
		&cobra.Group{ID: "backup", Title: "Backup and restore:"},
		&cobra.Group{ID: "spk", Title: "Server software packages:"},
		&cobra.Group{ID: "package", Title: "Packages:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("zone", newZoneInfo(f, nil), newServerList(f, nil), newServerDelete(f, nil), newServerAddressSet(f, nil), newServerRoleMove(f, nil))
	add("zone", newSatelliteAddRole(f, nil), newSatelliteRemoveRole(f, nil), newSatelliteList(f, nil))
	add("zone", replicationCommands(f)...)
	add("admin", newAdminCreate(f, nil), newAdminList(f, nil), newAdminDelete(f, nil),
		newStoreCredential(f, nil), newClearCredential(f, nil))
	add("admin", contextCommands(f)...)
	add("device", newDeviceList(f, nil), newDeviceDelete(f, nil), newDeviceInventory(f), newDevicePackageList(f),
		newGroupCreate(f, nil), newGroupAddDevice(f, nil), newGroupList(f, nil),
		newRegKeyCreate(f, nil), newRegKeyList(f, nil), newRegKeyDelete(f, nil))
	add("cert", newCAInfo(f, nil), newServerCertList(f, nil), newCAExport(f, nil), newCAImport(f, nil),
		newCARoleEnable(f, nil), newCARoleDisable(f, nil), newCARemint(f), newDeviceCARotate(f, nil), newCAChange(f), newServerCertRemint(f),
		newChangeInfo(f), newChangeCancel(f), newServerCSR(f), newServerCertImport(f), newServerAddCert(f),
		newExpiryCheck(f, nil), newChangeCheck(f))
	add("backup", newBackup(f, nil), newRestore(f, nil))
	add("spk", newSPKCompile(f), newSPKValuesSet(f), newSPKValuesUnset(f), newSPKValuesList(f))
	add("package", packageCommands(f)...)
	add("device", prebootCommands(f)...)
	f.addCompletions(root)
	return root
}
