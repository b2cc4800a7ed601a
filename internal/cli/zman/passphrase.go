package zman

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

// passphraseSource is where a backup passphrase comes from. It is never an
// argument: argv is visible to every user of the machine.
type passphraseSource struct {
	File    string
	FD      int
	Command string
	Env     string
}

func (p *passphraseSource) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&p.File, "passphrase-file", "", "read the passphrase from the first line of FILE")
	fs.IntVar(&p.FD, "passphrase-fd", -1, "read the passphrase from file descriptor N")
	fs.StringVar(&p.Command, "passphrase-command", "", "run CMD (with sh -c) and read the passphrase from its output")
	fs.StringVar(&p.Env, "passphrase-env", "", "read the passphrase from environment variable VAR")
}

// read returns the passphrase from the one source given, or asks on a
// terminal (twice when confirm is set, as for a new backup).
func (p *passphraseSource) read(ctx context.Context, io *ui.IOStreams, pr ui.Prompter, confirm bool) ([]byte, error) {
	given := 0
	for _, set := range []bool{p.File != "", p.FD >= 0, p.Command != "", p.Env != ""} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, errkind.New(errkind.Usage, "give the passphrase one way only (--passphrase-file, --passphrase-fd, --passphrase-command or --passphrase-env)")
	}
	switch {
	case p.File != "":
		data, err := os.ReadFile(p.File)
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("read passphrase file: %w", err))
		}
		return firstLine(data), nil
	case p.FD >= 0:
		f := os.NewFile(uintptr(p.FD), "passphrase-fd-"+strconv.Itoa(p.FD))
		if f == nil {
			return nil, errkind.New(errkind.Usage, "--passphrase-fd %d is not open", p.FD)
		}
		defer f.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(f); err != nil {
			return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("read passphrase from fd %d: %w", p.FD, err))
		}
		return firstLine(buf.Bytes()), nil
	case p.Command != "":
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", p.Command)
		cmd.Stderr = io.ErrOut
		out, err := cmd.Output()
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("--passphrase-command failed: %w", err))
		}
		return firstLine(out), nil
	case p.Env != "":
		v, ok := os.LookupEnv(p.Env)
		if !ok {
			return nil, errkind.New(errkind.Usage, "environment variable %s is not set", p.Env)
		}
		return []byte(v), nil
	}
	if !io.CanPrompt() {
		return nil, ui.RequiredError("--passphrase-file, --passphrase-fd, --passphrase-command or --passphrase-env")
	}
	first, err := pr.Password("Backup passphrase (at least 10 characters):")
	if err != nil {
		return nil, err
	}
	if confirm {
		again, err := pr.Password("Again:")
		if err != nil {
			return nil, err
		}
		if first != again {
			return nil, errkind.New(errkind.Usage, "the two passphrases differ")
		}
	}
	return []byte(first), nil
}

func firstLine(data []byte) []byte {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	return []byte(strings.TrimRight(string(line), "\r"))
}
