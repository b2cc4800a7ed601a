// Package version reports the build's version string.
package version

import "runtime/debug"

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
