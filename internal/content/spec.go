// Package content builds and keeps deployable packages in a zone server's
// content repository, in the layout OCS Inventory NG agents read: for a
// package with numeric ID, <ID>/info (an XML description with the MD5 of
// the whole archive) and the archive cut into fragments <ID>/<ID>-1..N,
// plus <ID>/manifest.json with the SHA-256 of the archive and of every
// fragment for zonekit's own agents. docs/content-repo.md has the details.
//
// Building streams: memory does not grow with the size of the archive, and
// a failed build leaves nothing in the repository.
package content

import (
	"fmt"
	"path"
	"strings"

	"zonekit/internal/errkind"
)

// Actions a package can take on the device.
const (
	ActionLaunch  = "launch"  // run an executable of the archive, report its exit code
	ActionExecute = "execute" // run a command line in the extracted directory
	ActionStore   = "store"   // extract the archive into a path
	// ActionCPK runs a compiled server software package (a signed .cpk,
	// docs/spk.md) with zac's SPK processor. OCS agents cannot run it.
	ActionCPK = "cpk"
)

// Target operating systems.
const (
	OSLinux   = "linux"
	OSWindows = "windows"
)

// Limits on a package's description.
const (
	MaxPriority     = 10
	DefaultPriority = 5
	MaxFragmentSize = 1 << 30
	// MaxFragments bounds a package's fragments: each is a file on every
	// server and device and a request per device, and agents keep the
	// list in memory (10 GiB at the default fragment size).
	MaxFragments    = 10000
	DefaultFragment = 1 << 20
	maxText         = 4096
)

// Spec describes a package to build: everything an administrator chooses.
type Spec struct {
	Name           string `json:"name"`
	OS             string `json:"os"`
	Priority       int    `json:"priority"`
	Action         string `json:"action"`
	Command        string `json:"command,omitempty"`
	Path           string `json:"path,omitempty"`
	NotifyUser     bool   `json:"notify_user,omitempty"`
	NotifyText     string `json:"notify_text,omitempty"`
	NotifyCount    int    `json:"notify_countdown,omitempty"`
	NotifyCanAbort bool   `json:"notify_can_abort,omitempty"`
	NotifyCanDelay bool   `json:"notify_can_delay,omitempty"`
	NeedDoneAction bool   `json:"need_done_action,omitempty"`
	DoneActionText string `json:"need_done_action_text,omitempty"`
	FragmentSize   int64  `json:"fragment_size"`
}

// Normalize lower-cases the enumerations so that LAUNCH and launch agree.
func (s *Spec) Normalize() {
	s.OS = strings.ToLower(strings.TrimSpace(s.OS))
	s.Action = strings.ToLower(strings.TrimSpace(s.Action))
	s.Name = strings.TrimSpace(s.Name)
	s.Command = strings.TrimSpace(s.Command)
	s.Path = strings.TrimSpace(s.Path)
}

// NeedsArchive reports whether the action needs files to work on.
func (s Spec) NeedsArchive() bool { return s.Action != ActionExecute }

// ArchiveFormat is the format a directory is packed in for s's target:
// tar.gz for Linux (the Unix agent extracts with tar), zip for Windows.
func (s Spec) ArchiveFormat() string {
	if s.OS == OSWindows {
		return FormatZip
	}
	return FormatTarGz
}

