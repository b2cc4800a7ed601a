package main

import (
	"os/exec"
	"strings"
	"testing"
)

// zac runs on every managed device, often as a short process (register,
// refresh): it links none of the zone server's packages, whose size and
// package initialisation every zac process would pay.
func TestNoServerPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"zonekit/internal/server", "zonekit/internal/store", "zonekit/internal/zone",
			"zonekit/internal/replica", "zonekit/internal/backup", "zonekit/internal/restore", "github.com/hashicorp/raft"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("zac links %s", dep)
			}
		}
	}
}
