// Package cli_test checks the command trees of all four programs at once:
// what the man pages and completions are generated from must be complete
// and unambiguous.
package cli_test

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/cli/pbserv"
	"zonekit/internal/cli/zac"
	"zonekit/internal/cli/zconfigure"
	"zonekit/internal/cli/zman"
	"zonekit/internal/ui"
)

// programs build each command tree on test streams, prepared as Main
// prepares it (EXIT STATUS sections, usage errors).
var programs = []struct {
	name string
	root func(*ui.IOStreams) *cobra.Command
}{
	{"zman", func(io *ui.IOStreams) *cobra.Command { return zman.NewRoot(zman.NewFactory(io)) }},
	{"zac", func(io *ui.IOStreams) *cobra.Command { return zac.NewRoot(&zac.Options{IO: io}) }},
	{"zconfigure", func(io *ui.IOStreams) *cobra.Command { return zconfigure.NewRoot(&zconfigure.Options{IO: io}) }},
	{"pbserv", func(io *ui.IOStreams) *cobra.Command { return pbserv.NewRoot(io) }},
}

func prepared(build func(*ui.IOStreams) *cobra.Command) (*cobra.Command, *ui.IOStreams) {
	io, _, _, _ := ui.Test()
	root := build(io)
	cmdutil.Prepare(root, io)
	return root, io
}

// walk calls fn for every command of the tree, root first.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// path is the command's arguments below the root: "zman admin-create" -> ["admin-create"].
func path(c *cobra.Command) []string {
	return strings.Fields(c.CommandPath())[1:]
}

func TestCommandTrees(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			root, _ := prepared(p.root)
			if root.Name() != p.name {
				t.Errorf("root is named %q", root.Name())
			}
			n := 0
			walk(root, func(c *cobra.Command) {
				n++
				name := c.CommandPath()
				if c.Short == "" {
					t.Errorf("%s has no Short description", name)
				}
				if c.Runnable() && !strings.Contains(c.Long, "EXIT STATUS") {
					t.Errorf("%s: Long help has no EXIT STATUS section", name)
				}
				checkShorthands(t, c)
				checkAliases(t, c)
			})
			if n == 0 {
				t.Fatal("empty command tree")
			}
		})
	}
}

// TestHelp runs `CMD --help` for every command of every program, each on a
// fresh tree, as a user would.
func TestHelp(t *testing.T) {
	for _, p := range programs {
		root, _ := prepared(p.root)
		walk(root, func(c *cobra.Command) {
			if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
				return
			}
			args := append(path(c), "--help")
			t.Run(p.name+" "+strings.Join(args, " "), func(t *testing.T) {
				fresh, io := prepared(p.root)
				_, out, errOut, _ := ui.Test()
				io.Out, io.ErrOut = out, errOut
				fresh.SetOut(out)
				fresh.SetErr(errOut)
				fresh.SetArgs(args)
				if err := fresh.Execute(); err != nil {
					t.Fatalf("%s %s: %v", p.name, strings.Join(args, " "), err)
				}
				help := out.String()
				if !strings.Contains(help, "Usage:") || !strings.Contains(help, c.Short) && !strings.Contains(help, firstLine(c.Long)) {
					t.Errorf("help of %s does not look like help:\n%s", c.CommandPath(), help)
				}
				if c.Runnable() && !strings.Contains(help, "EXIT STATUS") {
					t.Errorf("help of %s has no EXIT STATUS section", c.CommandPath())
				}
				if errOut.Len() > 0 {
					t.Errorf("help wrote to stderr: %s", errOut)
				}
			})
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// checkShorthands refuses a shorthand used by two different flags of the
// same command, counting inherited flags and cobra's own -h and -v.
func checkShorthands(t *testing.T, c *cobra.Command) {
	t.Helper()
	c.InitDefaultHelpFlag()
	if c == c.Root() {
		c.InitDefaultVersionFlag()
	}
	seen := map[string]string{}
	check := func(f *pflag.Flag) {
		if f.Shorthand == "" {
			return
		}
		if other, ok := seen[f.Shorthand]; ok && other != f.Name {
			t.Errorf("%s: -%s is both --%s and --%s", c.CommandPath(), f.Shorthand, other, f.Name)
		}
		seen[f.Shorthand] = f.Name
	}
	c.LocalFlags().VisitAll(check)
	c.InheritedFlags().VisitAll(check)
	// Persistent flags of ancestors that a subcommand shadows by name.
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if inh := c.InheritedFlags().Lookup(f.Name); inh != nil && inh != f && inh.Shorthand != f.Shorthand {
			t.Errorf("%s: --%s shadows an inherited flag with another shorthand", c.CommandPath(), f.Name)
		}
	})
}

// checkAliases refuses two children of c answering to the same name,
// including the help and completion commands cobra adds at run time.
func checkAliases(t *testing.T, c *cobra.Command) {
	t.Helper()
	owner := map[string]string{}
	if c == c.Root() {
		owner["help"], owner["completion"] = "help", "completion"
	}
	for _, sub := range c.Commands() {
		for _, n := range append([]string{sub.Name()}, sub.Aliases...) {
			if other, ok := owner[n]; ok && other != sub.Name() {
				t.Errorf("%s: %q names both %s and %s", c.CommandPath(), n, other, sub.Name())
			}
			owner[n] = sub.Name()
		}
	}
}

// TestAdminLoginFlags: every command that logs in as a zone administrator
// takes the password the same ways, in every program.
func TestAdminLoginFlags(t *testing.T) {
	login := map[string]string{
		"zman zone-info":        "",
		"zac retrust":           "",
		"pbserv image-list":     "",
		"pbserv image-upload":   "",
		"pbserv image-download": "",
		"zconfigure NewZone":    "admin-",
		"zconfigure JoinZone":   "admin-",
	}
	for _, p := range programs {
		root, _ := prepared(p.root)
		walk(root, func(c *cobra.Command) {
			prefix, ok := login[c.CommandPath()]
			if !ok {
				return
			}
			delete(login, c.CommandPath())
			for _, k := range []string{"file", "env", "command"} {
				if c.Flag(prefix+"password-"+k) == nil {
					t.Errorf("%s has no --%spassword-%s", c.CommandPath(), prefix, k)
				}
			}
		})
	}
	for c := range login {
		t.Errorf("no command %s", c)
	}
}

// TestFlagsConsistent: a long flag name has the same shorthand in every
// command of every program (-v is --version, -V --verbose, everywhere).
func TestFlagsConsistent(t *testing.T) {
	short := map[string]string{} // flag name -> shorthand
	where := map[string]string{}
	for _, p := range programs {
		root, _ := prepared(p.root)
		root.InitDefaultVersionFlag()
		walk(root, func(c *cobra.Command) {
			c.InitDefaultHelpFlag()
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden {
					return
				}
				if s, ok := short[f.Name]; ok && s != f.Shorthand && s != "" && f.Shorthand != "" {
					t.Errorf("--%s is -%s in %s but -%s in %s", f.Name, s, where[f.Name], f.Shorthand, c.CommandPath())
				}
				if f.Shorthand != "" {
					short[f.Name], where[f.Name] = f.Shorthand, c.CommandPath()
				}
			})
		})
	}
	if short["version"] != "v" || short["verbose"] != "V" {
		t.Errorf("--version is -%s and --verbose -%s; want -v and -V", short["version"], short["verbose"])
	}
}
