package service

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"zonekit/internal/preboot/conf"
)

var update = flag.Bool("update", false, "rewrite packaging/systemd's preboot units")

// TestPackagedUnits keeps the units that 'make install' and the Debian
// package ship (packaging/systemd/zonekit-SERVICE.service.in, @BINDIR@
// replaced at install) equal to what PackagedUnit renders; -update
// rewrites them.
func TestPackagedUnits(t *testing.T) {
	l := conf.Layout{Home: "/var/opt/zonekit"}
	for _, svc := range conf.Services() {
		want := PackagedUnit(l, svc, "@BINDIR@/pbserv", "zonekit")
		path := filepath.Join("..", "..", "..", "packaging", "systemd", UnitName(svc)+".in")
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is not what PackagedUnit renders; run go test ./internal/preboot/service -run TestPackagedUnits -update\ngot:\n%s\nwant:\n%s", path, got, want)
		}
	}
}
