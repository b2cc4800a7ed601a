// Package version reports the build's version string.
package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Version is set at link time (-ldflags "-X zonekit/internal/version.Version=...");
// otherwise it comes from the module's build information.
var Version = ""

// String returns the version of this build.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.1.0-dev"
}

// Compatible says whether servers running versions a and b may replicate
// one zone store: the same major version and, before 1.0, the same minor
// one (their commands and store layout may differ otherwise). The error
// names both versions.
func Compatible(a, b string) error {
	ka, kb := series(a), series(b)
	if ka == "" || kb == "" || ka != kb {
		return fmt.Errorf("zonekit %s and zonekit %s cannot share a zone store (a zone's servers all run the same release series, %s.x here); upgrade one server at a time within a series, see docs/cluster.md 'Upgrading'", a, b, ka)
	}
	return nil
}

// series is "MAJOR" from 1.0 on, "0.MINOR" before.
func series(v string) string {
	v = strings.TrimPrefix(v, "v")
	major, rest, _ := strings.Cut(v, ".")
	if major == "" {
		return ""
	}
	if major != "0" {
		return major
	}
	minor, _, _ := strings.Cut(rest, ".")
	minor, _, _ = strings.Cut(minor, "-")
	return "0." + minor
}
