// Package zconfigure is the command tree of zconfigure, which creates a
// zone, runs and controls the zone server and sets its configuration. It
// keeps the reference tool's shape: `zconfigure -c ACTION`, `-l`, `-D`, `-Z`.
package zconfigure

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/config"
	"zonekit/internal/ui"
	"zonekit/internal/version"
)

const actionAnnotation = "zconfigure-action"

// Options are the flags every action shares.
type Options struct {
	IO         *ui.IOStreams
	Prompter   ui.Prompter
	Home       string
	Properties []string
	NoPrompt   bool
	List       bool
	Executable func() (string, error)
}

// Paths resolves the zone home.
func (o *Options) Paths() config.Paths { return config.Paths{Home: config.ResolveHome(o.Home)} }

// CanPrompt is false with -Z or without a terminal.
func (o *Options) CanPrompt() bool { return !o.NoPrompt && o.IO.CanPrompt() }

// Main runs zconfigure with the process's arguments and streams.
func Main() int {
	io := ui.System()
	opts := &Options{IO: io, Prompter: ui.NewPrompter(io), Executable: os.Executable}
	return cmdutil.Run(NewRoot(opts), io, RewriteAction(os.Args[1:]))
}

// RewriteAction turns `-c ACTION rest...` into `ACTION rest...`, so each
// action is a subcommand with its own flags and help. A shell's
// completion request (`__complete ARGS... WORD`) is rewritten the same
// way behind its first word, except that the word being completed stays
// last: `-c New` completes to the action NewZone.
func RewriteAction(args []string) []string {
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		rest := args[1:]
		if n := len(rest); n >= 2 && (rest[n-2] == "-c" || rest[n-2] == "--configure") {
			// Completing the action itself: drop -c, keep its prefix last.
			return append(append([]string{args[0]}, rest[:n-2]...), rest[n-1])
		}
		return append([]string{args[0]}, rewriteAction(rest)...)
	}
	return rewriteAction(args)
}

func rewriteAction(args []string) []string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		var action string
		switch {
		case a == "--":
			return args
		case (a == "-c" || a == "--configure") && i+1 < len(args):
			action = args[i+1]
			rest := append(append([]string{}, args[:i]...), args[i+2:]...)
			return append([]string{action}, rest...)
		case strings.HasPrefix(a, "--configure="):
			action = strings.TrimPrefix(a, "--configure=")
		case strings.HasPrefix(a, "-c") && len(a) > 2 && !strings.HasPrefix(a, "--"):
			action = a[2:]
		default:
			continue
		}
		rest := append(append([]string{}, args[:i]...), args[i+1:]...)
		return append([]string{action}, rest...)
	}
	return args
}

// NewRoot builds the zconfigure command tree.
func NewRoot(opts *Options) *cobra.Command {
	root := &cobra.Command{
		Use:     "zconfigure",
		Short:   "Create a zone, run its zone server and configure it",
		Version: version.String(),
		Long: `zconfigure configures zonekit on a Primary Server. Actions run as
'zconfigure -c ACTION [flags]'; 'zconfigure -l' lists them. -D name=value
sets a property in the server's configuration file (conf/zoneserver.conf),
alone or together with an action. -Z answers every question with its
default instead of asking.

The zone's home is --home, else $ZONEKIT_HOME, else /var/opt/zonekit for
root and ~/.local/share/zonekit for other users.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.List {
				return listActions(cmd, opts)
			}
			if len(opts.Properties) > 0 {
				return applyProperties(opts)
			}
			return cmd.Help()
		},
	}
	root.SetVersionTemplate("zconfigure " + version.Long() + "\n")
	pf := root.PersistentFlags()
	pf.StringVar(&opts.Home, "home", "", "zone home directory (or ZONEKIT_HOME)")
	pf.StringArrayVarP(&opts.Properties, "define", "D", nil, "set configuration property `name=value` (repeatable)")
	pf.BoolVarP(&opts.NoPrompt, "no-prompt", "Z", false, "never ask; take defaults and fail on anything required")
	root.Flags().BoolVarP(&opts.List, "list", "l", false, "list the actions and configuration properties")
	// -c is consumed by RewriteAction; declaring it keeps it in the help and
	// gives a clear error for a missing action name.
	root.Flags().StringP("configure", "c", "", "run configuration `ACTION` (see -l)")

	root.AddCommand(newNewZone(opts, nil), newStart(opts, nil), newServe(opts), newSSL(opts, nil),
		newCreatePacks(opts, nil), newRebuildPacks(opts, nil), newJoinZone(opts, nil), newRecoverCluster(opts, nil))
	return root
}

func actionsOf(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, c := range root.Commands() {
		if c.Annotations[actionAnnotation] != "" {
			out = append(out, c)
		}
	}
	return out
}

func listActions(cmd *cobra.Command, opts *Options) error {
	out := opts.IO.Out
	fmt.Fprintln(out, "Actions (zconfigure -c ACTION):")
	var rows [][]string
	for _, a := range actionsOf(cmd.Root()) {
		rows = append(rows, []string{a.Name(), a.Short})
	}
	if err := ui.Table(out, []string{"ACTION", "DESCRIPTION"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nConfiguration properties (zconfigure -D name=value):")
	rows = nil
	for _, p := range config.Properties() {
		rows = append(rows, []string{p.Name, p.Default, p.Help})
	}
	return ui.Table(out, []string{"PROPERTY", "DEFAULT", "DESCRIPTION"}, rows)
}

func applyProperties(opts *Options) error {
	p := opts.Paths()
	if err := p.CheckZone(); err != nil {
		return err
	}
	if err := config.SetProperties(p, opts.Properties); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Updated %s; restart the zone server for the change to take effect.\n", p.ConfigFile())
	return nil
}
