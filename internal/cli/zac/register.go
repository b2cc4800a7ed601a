package zac

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"zonekit/internal/agent"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/pki"
	"zonekit/internal/ui"
)

// RegisterOptions are the register command's inputs.
type RegisterOptions struct {
	*Options
	Server   string
	Key      string
	CACert   string
	Hostname string
}

func newRegister(opts *Options, runF func(*RegisterOptions) error) *cobra.Command {
	o := &RegisterOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "register [-k KEY] https://SERVER:PORT",
		Aliases: []string{"reg"},
		Short:   "Register this device with a zone",
		Long: `Register this device with the zone served at SERVER:PORT. The server must
present a certificate issued by the zone CA in --cacert (or the agent's
cacert.pem); zac prints the CA's fingerprint and refuses any other server.
The device makes its own key pair and receives its certificate from the
zone CA; the key never leaves the device.`,
		Example: `  zac register --cacert zone-ca.pem https://zone1.acme.example:443
  zac reg -k branch-office https://zone1.acme.example`,
		Args: cmdutil.ExactArgs(1, "the zone server's address, https://SERVER:PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Server = args[0]
			if runF != nil {
				return runF(o)
			}
			return registerRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVarP(&o.Key, "key", "k", "", "registration key")
	cmd.Flags().StringVar(&o.CACert, "cacert", "", "zone CA certificate to trust (default the agent's cacert.pem)")
	cmd.Flags().StringVar(&o.Hostname, "hostname", "", "name to register the device under (default this host's name)")
	return cmd
}

func registerRun(ctx context.Context, o *RegisterOptions) error {
	a := o.Agent()
	ca, err := a.LoadCA(o.CACert)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "Zone CA: %s\nSHA-256: %s\n", ca.Subject.CommonName, pki.Fingerprint(ca, "sha256"))
	host := o.Hostname
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return fmt.Errorf("host name: %w", err)
		}
	}
	st, err := a.Register(ctx, agent.RegisterOptions{ServerURL: o.Server, Key: o.Key, CA: ca, Hostname: host})
	if err != nil {
		return err
	}
	format, err := ui.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(o.IO.Out, st)
	}
	fmt.Fprintf(o.IO.Out, "Registered %s in zone %s as device %s.\n", host, st.ZoneName, st.DeviceID)
	return nil
}

// UnregisterOptions are the unregister command's inputs.
type UnregisterOptions struct {
	*Options
	Force bool
}

func newUnregister(opts *Options, runF func(*UnregisterOptions) error) *cobra.Command {
	o := &UnregisterOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "unregister [-f]",
		Aliases: []string{"unr"},
		Short:   "Remove this device from its zone",
		Long: `Remove this device from its zone and delete its key and certificate. With
-f the local registration is removed even when no zone server can be
reached (the device then stays listed in the zone until an administrator
deletes it).`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			st, err := o.Agent().Unregister(cmd.Context(), o.Force)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.IO.Out, "Unregistered device %s from zone %s.\n", st.DeviceID, st.ZoneName)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "remove the local registration even if the zone cannot be told")
	return cmd
}

func newZoneConfig(opts *Options, runF func(*Options) error) *cobra.Command {
	return &cobra.Command{
		Use:     "zone-config",
		Aliases: []string{"zc"},
		Short:   "Show this device's zone, servers and registration (no network)",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			st, err := opts.Agent().State()
			if err != nil {
				return err
			}
			return printState(opts, st)
		},
	}
}

func printState(o *Options, st agent.State) error {
	format, err := ui.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(o.IO.Out, st)
	}
	pairs := [][2]string{
		{"Zone", st.ZoneName},
		{"Zone ID", st.ZoneID},
		{"Device ID", st.DeviceID},
		{"Registered", ui.Date(st.Registered)},
		{"Last contact", ui.Date(st.LastContact)},
		{"Certificate expires", ui.Date(st.CertNotAfter)},
		{"Zone CA SHA-256", st.CAFingerprint},
	}
	for i, s := range st.Servers {
		label := "Server"
		if i > 0 {
			label = "Other server"
		}
		if slices.Contains(st.AuthSatellites, s) {
			label += " (authentication satellite)"
		}
		pairs = append(pairs, [2]string{label, s})
	}
	for _, s := range st.ContentSatellites {
		pairs = append(pairs, [2]string{"Content satellite", s})
	}
	ui.KeyValues(o.IO.Out, pairs)
	return nil
}
