package zman

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/client"
)

// completionWait bounds the API call behind one completion: a shell must
// not hang on a server that does not answer.
const completionWait = 3 * time.Second

// zoneValues are the kinds of zone objects whose names complete, each
// listed by one API call.
var zoneValues = map[string]func(context.Context, *client.Client) ([]string, error){
	"device": func(ctx context.Context, c *client.Client) ([]string, error) {
		var devs []api.Device
		err := c.Get(ctx, api.Prefix+"/devices", &devs)
		var out []string
		for _, d := range devs {
			out = append(out, d.Name+"\t"+d.ID)
		}
		return out, err
	},
	"package": func(ctx context.Context, c *client.Client) ([]string, error) {
		var pkgs []api.Package
		err := c.Get(ctx, api.Prefix+"/packages", &pkgs)
		var out []string
		for _, p := range pkgs {
			out = append(out, p.ID+"\t"+p.Name)
		}
		return out, err
	},
	"group": func(ctx context.Context, c *client.Client) ([]string, error) {
		var groups []api.Group
		err := c.Get(ctx, api.Prefix+"/groups", &groups)
		var out []string
		for _, g := range groups {
			out = append(out, g.Name+"\t"+g.Description)
		}
		return out, err
	},
	"server": func(ctx context.Context, c *client.Client) ([]string, error) {
		var servers []api.Server
		err := c.Get(ctx, api.Prefix+"/servers", &servers)
		var out []string
		for _, s := range servers {
			out = append(out, s.Name)
		}
		return out, err
	},
	"admin": func(ctx context.Context, c *client.Client) ([]string, error) {
		var admins []api.Admin
		err := c.Get(ctx, api.Prefix+"/admins", &admins)
		var out []string
		for _, a := range admins {
			out = append(out, a.Name)
		}
		return out, err
	},
	// Images: those the zone's preboot work names (restored or taken);
	// the imaging service's own list is pbserv image-list's.
	"image": func(ctx context.Context, c *client.Client) ([]string, error) {
		var works []api.PrebootWork
		err := c.Get(ctx, api.Prefix+"/preboot/work", &works)
		var out []string
		seen := map[string]bool{}
		for _, w := range works {
			if w.Image != "" && !seen[w.Image] {
				seen[w.Image] = true
				out = append(out, w.Image)
			}
		}
		return out, err
	},
	"regkey": func(ctx context.Context, c *client.Client) ([]string, error) {
		var keys []api.RegistrationKey
		err := c.Get(ctx, api.Prefix+"/registration-keys", &keys)
		var out []string
		for _, k := range keys {
			out = append(out, k.Key+"\t"+k.Description)
		}
		return out, err
	},
}

// zoneCompletion completes kind's names from the zone, with the server
// and credentials the command line and environment give (never a
// prompt: a completion has no terminal to ask on). Nothing completes when
// the zone cannot be asked.
func (f *Factory) zoneCompletion(kind string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel := context.WithTimeout(context.Background(), completionWait)
		defer cancel()
		var names []string
		err := f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
			var err error
			names, err = zoneValues[kind](ctx, c)
			return err
		})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) && !contains(args, strings.SplitN(n, "\t", 2)[0]) {
				out = append(out, strings.TrimSuffix(n, "\t"))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// placeholderKind maps an argument's placeholder in a command's Use to
// the zone objects it names; cmd is the command's name.
func placeholderKind(cmd, word string) string {
	switch word {
	case "DEVICE":
		return "device"
	case "GROUP":
		return "group"
	case "SERVER":
		return "server"
	case "ID":
		if strings.HasPrefix(cmd, "package-") {
			return "package"
		}
	case "NAME":
		if cmd == "admin-delete" {
			return "admin"
		}
	case "KEY":
		if cmd == "registration-key-delete" {
			return "regkey"
		}
	case "IMAGE":
		return "image"
	}
	return ""
}

var (
	flagGroups = regexp.MustCompile(`\([^)]*\)|\[[^\]]*--[^\]]*\]`)
	// static values of flags, wherever a command has them
	flagValues = map[string][]cobra.Completion{
		"output": {"table\tfor people", "json\tfor scripts"},
		"os":     {"linux", "windows"},
	}
	flagZone = map[string]string{"group": "group", "device": "device"}
)

// addCompletions gives every command of the tree completions for its
// arguments (from the placeholders of its Use line: DEVICE, GROUP,
// SERVER, package ID...) and for the flags that name zone objects or take
// one of a few values (-o, --os).
func (f *Factory) addCompletions(root *cobra.Command) {
	for name, vals := range flagValues {
		if root.PersistentFlags().Lookup(name) != nil {
			root.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	for _, c := range root.Commands() {
		c := c
		for name, vals := range flagValues {
			if c.LocalNonPersistentFlags().Lookup(name) != nil {
				c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		for name, kind := range flagZone {
			if c.LocalNonPersistentFlags().Lookup(name) != nil {
				c.RegisterFlagCompletionFunc(name, f.zoneCompletion(kind))
			}
		}
		if c.ValidArgsFunction != nil || strings.HasSuffix(c.Name(), "-create") {
			continue
		}
		var kinds []string
		variadic := false
		for _, w := range strings.Fields(flagGroups.ReplaceAllString(c.Use, ""))[1:] {
			if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[-") {
				continue
			}
			variadic = strings.HasSuffix(w, "...") || strings.HasSuffix(w, "...]")
			kinds = append(kinds, placeholderKind(c.Name(), strings.Trim(w, "[].")))
		}
		if len(kinds) == 0 {
			continue
		}
		c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			i := len(args)
			if i >= len(kinds) {
				if !variadic {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				i = len(kinds) - 1
			}
			if kinds[i] == "" {
				return nil, cobra.ShellCompDirectiveDefault // a FILE or a value of its own
			}
			return f.zoneCompletion(kinds[i])(cmd, args, toComplete)
		}
	}
}
