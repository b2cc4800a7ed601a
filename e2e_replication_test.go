package zonekit_test

import (
	"encoding/json"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"zonekit/internal/api"
)

// waitcontent [-t SECONDS] SERVER PACKAGE STATE waits until zman
// content-replication-status says that SERVER (name) holds PACKAGE (id,
// or image:NAME) in STATE (present, missing, in-flight); it fails after
// the timeout (default 60 s) with the last answer. The zman environment
// (ZMAN_USER, --host through ZMAN_HOST...) is the script's.
func cmdWaitContent(ts *testscript.TestScript, neg bool, args []string) {
	timeout := 60 * time.Second
	if len(args) > 2 && args[0] == "-t" {
		d, err := time.ParseDuration(args[1] + "s")
		ts.Check(err)
		timeout, args = d, args[2:]
	}
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitcontent [-t SECONDS] SERVER PACKAGE STATE")
	}
	server, pkg, state := args[0], args[1], args[2]
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		if err := ts.Exec("zman", "content-replication-status", "--server", server, "--package", pkg, "-o", "json"); err == nil {
			var st api.ReplicationStatus
			out := ts.ReadFile("stdout")
			if json.Unmarshal([]byte(out), &st) == nil {
				for _, e := range st.Entries {
					if e.Server == server || e.ServerID == server {
						last = e.State + " " + e.Error
						if e.State == state {
							return
						}
					}
				}
			}
		} else {
			last = err.Error() + ": " + ts.ReadFile("stderr")
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitcontent: %s does not hold %s %s after %s (last: %s)", server, pkg, state, timeout, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
