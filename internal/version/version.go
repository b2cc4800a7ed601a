// Package version reports the build's version string.
package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Version, Commit and BuildDate are set at link time (-ldflags "-X
// zonekit/internal/version.BuildDate=..." and so on, as the Makefile
// does); otherwise they come from the build information Go records (the
// module version, vcs.revision, vcs.time).
var (
	Version   = ""
	Commit    = ""
	BuildDate = ""
)

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

// Long is what --version prints after the program's name: the version,
// the commit (marked "modified" when built from a changed tree) and the
// build date, or the commit's date when the build date was not recorded.
func Long() string {
	commit, date, modified := Commit, BuildDate, false
	dateWhat := "built"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if commit == "" {
					commit = s.Value
				}
			case "vcs.time":
				if date == "" {
					date, dateWhat = s.Value, "committed"
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown"
	}
	if modified {
		commit += ", modified"
	}
	out := String() + " (commit " + commit
	if date != "" {
		out += ", " + dateWhat + " " + date
	}
	return out + ")"
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
