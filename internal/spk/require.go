package spk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// errCannotEvaluate marks a requirement that could not be checked at all
// (no dpkg or rpm, an unreadable file): that fails the package whatever
// its else says, because guessing would be worse.
var errCannotEvaluate = errors.New("cannot be evaluated")

// Host is what requirements look at; tests replace parts of it.
type Host struct {
	GOOS      string
	OSRelease string // path of os-release
	MemInfo   string // path of meminfo
	LookupEnv func(string) (string, bool)
	// PackageVersion returns an installed package's version, or ok=false.
	PackageVersion func(ctx context.Context, name string) (version string, ok bool, err error)
	// Vars, when set, are the built-in host variables (tests).
	Vars Values
}

// LocalHost is this machine.
func LocalHost() Host {
	return Host{GOOS: runtime.GOOS, OSRelease: "/etc/os-release", MemInfo: "/proc/meminfo", LookupEnv: os.LookupEnv, PackageVersion: installedVersion}
}

// check evaluates one expanded requirement: nil when it holds, a reason
// when it does not, errCannotEvaluate (wrapped) when it cannot be known.
func (h Host) check(ctx context.Context, r Requirement) error {
	switch {
	case r.OS != nil:
		id, like, version := h.osRelease()
		name := strings.ToLower(r.OS.Name)
		if name != h.GOOS && name != id && !contains(like, name) {
			return fmt.Errorf("needs %s, this is %s (%s)", r.OS.Name, h.GOOS, id)
		}
		if r.OS.Version != "" {
			if version == "" {
				return fmt.Errorf("%w: no VERSION_ID in %s", errCannotEvaluate, h.OSRelease)
			}
			ok, err := satisfies(version, r.OS.Version)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("needs %s %s, this is %s", r.OS.Name, r.OS.Version, version)
			}
		}
	case r.Memory != "":
		want, _ := ParseSize(r.Memory)
		have, err := h.memTotal()
		if err != nil {
			return fmt.Errorf("%w: %v", errCannotEvaluate, err)
		}
		if have < want {
			return fmt.Errorf("needs %s of memory, this machine has %d MiB", r.Memory, have>>20)
		}
	case r.Disk != nil:
		want, _ := ParseSize(r.Disk.Free)
		have, err := freeSpace(r.Disk.Path)
		if err != nil {
			return fmt.Errorf("%w: %v", errCannotEvaluate, err)
		}
		if have < want {
			return fmt.Errorf("needs %s free under %s, %d MiB are", r.Disk.Free, r.Disk.Path, have>>20)
		}
	case r.File != nil:
		_, err := os.Lstat(r.File.Path)
		exists := err == nil
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %v", errCannotEvaluate, err)
		}
		if exists == r.File.Absent {
			if r.File.Absent {
				return fmt.Errorf("%s must not exist", r.File.Path)
			}
			return fmt.Errorf("%s does not exist", r.File.Path)
		}
	case r.Env != nil:
		v, ok := h.LookupEnv(r.Env.Name)
		if !ok {
			return fmt.Errorf("environment variable %s is not set", r.Env.Name)
		}
		if r.Env.Value != nil && v != *r.Env.Value {
			return fmt.Errorf("environment variable %s is %q, not %q", r.Env.Name, v, *r.Env.Value)
		}
	case r.Setting != nil:
		v, ok, err := readSetting(r.Setting.File, r.Setting.Section, r.Setting.Key)
		if err != nil {
			return fmt.Errorf("%w: %v", errCannotEvaluate, err)
		}
		if !ok {
			return fmt.Errorf("%s has no setting %s", r.Setting.File, r.Setting.Key)
		}
		if r.Setting.Value != nil && v != *r.Setting.Value {
			return fmt.Errorf("setting %s in %s is %q, not %q", r.Setting.Key, r.Setting.File, v, *r.Setting.Value)
		}
	case r.Package != nil:
		v, ok, err := h.PackageVersion(ctx, r.Package.Name)
		if err != nil {
			return fmt.Errorf("%w: %v", errCannotEvaluate, err)
		}
		if !ok {
			return fmt.Errorf("package %s is not installed", r.Package.Name)
		}
		if r.Package.Version != "" {
			ok, err := satisfies(v, r.Package.Version)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("needs %s %s, %s is installed", r.Package.Name, r.Package.Version, v)
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (h Host) osRelease() (id string, like []string, version string) {
	f, err := os.Open(h.OSRelease)
	if err != nil {
		return "", nil, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			id = strings.ToLower(v)
		case "ID_LIKE":
			like = strings.Fields(strings.ToLower(v))
		case "VERSION_ID":
			version = v
		}
	}
	return id, like, version
}

func (h Host) memTotal() (uint64, error) {
	f, err := os.Open(h.MemInfo)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no MemTotal in %s", h.MemInfo)
}

// readSetting finds key (in section, if given) in a key=value or ini file.
func readSetting(file, section, key string) (string, bool, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", false, nil
		}
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	cur := ""
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			cur = strings.TrimSpace(t[1 : len(t)-1])
			continue
		}
		if section != "" && !strings.EqualFold(cur, section) {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v), true, nil
		}
	}
	return "", false, sc.Err()
}

// installedVersion asks dpkg, then rpm, for a package's version.
func installedVersion(ctx context.Context, name string) (string, bool, error) {
	if _, err := exec.LookPath("dpkg-query"); err == nil {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", name).Output()
		if err != nil {
			return "", false, nil // not known to dpkg
		}
		f := strings.Fields(string(out))
		if len(f) == 2 && strings.HasPrefix(f[0], "ii") {
			return f[1], true, nil
		}
		return "", false, nil
	}
	if _, err := exec.LookPath("rpm"); err == nil {
		out, err := exec.CommandContext(ctx, "rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name).Output()
		if err != nil {
			return "", false, nil
		}
		return strings.TrimSpace(string(out)), true, nil
	}
	return "", false, errors.New("neither dpkg nor rpm is available to check installed packages")
}
