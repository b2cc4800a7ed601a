package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// zac runs on every managed device, often as a short process (register,
// refresh): it links none of the zone server's packages, whose size and
// package initialisation every zac process would pay, nor the Prometheus
// client library (its init registers collectors and compiles regexps,
// about a tenth of a registration's CPU; the satellite's metrics are
// internal/observe's), nor viper (its dependencies' init: dotenv, cast's
// html/template, x/text; zac reads its settings with cmdutil.FlagOrEnv).
func TestNoServerPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"zonekit/internal/server", "zonekit/internal/store", "zonekit/internal/zone",
			"zonekit/internal/replica", "zonekit/internal/backup", "zonekit/internal/restore", "github.com/hashicorp/raft",
			"github.com/prometheus", "google.golang.org/protobuf", "github.com/spf13/viper"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("zac links %s", dep)
			}
		}
	}
}

// What zac's package initialisation allocates: every zac process pays it
// before main, in page faults as much as in CPU. tablewriter v1.1 made
// 660 KB of it (an 8,192-entry width cache), hence v1.0.9 in go.mod.
func TestInitAllocation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds zac")
	}
	bin := t.TempDir() + "/zac"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zac --version: %v\n%s", err, out)
	}
	// "init PKG @T ms, C ms clock, B bytes, A allocs"
	total, heaviest, heaviestPkg := 0, 0, ""
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		b, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", line, err)
		}
		total += b
		if b > heaviest {
			heaviest, heaviestPkg = b, f[1]
		}
	}
	const limit = 512 << 10
	if total == 0 || total > limit {
		t.Fatalf("zac's package init allocates %d bytes (limit %d); the most: %s, %d bytes", total, limit, heaviestPkg, heaviest)
	}
}
