// Package cmdtest runs one command of a program's tree through its runF
// hook, so that tests check flag and argument parsing without a server.
package cmdtest

import (
	"testing"

	"github.com/spf13/cobra"

	"zonekit/internal/ui"
)

// Parse builds a command with deps and a runF that captures its parsed
// options, runs it on args and returns them.
func Parse[D, O any](t testing.TB, deps D, build func(D, func(*O) error) *cobra.Command, args ...string) *O {
	t.Helper()
	var got *O
	cmd := build(deps, func(o *O) error { got = o; return nil })
	if err := run(cmd, args); err != nil {
		t.Fatalf("%s %q: %v", cmd.Name(), args, err)
	}
	if got == nil {
		t.Fatalf("%s %q: runF not called", cmd.Name(), args)
	}
	return got
}

// Refused runs a command that must refuse args before its runF, and
// returns the error.
func Refused[D, O any](t testing.TB, deps D, build func(D, func(*O) error) *cobra.Command, args ...string) error {
	t.Helper()
	called := false
	cmd := build(deps, func(*O) error { called = true; return nil })
	err := run(cmd, args)
	if err == nil || called {
		t.Fatalf("%s %q: parsed (err %v), want it refused before running", cmd.Name(), args, err)
	}
	return err
}

func run(cmd *cobra.Command, args []string) error {
	io, _, _, _ := ui.Test()
	cmd.SetArgs(args)
	cmd.SetOut(io.Out)
	cmd.SetErr(io.ErrOut)
	return cmd.Execute()
}
