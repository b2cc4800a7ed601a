package zonekit_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdMetrics fetches a metrics listener's page over plain HTTP:
//
//	metrics [-status CODE] [-wait SECONDS] URL
//
// It prints the body to stdout and fails unless the status is CODE (200
// by default), retrying for up to SECONDS (readiness that flips). A
// /metrics page must also pass 'promtool check metrics' (Debian's
// prometheus package): scripts start with [!promtool] skip.
func cmdMetrics(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	status := fs.Int("status", http.StatusOK, "")
	wait := fs.Int("wait", 0, "")
	if neg || fs.Parse(args) != nil || fs.NArg() != 1 {
		ts.Fatalf("usage: metrics [-status CODE] [-wait SECONDS] URL")
	}
	url := fs.Arg(0)
	hc := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(time.Duration(*wait) * time.Second)
	var body []byte
	for {
		code := 0
		resp, err := hc.Get(url)
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
		}
		if err == nil && code == *status {
			break
		}
		if time.Now().After(deadline) {
			ts.Fatalf("GET %s: status %d, want %d (err %v): %s", url, code, *status, err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.HasSuffix(url, "/metrics") {
		promtool(ts, body)
	}
	ts.Stdout().Write(body)
}

// promtool runs 'promtool check metrics' on a metrics page.
func promtool(ts *testscript.TestScript, page []byte) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		ts.Fatalf("promtool is not installed (apt-get install prometheus); guard the script with [!promtool] skip")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil {
		ts.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		fmt.Fprintf(ts.Stderr(), "promtool: %s", out)
	}
}

// promtoolOK is the promtool condition: whether promtool is installed.
// CI installs it (.ci/run), so there a missing promtool fails the script
// instead of skipping it.
func promtoolOK() (bool, error) {
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("CI") == "true" {
			return false, fmt.Errorf("promtool is missing but CI=true: .ci/run installs it (apt-get install prometheus)")
		}
		return false, nil
	}
	return true, nil
}
