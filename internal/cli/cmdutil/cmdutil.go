// Package cmdutil holds what the four command trees share: running a root
// command and turning its error into one line and an exit status, argument
// checks that fail as usage errors, and the EXIT STATUS help section.
package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

// Grace is how long a command has, after the first SIGINT or SIGTERM, to
// end on its own (its context is cancelled, so deferred cleanup runs)
// before Run gives up on it and returns 130 anyway: a read blocked on a
// FIFO or a CPU loop that does not look at its context still ends within
// two seconds, with a second to spare for a loaded machine to end the
// process. The work that matters on disk is written atomically, so an end
// at that point loses nothing that was committed.
const Grace = time.Second

// OwnShutdown is the annotation of the daemons (zconfigure serve, zac
// agent, pbserv SERVICE run): they shut down on the first signal within
// their own configured bound, and Run waits for them instead of giving up
// after Grace. A second signal still ends them at once.
const OwnShutdown = "zonekit/own-shutdown"

// Run executes root with args and returns the exit status. It is the one
// place that prints the final error. The first SIGINT or SIGTERM cancels
// the command's context and restores the default handlers, so that a
// second one ends the process at once; a command that has not ended
// Grace after the first is abandoned with status 130.
func Run(root *cobra.Command, io *ui.IOStreams, args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	restoreTerm := saveTerminal(io)
	code := make(chan int, 1)
	go func() { code <- Execute(ctx, root, io, args) }()
	select {
	case c := <-code:
		return c
	case <-sigs:
	}
	signal.Stop(sigs) // the default handlers again: a second signal ends the process
	cancel()
	if c, _, err := root.Find(args); err == nil && c != nil && c.Annotations[OwnShutdown] != "" {
		return <-code
	}
	select {
	case c := <-code:
		return c
	case <-time.After(Grace):
		restoreTerm()
		fmt.Fprintf(io.ErrOut, "%s: interrupted\n", root.Name())
		return errkind.ExitCode(errkind.New(errkind.Cancelled, "interrupted"))
	}
}

// saveTerminal returns what puts a terminal on stdin back as it was: a
// command abandoned in a prompt may have left it in raw mode.
func saveTerminal(io *ui.IOStreams) func() {
	f, ok := io.In.(*os.File)
	if !ok || !io.InTTY {
		return func() {}
	}
	st, err := term.GetState(int(f.Fd()))
	if err != nil {
		return func() {}
	}
	return func() { term.Restore(int(f.Fd()), st) }
}

// Execute runs root with args under ctx and returns the exit status,
// printing the error (and, for a usage error, where to read the usage).
// Run adds the signal handling; tests call Execute.
func Execute(ctx context.Context, root *cobra.Command, io *ui.IOStreams, args []string) int {
	Prepare(root, io)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	err = classify(err)
	if ctx.Err() != nil && errkind.Of(err) == errkind.Failure {
		err = errkind.Wrap(errkind.Cancelled, err)
	}
	fmt.Fprintf(io.ErrOut, "%s: %s\n", root.Name(), oneLine(err.Error()))
	if errkind.Of(err) == errkind.Usage {
		fmt.Fprintf(io.ErrOut, "Run '%s --help' for usage.\n", commandPath(root, args))
	}
	return errkind.ExitCode(err)
}

// Prepare wires streams and error handling into a command tree; tests
// call it too.
func Prepare(root *cobra.Command, io *ui.IOStreams) {
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return errkind.Wrap(errkind.Usage, err)
	})
	AddExitStatus(root)
}

func commandPath(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == nil {
		return root.Name()
	}
	return c.CommandPath()
}

// classify marks cobra's own argument errors as usage errors.
func classify(err error) error {
	var k *errkind.Error
	if errors.As(err, &k) {
		return err
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return errkind.Wrap(errkind.Usage, err)
		}
	}
	return err
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// ExactArgs requires exactly n arguments, named in the error.
func ExactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return errkind.New(errkind.Usage, "%s takes %s (got %d arguments)", cmd.Name(), names, len(args))
		}
		return nil
	}
}

// MinimumArgs requires at least n arguments.
func MinimumArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return errkind.New(errkind.Usage, "%s takes %s", cmd.Name(), names)
		}
		return nil
	}
}

// NoArgs refuses arguments. On a command with subcommands an argument is
// a mistyped subcommand, and the error says so and suggests the nearest.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		hint := ""
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's own default
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			hint = fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
		}
		return errkind.New(errkind.Usage, "unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)
	}
	return errkind.New(errkind.Usage, "%s takes no arguments (got %q)", cmd.Name(), args[0])
}

const exitMarker = "\n\nEXIT STATUS\n"

// AddExitStatus appends the EXIT STATUS section to every command's long
// help, so --help and the man pages carry it.
func AddExitStatus(c *cobra.Command) {
	if !strings.Contains(c.Long, exitMarker) && c.Runnable() {
		long := c.Long
		if long == "" {
			long = c.Short
		}
		c.Long = long + "\n\n" + errkind.ExitStatusHelp
	}
	for _, sub := range c.Commands() {
		AddExitStatus(sub)
	}
}

// FlagOrEnv reads a setting as settings.Bind does, without viper, for
// zac (every zac process would pay viper's dependencies' package
// initialisation): the flag name's value when given on the command line,
// else $env when not empty, else the flag's default.
func FlagOrEnv(flags *pflag.FlagSet, name, env string) string {
	f := flags.Lookup(name)
	if f != nil && f.Changed {
		return f.Value.String()
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	if f != nil {
		return f.DefValue
	}
	return ""
}

// VerboseFlag registers --verbose/-V, spelled the same in every program
// (-v is --version at the top level). -v, which zac's refresh, agent and
// satellite-serve took for --verbose, still works there with a notice.
func VerboseFlag(fs *pflag.FlagSet, p *bool, usage string) {
	fs.BoolVarP(p, "verbose", "V", false, usage)
	fs.BoolVarP(p, "verbose-v", "v", false, usage)
	fs.MarkHidden("verbose-v")
	fs.MarkShorthandDeprecated("verbose-v", "use -V (or --verbose); -v is --version at the top level")
}
