// Package failpoint lets tests crash a multi-step operation at a named step,
// the way a power loss or SIGKILL would: no deferred cleanup runs.
//
// A step is armed by listing its name in the ZONEKIT_FAILPOINTS environment
// variable (comma-separated) of the process that runs the operation. Nothing
// is armed in production, where Hit costs one environment lookup.
package failpoint

import (
	"os"
	"strings"
)

// Env is the environment variable that arms failpoints.
const Env = "ZONEKIT_FAILPOINTS"

// Hook is called after each step of an operation with the step's name; a
// non-nil error makes the operation stop at once, as if the process died
// there (tests pass one to simulate crashes without a process).
type Hook func(step string) error

// Armed reports whether step is listed in ZONEKIT_FAILPOINTS.
func Armed(step string) bool {
	v := os.Getenv(Env)
	if v == "" {
		return false
	}
	for _, s := range strings.Split(v, ",") {
		if strings.TrimSpace(s) == step {
			return true
		}
	}
	return false
}

// Crash is the Hook of a real process: at an armed step it kills the
// process on the spot (SIGKILL on Unix), so nothing after it runs.
func Crash(step string) error {
	if Armed(step) {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Kill()
		}
		select {} // the kill is asynchronous; never go on past the step
	}
	return nil
}
