package zman

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/credstore"
	"zonekit/internal/errkind"
)

type storeCredentialOptions struct{ f *Factory }

func newStoreCredential(f *Factory, runF func(*storeCredentialOptions) error) *cobra.Command {
	opts := &storeCredentialOptions{f: f}
	return &cobra.Command{
		Use:     "admin-store-credential",
		Aliases: []string{"asc"},
		Short:   "Log in once and store a credential for later zman runs (cron)",
		Long: `Log in with -U/-P (or ZMAN_USER/ZMAN_PASSWORD, or a prompt) and store a
credential for this zone server, so later zman commands (from cron, say)
need no password. What is stored is a token the server issued, not the
password, in a file readable only by you (0600); the file's place is
$ZMAN_CONFIG_DIR or your configuration directory. Revoke it with
admin-clear-credential.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return storeCredentialRun(cmd.Context(), opts)
		},
	}
}

func storeCredentialRun(ctx context.Context, o *storeCredentialOptions) error {
	t, err := o.f.resolve()
	if err != nil {
		return err
	}
	base := t.bases[0]
	auth, _, err := o.f.credentials(base, false)
	if err != nil {
		return err
	}
	c, err := o.f.newClient(t, base, auth)
	if err != nil {
		return err
	}
	defer c.Close()
	var tok api.TokenResponse
	if err := c.Post(ctx, api.Prefix+"/sessions", nil, &tok); err != nil {
		return err
	}
	st := credstore.New(o.f.CredentialDir)
	if err := st.Put(base, credstore.Credential{Admin: tok.Admin, Token: tok.Token}); err != nil {
		return err
	}
	return o.f.done(map[string]any{"admin": tok.Admin, "server": base, "file": st.Path()},
		"Stored a credential for %s on %s in %s.\n", tok.Admin, base, st.Path())
}

type clearCredentialOptions struct{ f *Factory }

func newClearCredential(f *Factory, runF func(*clearCredentialOptions) error) *cobra.Command {
	opts := &clearCredentialOptions{f: f}
	return &cobra.Command{
		Use:     "admin-clear-credential",
		Aliases: []string{"acc"},
		Short:   "Revoke and forget the credential stored for this zone server",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return clearCredentialRun(cmd.Context(), opts)
		},
	}
}

func clearCredentialRun(ctx context.Context, o *clearCredentialOptions) error {
	t, err := o.f.resolve()
	if err != nil {
		return err
	}
	base := t.bases[0]
	st := credstore.New(o.f.CredentialDir)
	cred, ok, err := st.Get(base)
	if err != nil {
		return err
	}
	if !ok {
		return errkind.New(errkind.NotFound, "no credential is stored for %s", base)
	}
	// Revoke first so a copy of the file is useless too; a server that
	// cannot be reached must not keep the user from forgetting locally.
	revoked := true
	if c, err := o.f.newClient(t, base, client.Bearer(cred.Token)); err == nil {
		if err := c.Delete(ctx, api.Prefix+"/sessions/current"); err != nil {
			revoked = false
			fmt.Fprintf(o.f.IO.ErrOut, "zman: warning: could not revoke the credential on the server: %v\n", err)
		}
		c.Close()
	}
	if _, _, err := st.Delete(base); err != nil {
		return err
	}
	res := map[string]any{"admin": cred.Admin, "server": base, "revoked": revoked, "cleared": true}
	if revoked {
		return o.f.done(res, "Revoked and cleared the credential for %s on %s.\n", cred.Admin, base)
	}
	return o.f.done(res, "Cleared the local credential for %s on %s.\n", cred.Admin, base)
}
