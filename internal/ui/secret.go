package ui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"

	"zonekit/internal/errkind"
)

// SecretSource says where a password or passphrase comes from. It is never
// an argument: argv is visible to every user of the machine.
type SecretSource struct {
	File    string // first line of this file
	FD      int    // this open file descriptor, when >= 0
	Command string // the first line this command (sh -c) prints
	Env     string // this environment variable
}

// SecretPrompt is how to ask when no source is given.
type SecretPrompt struct {
	What     string // "password" or "passphrase", for messages
	Prompt   string
	Confirm  bool   // ask twice, for a new secret
	FlagHint string // the options to name when there is no terminal
}

// Read returns the secret from the one source given, or asks on a terminal.
func (s SecretSource) Read(ctx context.Context, streams *IOStreams, p Prompter, q SecretPrompt) (string, error) {
	if q.What == "" {
		q.What = "secret"
	}
	given := 0
	for _, set := range []bool{s.File != "", s.FD >= 0, s.Command != "", s.Env != ""} {
		if set {
			given++
		}
	}
	if given > 1 {
		return "", errkind.New(errkind.Usage, "give the %s one way only (%s)", q.What, q.FlagHint)
	}
	switch {
	case s.File != "":
		data, err := os.ReadFile(s.File)
		if err != nil {
			return "", errkind.Wrap(errkind.Usage, fmt.Errorf("read %s file: %w", q.What, err))
		}
		return firstLine(data), nil
	case s.FD >= 0:
		f := os.NewFile(uintptr(s.FD), fmt.Sprintf("fd-%d", s.FD))
		if f == nil {
			return "", errkind.New(errkind.Usage, "file descriptor %d is not open", s.FD)
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			return "", errkind.Wrap(errkind.Usage, fmt.Errorf("read %s from fd %d: %w", q.What, s.FD, err))
		}
		return firstLine(data), nil
	case s.Command != "":
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Command)
		cmd.Stderr = streams.ErrOut
		out, err := cmd.Output()
		if err != nil {
			return "", errkind.Wrap(errkind.Usage, fmt.Errorf("%s command failed: %w", q.What, err))
		}
		return firstLine(out), nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", errkind.New(errkind.Usage, "environment variable %s is not set", s.Env)
		}
		return v, nil
	}
	if !streams.CanPrompt() {
		return "", RequiredError(q.FlagHint)
	}
	first, err := p.Password(q.Prompt)
	if err != nil {
		return "", err
	}
	if q.Confirm {
		again, err := p.Password("Again:")
		if err != nil {
			return "", err
		}
		if first != again {
			return "", errkind.New(errkind.Usage, "the two entries differ")
		}
	}
	return first, nil
}

// ReadSecret takes a new secret from a file or a variable, or asks twice on
// a terminal. flagHint names the options for the error without a terminal.
func ReadSecret(streams *IOStreams, p Prompter, file, env, prompt, flagHint string) (string, error) {
	return SecretSource{File: file, FD: -1, Env: env}.Read(context.Background(), streams, p,
		SecretPrompt{What: "password", Prompt: prompt, Confirm: true, FlagHint: flagHint})
}

func firstLine(data []byte) string {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	return string(bytes.TrimRight(line, "\r"))
}
