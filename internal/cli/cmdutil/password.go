package cmdutil

import (
	"context"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"zonekit/internal/ui"
)

// PasswordFlags are how every program takes an administrator's password
// for a login: a file, a variable, a command's output, or a prompt on a
// terminal (as the passphrase flags are), never an argument of a child
// process. Prefix is "" (--password-file) or "admin-" (zconfigure's
// --admin-password-file, beside its other secrets).
type PasswordFlags struct {
	File    string
	Env     string
	Command string
	prefix  string
}

// AddFlags registers --PREFIXpassword-file, -env and -command.
func (p *PasswordFlags) AddFlags(fs *pflag.FlagSet, prefix string) {
	p.prefix = prefix
	fs.StringVar(&p.File, prefix+"password-file", "", "read the administrator password from the first line of FILE")
	fs.StringVar(&p.Env, prefix+"password-env", "", "read the administrator password from environment variable VAR")
	fs.StringVar(&p.Command, prefix+"password-command", "", "run CMD (with sh -c) and read the administrator password from the first line of its output")
}

// Given reports whether one of the flags names a source.
func (p *PasswordFlags) Given() bool { return p.File != "" || p.Env != "" || p.Command != "" }

// Names lists the flags and then more, for messages:
// "--password-file, --password-env or --password-command".
func (p *PasswordFlags) Names(more ...string) string {
	n := append([]string{"--" + p.prefix + "password-file", "--" + p.prefix + "password-env", "--" + p.prefix + "password-command"}, more...)
	return strings.Join(n[:len(n)-1], ", ") + " or " + n[len(n)-1]
}

// Read returns the password from the source given (at most one), else
// from the variable fallbackEnv when it is set, else asks on a terminal
// (twice when confirm is set, for a new password). Without a terminal
// the error names hint.
func (p *PasswordFlags) Read(ctx context.Context, streams *ui.IOStreams, pr ui.Prompter, prompt, fallbackEnv, hint string, confirm bool) (string, error) {
	src := ui.SecretSource{File: p.File, FD: -1, Env: p.Env, Command: p.Command}
	if !p.Given() && fallbackEnv != "" {
		if v, ok := os.LookupEnv(fallbackEnv); ok && v != "" {
			src.Env = fallbackEnv
		}
	}
	if hint == "" {
		hint = p.Names()
	}
	return src.Read(ctx, streams, pr, ui.SecretPrompt{What: "password", Prompt: prompt, Confirm: confirm, FlagHint: hint})
}
