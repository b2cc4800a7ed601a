package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/cli/zman"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

const usageHint = "--help' for usage."

// kindStatus is the exit status table every program's help prints.
var kindStatus = []struct {
	kind errkind.Kind
	code int
}{
	{errkind.Failure, 1}, {errkind.Usage, 2}, {errkind.Auth, 1}, {errkind.NotFound, 3},
	{errkind.Exists, 4}, {errkind.Passphrase, 12}, {errkind.Cancelled, 130}, {errkind.Unavailable, 5},
	{errkind.Invalid, 1}, {errkind.Pending, 6}, {errkind.PartlyFailed, 7}, {errkind.Busy, 8},
	{errkind.Refused, 1},
}

// TestExitCodesPerKind walks the command tree of every program: each
// runnable command, made to fail with each kind of error, exits with that
// kind's status, and only a usage error adds the "--help" hint; an unknown
// flag is a usage error naming the command.
func TestExitCodesPerKind(t *testing.T) {
	t.Setenv("ZONEKIT_HOME", t.TempDir())
	for _, p := range programs {
		root, _ := prepared(p.root)
		walk(root, func(c *cobra.Command) {
			if !c.Runnable() || c.Hidden || c.Name() == "help" || c.Name() == "completion" {
				return
			}
			args := path(c)
			t.Run(p.name+" "+strings.Join(args, " "), func(t *testing.T) {
				for _, ks := range kindStatus {
					fresh, _ := prepared(p.root)
					target, _, err := fresh.Find(args)
					if err != nil {
						t.Fatal(err)
					}
					target.Args = cobra.ArbitraryArgs
					target.PreRunE, target.PreRun = nil, nil
					target.RunE = func(*cobra.Command, []string) error { return errkind.New(ks.kind, "it went wrong") }
					io, _, _, errOut := ui.Test()
					code := cmdutil.Execute(context.Background(), fresh, io, args)
					if code != ks.code {
						t.Errorf("kind %d: exit %d, want %d (%s)", ks.kind, code, ks.code, errOut)
					}
					if hint := strings.Contains(errOut.String(), usageHint); hint != (ks.kind == errkind.Usage) {
						t.Errorf("kind %d: usage hint %v: %s", ks.kind, hint, errOut)
					}
				}
				fresh, _ := prepared(p.root)
				io, _, _, errOut := ui.Test()
				want := 2
				if c.CommandPath() == "zman certificate-expiry-check" {
					want = 3 // the monitoring plugins' UNKNOWN, documented in its help
				}
				if code := cmdutil.Execute(context.Background(), fresh, io, append(args, "--no-such-flag")); code != want {
					t.Errorf("unknown flag: exit %d, want %d", code, want)
				}
				if want := "Run '" + c.CommandPath() + " " + usageHint; !strings.Contains(errOut.String(), want) {
					t.Errorf("unknown flag: stderr %q lacks %q", errOut, want)
				}
			})
		})
	}
}

// TestZmanServerRefusals runs real zman commands against a server that
// answers every request with one error code: what the server refuses is
// never a usage error of zman's command line.
func TestZmanServerRefusals(t *testing.T) {
	var code string
	status := map[string]int{"usage": 400, "refused": 409, "auth": 401, "not_found": 404, "exists": 409, "unavailable": 503, "invalid": 422, "failure": 500}
	_, global := standIn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status[code])
		json.NewEncoder(w).Encode(api.Error{Error: api.ErrorBody{Code: code, Message: "the zone says no"}})
	}))
	commands := [][]string{
		{"server-delete", "srv2", "--yes"}, {"package-activate", "1700000001"}, {"admin-list"},
		{"group-create", "lab"}, {"device-delete", "pc1", "--yes"}, {"zone-info"},
		{"satellite-add-role", "pc1", "--content-url", "http://x:1/content"},
	}
	want := map[string]int{"usage": 1, "refused": 1, "auth": 1, "not_found": 3, "exists": 4, "unavailable": 5, "invalid": 1, "failure": 1}
	for _, cmd := range commands {
		for c, exit := range want {
			code = c
			io, _, _, errOut := ui.Test()
			got := cmdutil.Execute(context.Background(), zman.NewRoot(zman.NewFactory(io)), io, append(append([]string{}, global...), cmd...))
			if got != exit {
				t.Errorf("%s answered %q: exit %d, want %d (%s)", cmd[0], c, got, exit, errOut)
			}
			if strings.Contains(errOut.String(), usageHint) {
				t.Errorf("%s answered %q: usage hint for a server's answer: %s", cmd[0], c, errOut)
			}
		}
	}
}
