// Package testenv decides what a test does when an outside tool it needs
// is missing: on a developer's machine it skips, saying what to install;
// in CI (CI=true, which .ci/run sets) it fails, because .ci/run installs
// every such tool and a skip there would hide a lost interop test.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run in CI, where every tool .ci/run
// installs must be present.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing skips t with why, or fails it in CI.
func Missing(t testing.TB, why string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s; CI=true: .ci/run installs it, so this test fails instead of skipping", why)
		return
	}
	t.Skip(why)
}

// Tool returns the path of the program name, or skips t (fails it in CI)
// with hint, such as "apt-get install openssl".
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" is not installed ("+hint+")")
	}
	return p
}
