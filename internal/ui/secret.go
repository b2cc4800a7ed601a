package ui

import (
	"fmt"
	"os"
	"strings"

	"zonekit/internal/errkind"
)

// ReadSecret takes a secret from a file or a variable, or asks twice on a
// terminal. flagHint names the options for the error without a terminal.
func ReadSecret(io *IOStreams, p Prompter, file, env, prompt, flagHint string) (string, error) {
	switch {
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", errkind.Wrap(errkind.Usage, fmt.Errorf("read password file: %w", err))
		}
		line, _, _ := strings.Cut(string(data), "\n")
		return strings.TrimRight(line, "\r"), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", errkind.New(errkind.Usage, "environment variable %s is not set", env)
		}
		return v, nil
	}
	if !io.CanPrompt() {
		return "", RequiredError(flagHint)
	}
	first, err := p.Password(prompt)
	if err != nil {
		return "", err
	}
	again, err := p.Password("Again:")
	if err != nil {
		return "", err
	}
	if first != again {
		return "", errkind.New(errkind.Usage, "the two passwords differ")
	}
	return first, nil
}
