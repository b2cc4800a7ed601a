package deps

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"zonekit/internal/testenv"
)

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string // every package it links, directly or not
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	testenv.Tool(t, "go", "the Go toolchain")
	cmd := exec.Command("go", "list", "-json", "zonekit/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

const m = "zonekit/internal/"

// The server's state (its store, its domain, replication, restore) is
// the zone server's alone: clients reach the zone through the API.
var serverOnly = []string{m + "server", m + "daemon", m + "replica", m + "restore", m + "store", m + "zone", m + "provision"}

// clients are the packages linked into zac and zman.
var clients = []string{m + "cli/zac", m + "cli/zman", m + "agent", m + "client", m + "satellite", m + "credstore", m + "serverfiles", m + "api", m + "ui"}

// domain packages never import command-line or server packages.
var domain = []string{m + "store", m + "zone", m + "pki", m + "content", m + "backup", m + "spk", m + "api", m + "config", m + "serverfiles", m + "restore", m + "replica"}

var upward = []string{m + "cli", m + "server", m + "daemon", "github.com/spf13/cobra", "github.com/AlecAivazis/survey/v2"}

// leaves are the bottom of the map: they import no zonekit package but
// errkind, so anything may use them.
var leaves = []string{m + "proc", m + "errkind", m + "atomicfile", m + "failpoint"}

func TestDependenciesPointDown(t *testing.T) {
	for _, p := range listPackages(t) {
		if slices.Contains(leaves, p.ImportPath) {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, "zonekit/") && imp != m+"errkind" {
					t.Errorf("%s imports %s: it is a leaf of the package map", p.ImportPath, imp)
				}
			}
		}
		for _, imp := range p.Imports {
			if slices.Contains(clients, p.ImportPath) && slices.Contains(serverOnly, imp) {
				t.Errorf("%s imports %s: clients reach the zone's state through the API (internal/api, internal/client)", p.ImportPath, imp)
			}
			if slices.Contains(domain, p.ImportPath) {
				for _, u := range upward {
					if imp == u || strings.HasPrefix(imp, u+"/") {
						t.Errorf("%s imports %s: domain packages depend downwards only", p.ImportPath, imp)
					}
				}
			}
			// A capability of the zone server (internal/server/<area>)
			// takes what it needs through small interfaces: it never
			// reaches back into the server core, another area, the
			// daemon or the CLI; server/httpapi is what the core gives.
			if strings.HasPrefix(p.ImportPath, m+"server/") && imp != m+"server/httpapi" &&
				(imp == m+"server" || strings.HasPrefix(imp, m+"server/") || imp == m+"daemon" || imp == m+"cli" || strings.HasPrefix(imp, m+"cli/")) {
				t.Errorf("%s imports %s: server areas depend on server/httpapi and domain packages only", p.ImportPath, imp)
			}
			if strings.HasPrefix(imp, m+"cli/") && !strings.HasPrefix(p.ImportPath, "zonekit/cmd/") && !strings.HasPrefix(p.ImportPath, "zonekit/scripts/") && p.ImportPath != m+"cli" && !strings.HasPrefix(p.ImportPath, m+"cli/") {
				t.Errorf("%s imports %s: only cmd/ (and scripts/genman) build command trees", p.ImportPath, imp)
			}
		}
	}
}

// The programs on admins' and endpoints' machines link none of the zone
// server's state, not even through another package: zman finds the local
// server's peers in the file the server writes (serverfiles.ReadPeers).
func TestClientsLinkNoServerState(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != "zonekit/cmd/zman" && p.ImportPath != "zonekit/cmd/zac" {
			continue
		}
		for _, d := range p.Deps {
			if slices.Contains(serverOnly, d) || strings.HasPrefix(d, m+"server/") {
				t.Errorf("%s links %s: clients reach the zone's state through the API (internal/api, internal/client)", p.ImportPath, d)
			}
		}
	}
}
