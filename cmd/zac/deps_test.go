package main

import (
	"os/exec"
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