// Validate checks everything that can be checked without the archive; the
// errors are usage errors naming the flag an administrator sets.
func (s Spec) Validate() error {
	bad := func(format string, args ...any) error { return errkind.New(errkind.Usage, format, args...) }
	switch {
	case s.Name == "":
		return bad("a package needs a name")
	case len(s.Name) > 255 || strings.ContainsAny(s.Name, "\x00\r\n"):
		return bad("package name %.40q is too long or holds control characters", s.Name)
	case s.OS != OSLinux && s.OS != OSWindows:
		return bad("--os %q: want linux or windows", s.OS)
	case s.Priority < 0 || s.Priority > MaxPriority:
		return bad("--priority %d is out of range: want 0 (absolute) to 10", s.Priority)
	case s.FragmentSize <= 0:
		return bad("--fragment-size must be more than zero bytes")
	case s.FragmentSize > MaxFragmentSize:
		return bad("--fragment-size %d is larger than 1 GiB", s.FragmentSize)
	case s.NotifyCount < 0:
		return bad("--notify-countdown %d must not be negative", s.NotifyCount)
	case len(s.NotifyText) > maxText || len(s.DoneActionText) > maxText || len(s.Command) > maxText || len(s.Path) > maxText:
		return bad("texts, commands and paths are limited to %d bytes", maxText)
	}
	switch s.Action {
	case ActionLaunch:
		if s.Command == "" {
			return bad("action launch needs --command: the executable inside the package, without path")
		}
		exe := LaunchFile(s.Command)
		if strings.ContainsAny(exe, `/\`) {
			return bad("--command %q: launch runs a file of the package, give its name without path", s.Command)
		}
		// The Unix agent cuts the file name at the first hyphen.
		if s.OS == OSLinux && strings.Contains(exe, "-") {
			return bad("--command %q: Linux agents cut the launched file's name at a hyphen; rename the file or use --action execute", s.Command)
		}
	case ActionExecute:
		if s.Command == "" {
			return bad("action execute needs --command: the command line to run")
		}
	case ActionStore:
		if s.Path == "" {
			return bad("action store needs --path: where the files go on the device")
		}
		if s.Command != "" {
			return bad("action store takes --path, not --command")
		}
		if !StorePathOK(s.Path, s.OS) {
			return bad("--path %q is not absolute: agents refuse a relative store path (start it with / on Linux, C:\\ on Windows, or an environment variable)", s.Path)
		}
	case ActionCPK:
		if s.Command != "" || s.Path != "" {
			return bad("action cpk takes neither --command nor --path: the CPK says what it does")
		}
	default:
		return bad("--action %q: want launch, execute, store or cpk", s.Action)
	}
	if s.Action != ActionStore && s.Path != "" {
		return bad("--path is for action store only")
	}
	return nil
}

// OSFamily names the family of an operating system as a device reports it
// (zac: runtime.GOOS; the OCS agent: "Debian GNU/Linux 12", "Microsoft
// Windows 11 Pro"): linux, windows, darwin, or "" when it cannot tell.
func OSFamily(os string) string {
	l := strings.ToLower(os)
	switch {
	case strings.Contains(l, "windows"):
		return OSWindows
	case strings.Contains(l, "darwin") || strings.Contains(l, "mac"):
		return "darwin"
	case strings.Contains(l, "linux") || strings.Contains(l, "debian") || strings.Contains(l, "ubuntu") ||
		strings.Contains(l, "red hat") || strings.Contains(l, "suse") || strings.Contains(l, "centos") || strings.Contains(l, "fedora"):
		return OSLinux
	}
	return ""
}

// RunsOn says whether a package built for pkgOS can deploy on a device
// reporting deviceOS: the same family, or a device that does not say.
// A Linux package runs on macOS agents too (the same shell, tar.gz).
func RunsOn(pkgOS, deviceOS string) bool {
	switch f := OSFamily(deviceOS); f {
	case "":
		return true
	case "darwin":
		return pkgOS == OSLinux
	default:
		return f == pkgOS
	}
}

// StorePathOK says whether a store path is absolute for the package's OS,
// before the agent expands environment variables: a path that starts
// with one ($VAR, ${VAR}, %VAR%) is taken as it will be absolute there.
// zac refuses a path that is not absolute once expanded (ERR_BAD_PARAM).
func StorePathOK(p, os string) bool {
	switch {
	case strings.HasPrefix(p, "$") || strings.HasPrefix(p, "%"):
		return true
	case os == OSWindows:
		return (len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')) || strings.HasPrefix(p, `\\`)
	}
	return strings.HasPrefix(p, "/")
}

// LaunchFile is the file a launch command runs: its first word.
func LaunchFile(command string) string {
	exe, _, _ := strings.Cut(strings.TrimSpace(command), " ")
	return exe
}

// topLevel reports the name of an archive member when it sits at the top
// of the archive ("./setup.sh" and "setup.sh" both give "setup.sh").
func topLevel(name string) (string, bool) {
	name = strings.ReplaceAll(name, `\`, "/")
	clean := path.Clean("/" + name)[1:]
	if clean == "" || strings.Contains(clean, "/") {
		return "", false
	}
	return clean, true
}

func invalid(format string, args ...any) error {
	return errkind.Wrap(errkind.Invalid, fmt.Errorf(format, args...))
}
