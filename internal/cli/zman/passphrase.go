package zman

import (
	"context"

	"github.com/spf13/pflag"

	"zonekit/internal/ui"
)

// passphraseSource is the --passphrase-* flags of the backup and CA commands.
type passphraseSource struct{ ui.SecretSource }

const passphraseFlags = "--passphrase-file, --passphrase-fd, --passphrase-command or --passphrase-env"

func (p *passphraseSource) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&p.File, "passphrase-file", "", "read the passphrase from the first line of FILE")
	fs.IntVar(&p.FD, "passphrase-fd", -1, "read the passphrase from file descriptor N")
	fs.StringVar(&p.Command, "passphrase-command", "", "run CMD (with sh -c) and read the passphrase from its output")
	fs.StringVar(&p.Env, "passphrase-env", "", "read the passphrase from environment variable VAR")
}

// read returns the passphrase, asking for what (twice when confirm is set,
// as for a new file) on a terminal.
func (p *passphraseSource) read(ctx context.Context, streams *ui.IOStreams, pr ui.Prompter, what string, confirm bool) ([]byte, error) {
	s, err := p.SecretSource.Read(ctx, streams, pr, ui.SecretPrompt{What: "passphrase",
		Prompt: what + " (at least 10 characters):", Confirm: confirm, FlagHint: passphraseFlags})
	return []byte(s), err
}
