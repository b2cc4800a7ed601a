package zman

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/ui"
)

type adminCreateOptions struct {
	f            *Factory
	Name         string
	PasswordFile string
	PasswordEnv  string
}

func newAdminCreate(f *Factory, runF func(*adminCreateOptions) error) *cobra.Command {
	opts := &adminCreateOptions{f: f}
	cmd := &cobra.Command{
		Use:     "admin-create NAME",
		Aliases: []string{"ac"},
		Short:   "Create a zone administrator",
		Long: `Create a zone administrator. The new administrator's password is read from
--new-password-file, from the variable named by --new-password-env, or asked
for twice on a terminal; it never goes on the command line.`,
		Args: cmdutil.ExactArgs(1, "the new administrator's NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return adminCreateRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.PasswordFile, "new-password-file", "", "read the new password from the first line of FILE")
	cmd.Flags().StringVar(&opts.PasswordEnv, "new-password-env", "", "read the new password from environment variable VAR")
	return cmd
}

func adminCreateRun(ctx context.Context, o *adminCreateOptions) error {
	pw, err := ui.ReadSecret(o.f.IO, o.f.Prompter, o.PasswordFile, o.PasswordEnv, "Password for "+o.Name+":", "--new-password-file or --new-password-env")
	if err != nil {
		return err
	}
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var a api.Admin
		if err := c.Post(ctx, api.Prefix+"/admins", api.AdminCreate{Name: o.Name, Password: pw}, &a); err != nil {
			return err
		}
		return o.f.done(a, "Created administrator %s.\n", a.Name)
	})
}

type adminListOptions struct{ f *Factory }

func newAdminList(f *Factory, runF func(*adminListOptions) error) *cobra.Command {
	opts := &adminListOptions{f: f}
	return &cobra.Command{
		Use:     "admin-list",
		Aliases: []string{"al"},
		Short:   "List zone administrators",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return adminListRun(cmd.Context(), opts)
		},
	}
}

func adminListRun(ctx context.Context, o *adminListOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var admins []api.Admin
		if err := c.Get(ctx, api.Prefix+"/admins", &admins); err != nil {
			return err
		}
		return o.f.print(admins, []string{"NAME", "CREATED", "CREATED BY"}, func() [][]string {
			rows := make([][]string, 0, len(admins))
			for _, a := range admins {
				rows = append(rows, []string{a.Name, ui.Date(a.Created), a.CreatedBy})
			}
			return rows
		})
	})
}

type adminDeleteOptions struct {
	f     *Factory
	Names []string
	Yes   bool
}

func newAdminDelete(f *Factory, runF func(*adminDeleteOptions) error) *cobra.Command {
	opts := &adminDeleteOptions{f: f}
	cmd := &cobra.Command{
		Use:     "admin-delete NAME...",
		Aliases: []string{"ad"},
		Short:   "Delete zone administrators (never the last one)",
		Args:    cmdutil.MinimumArgs(1, "one or more administrator NAMEs"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			if runF != nil {
				return runF(opts)
			}
			return deleteEach(cmd.Context(), opts.f, "/admins/", "administrator", opts.Names, opts.Yes)
		},
	}
	addYes(cmd, &opts.Yes)
	return cmd
}

// deleteEach deletes named objects one by one, stopping at the first
// failure, once confirmed (see confirmDelete).
func deleteEach(ctx context.Context, f *Factory, path, what string, names []string, yes bool) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if err := f.confirmDelete(yes, what+" "+strings.Join(names, ", ")); err != nil {
		return err
	}
	deleted := []string{}
	err = f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		for _, n := range names {
			if err := c.Delete(ctx, api.Prefix+path+url.PathEscape(n)); err != nil {
				return err
			}
			deleted = append(deleted, n)
			if format != ui.FormatJSON {
				fmt.Fprintf(f.IO.Out, "Deleted %s %s.\n", what, n)
			}
		}
		return nil
	})
	if format == ui.FormatJSON {
		// Also after a failure: the script learns what is gone.
		if jerr := ui.JSON(f.IO.Out, map[string]any{"deleted": deleted, "kind": what}); err == nil {
			err = jerr
		}
	}
	return err
}
