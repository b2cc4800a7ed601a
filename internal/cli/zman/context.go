package zman

import (
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/credstore"
	"zonekit/internal/errkind"
)

// contextCommands save and pick the ways to reach the zones an
// administrator looks after (kubectl's contexts), so that nobody exports
// ZMAN_* in every shell.
func contextCommands(f *Factory) []*cobra.Command {
	return []*cobra.Command{newContextCreate(f, nil), newContextUse(f, nil), newContextList(f, nil), newContextDelete(f, nil)}
}

type contextOptions struct {
	f    *Factory
	Name string
	Use  bool // context-create --use
	Yes  bool // context-delete
}

func newContextCreate(f *Factory, runF func(*contextOptions) error) *cobra.Command {
	o := &contextOptions{f: f}
	cmd := &cobra.Command{
		Use:     "context-create NAME",
		Aliases: []string{"ctxc"},
		Short:   "Save the server, CA file, administrator and password source given as a context",
		Long: `Save what the global flags and ZMAN_* variables say (--host, --port,
--cacert, -U, --password-file or --password-command) as the context NAME,
replacing one of that name. Later commands use it with --context NAME
(or ZMAN_CONTEXT), or by default after 'zman context-use NAME'; flags and
variables still win over it. A password is never saved, only where to
read it; a credential stored with admin-store-credential for the server is
used as ever. The contexts live in zman-contexts.json in zman's config
directory ($ZMAN_CONFIG_DIR, else zonekit in the user's), mode 0600.`,
		Example: `  zman --host zone1.acme.example --port 8443 --cacert acme-ca.pem -U ops --password-file ~/.acme-pw context-create acme --use
  zman --context lab server-list`,
		Args: cmdutil.ExactArgs(1, "the context NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if runF != nil {
				return runF(o)
			}
			return contextCreateRun(o)
		},
	}
	cmd.Flags().BoolVar(&o.Use, "use", false, "also make it the context in use")
	return cmd
}

func contextCreateRun(o *contextOptions) error {
	v := o.f.settings()
	c := credstore.Context{Host: v.GetString("host"), Port: v.GetInt("port"), User: v.GetString("user"),
		PasswordFile: o.f.Global.PasswordFrom.File, PasswordCommand: o.f.Global.PasswordFrom.Command}
	if c.Host == "" {
		return errkind.New(errkind.Usage, "a context needs a server: give --host (and --port, --cacert)")
	}
	if o.f.Global.PasswordFrom.Env != "" || v.GetString("password") != "" {
		return errkind.New(errkind.Usage, "a context saves where to read the password (--password-file or --password-command), never the password or a variable's name")
	}
	var err error
	if ca := v.GetString("cacert"); ca != "" {
		if c.CACert, err = filepath.Abs(ca); err != nil {
			return err
		}
	}
	if c.PasswordFile != "" {
		if c.PasswordFile, err = filepath.Abs(c.PasswordFile); err != nil {
			return err
		}
	}
	all, err := credstore.LoadContexts(o.f.CredentialDir)
	if err != nil {
		return err
	}
	all.Contexts[o.Name] = c
	if o.Use {
		all.Current = o.Name
	}
	if err := all.Save(); err != nil {
		return err
	}
	return o.f.done(map[string]any{"name": o.Name, "context": c, "current": all.Current == o.Name, "file": all.Path()},
		"Saved context %s in %s.\n", o.Name, all.Path())
}

func newContextUse(f *Factory, runF func(*contextOptions) error) *cobra.Command {
	o := &contextOptions{f: f}
	return &cobra.Command{
		Use:     "context-use NAME",
		Aliases: []string{"ctxu"},
		Short:   "Make a saved context the one commands use by default",
		Args:    cmdutil.ExactArgs(1, "the context NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if runF != nil {
				return runF(o)
			}
			all, err := credstore.LoadContexts(o.f.CredentialDir)
			if err != nil {
				return err
			}
			if _, err := all.Get(o.Name); err != nil {
				return err
			}
			all.Current = o.Name
			if err := all.Save(); err != nil {
				return err
			}
			return o.f.done(map[string]any{"current": o.Name}, "Using context %s.\n", o.Name)
		},
	}
}

func newContextList(f *Factory, runF func(*contextOptions) error) *cobra.Command {
	o := &contextOptions{f: f}
	return &cobra.Command{
		Use:     "context-list",
		Aliases: []string{"ctxl"},
		Short:   "List the saved contexts; * marks the one in use",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			all, err := credstore.LoadContexts(o.f.CredentialDir)
			if err != nil {
				return err
			}
			return o.f.print(all, []string{"CURRENT", "NAME", "SERVER", "CA FILE", "USER", "PASSWORD FROM"}, func() [][]string {
				var rows [][]string
				for _, n := range all.Names() {
					c := all.Contexts[n]
					mark, server, from := "", c.Host, c.PasswordFile
					if n == all.Current {
						mark = "*"
					}
					if c.Port != 0 {
						server += ":" + strconv.Itoa(c.Port)
					}
					if c.PasswordCommand != "" {
						from = "command: " + c.PasswordCommand
					}
					rows = append(rows, []string{mark, n, server, c.CACert, c.User, from})
				}
				return rows
			})
		},
	}
}

func newContextDelete(f *Factory, runF func(*contextOptions) error) *cobra.Command {
	o := &contextOptions{f: f}
	cmd := &cobra.Command{
		Use:     "context-delete NAME",
		Aliases: []string{"ctxd"},
		Short:   "Delete a saved context",
		Args:    cmdutil.ExactArgs(1, "the context NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if runF != nil {
				return runF(o)
			}
			all, err := credstore.LoadContexts(o.f.CredentialDir)
			if err != nil {
				return err
			}
			if _, err := all.Get(o.Name); err != nil {
				return err
			}
			if err := o.f.confirmDelete(o.Yes, "context "+o.Name); err != nil {
				return err
			}
			delete(all.Contexts, o.Name)
			if all.Current == o.Name {
				all.Current = ""
			}
			if err := all.Save(); err != nil {
				return err
			}
			return o.f.done(map[string]any{"deleted": o.Name}, "Deleted context %s.\n", o.Name)
		},
	}
	addYes(cmd, &o.Yes)
	return cmd
}
