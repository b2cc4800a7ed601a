package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/testenv"
)

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPackaging installs once with 'make install DESTDIR=... PREFIX=/usr'
// (build.sh's flags) and checks the tree: the four programs run, every
// man page reads under man without a warning and 'man zman' finds its
// page, the completions of three shells are there, and the systemd units
// name BINDIR and pass systemd-analyze verify. Then build.sh packages
// that tree as zonekit-server and zonekit-pbserv, whose units are
// hardened and which lintian passes without an error.
func TestPackaging(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the four programs and the Debian packages")
	}
	testenv.Tool(t, "make", "apt-get install make")
	man := testenv.Tool(t, "man", "apt-get install man-db")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	run(t, root, []string{"CGO_ENABLED=0"}, "make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX=/usr",
		"UNITDIR=/lib/systemd/system", "BIN="+filepath.Join(dest, "build"),
		"GOBUILDFLAGS=-trimpath -buildvcs=false -buildmode=pie", "EXTRA_LDFLAGS=-s -w -X zonekit/internal/version.Version=0.1.0-dev")
	os.RemoveAll(filepath.Join(dest, "build"))
	usr := filepath.Join(dest, "usr")

	for _, p := range []string{"zman", "zac", "zconfigure", "pbserv"} {
		exe := filepath.Join(usr, "bin", p)
		if out := run(t, root, nil, exe, "--help"); !strings.Contains(out, p) {
			t.Errorf("%s --help: %s", exe, out)
		}
		for _, f := range []string{"share/bash-completion/completions/" + p, "share/zsh/vendor-completions/_" + p, "share/fish/vendor_completions.d/" + p + ".fish"} {
			if _, err := os.Stat(filepath.Join(usr, f)); err != nil {
				t.Error(err)
			}
		}
	}

	t.Run("man", func(t *testing.T) { checkMan(t, root, man, filepath.Join(usr, "share", "man")) })

	units, _ := filepath.Glob(filepath.Join(dest, "lib", "systemd", "system", "*.service"))
	if len(units) != 6 {
		t.Fatalf("installed units %v; want the zone server's, the agent's and four preboot services'", units)
	}
	for _, u := range units {
		data, _ := os.ReadFile(u)
		if !strings.Contains(string(data), "ExecStart=/usr/bin/") || strings.Contains(string(data), "@BINDIR@") {
			t.Errorf("%s: ExecStart not under /usr/bin:\n%s", u, data)
		}
	}
	verifyUnits(t, dest, units)

	t.Run("deb", func(t *testing.T) { checkDebs(t, root, dest) })
}

// checkMan reads every page of docs/man as installed, in one man run
// (a page at a time takes a minute): no warning, a NAME section each, and
// 'man -w zman' finds the installed page once MANPATH has it, as man-db's
// default path has /usr/share/man and /usr/local/share/man.
func checkMan(t *testing.T, root, man, manDir string) {
	src, _ := filepath.Glob(filepath.Join(root, "docs", "man", "*.1"))
	if len(src) < 50 {
		t.Fatalf("docs/man has %d pages", len(src))
	}
	var pages []string
	for _, s := range src {
		pages = append(pages, filepath.Join(manDir, "man1", filepath.Base(s)))
	}
	cmd := exec.Command(man, append([]string{"-l", "--warnings"}, pages...)...)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "LC_ALL=C.UTF-8", "MANPAGER=cat", "PAGER=cat")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l --warnings on %d pages: %v\n%s", len(pages), err, stderr.String())
	}
	if n := strings.Count(string(out), "\nNAME\n"); n != len(pages) {
		t.Errorf("man showed %d NAME sections for %d pages", n, len(pages))
	}
	if got := strings.TrimSpace(run(t, root, []string{"MANPATH=" + manDir}, man, "-w", "zman")); got != filepath.Join(manDir, "man1", "zman.1") {
		t.Errorf("man -w zman = %q", got)
	}
}

// verifyUnits runs systemd-analyze verify on units installed under dest,
// their /usr/bin programs pointed at dest's copies (verify checks that
// ExecStart's program exists).
func verifyUnits(t *testing.T, dest string, units []string) {
	t.Helper()
	sa := testenv.Tool(t, "systemd-analyze", "apt-get install systemd")
	dir := t.TempDir()
	args := []string{"verify", "--man=no"}
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(u))
		os.WriteFile(p, []byte(strings.ReplaceAll(string(data), "ExecStart=/usr/bin/", "ExecStart="+dest+"/usr/bin/")), 0o644)
		args = append(args, p)
	}
	if out, err := exec.Command(sa, args...).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// checkDebs packages the installed tree with build.sh and checks the two
// packages: their contents, maintainer scripts, hardened units, and
// lintian with no error.
func checkDebs(t *testing.T, root, stage string) {
	testenv.Tool(t, "dpkg-deb", "apt-get install dpkg")
	lintian := testenv.Tool(t, "lintian", "apt-get install lintian")
	out := t.TempDir()
	debs := strings.Fields(run(t, root, []string{"VERSION=0.1.0~dev", "STAGE=" + stage}, "./packaging/deb/build.sh", out))
	if len(debs) != 2 {
		t.Fatalf("build.sh wrote %v", debs)
	}
	contents := map[string]string{}
	for _, deb := range debs {
		name, _, _ := strings.Cut(filepath.Base(deb), "_")
		contents[name] = run(t, root, nil, "dpkg-deb", "--contents", deb)
		x := filepath.Join(out, name)
		run(t, root, nil, "dpkg-deb", "-R", deb, x)
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			run(t, root, nil, "sh", "-n", filepath.Join(x, "DEBIAN", s))
		}
		units, _ := filepath.Glob(filepath.Join(x, "lib", "systemd", "system", "*.service"))
		for _, u := range units {
			data, _ := os.ReadFile(u)
			for _, want := range []string{"User=zonekit\n", "ProtectSystem=strict\n", "ReadWritePaths=", "NoNewPrivileges=yes\n",
				"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "ExecStart=/usr/bin/"} {
				if !strings.Contains(string(data), want) {
					t.Errorf("%s lacks %q", u, strings.TrimSpace(want))
				}
			}
		}
	}
	for pkg, want := range map[string][]string{
		"zonekit-server": {"./usr/bin/zconfigure", "./usr/bin/zman", "./usr/share/man/man1/zman-zone-info.1.gz",
			"./lib/systemd/system/zonekit-server.service", "./usr/share/doc/zonekit-server/copyright"},
		"zonekit-pbserv": {"./usr/bin/pbserv", "./usr/share/man/man1/pbserv.1.gz", "./lib/systemd/system/zonekit-proxydhcp.service",
			"./lib/systemd/system/zonekit-tftp.service", "./usr/share/doc/zonekit-pbserv/changelog.gz"},
	} {
		for _, w := range want {
			if !strings.Contains(contents[pkg], " "+w+"\n") {
				t.Errorf("%s lacks %s", pkg, w)
			}
		}
	}
	// --fail-on error: warnings are shown, an error fails.
	lout, err := exec.Command(lintian, append([]string{"--fail-on", "error", "--display-level", ">=warning"}, debs...)...).CombinedOutput()
	t.Logf("lintian:\n%s", lout)
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, lout)
	}
}
