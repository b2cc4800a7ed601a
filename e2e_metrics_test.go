package zonekit_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdMetrics fetches a metrics listener's page over plain HTTP:
//
//	metrics [-status CODE] [-wait SECONDS] [-match REGEX] [-lint-ok REGEX] URL
//
// It prints the body to stdout and fails unless the status is CODE (200
// by default) and the body matches REGEX (multi-line), retrying for up
// to SECONDS (readiness that flips, a counter that moves once the
// daemon has finished its side, after the client's). A
// /metrics page must also pass 'promtool check metrics' (Debian's
// prometheus package): scripts start with [!promtool] skip. -lint-ok
// accepts promtool's lint complaints (its exit status 3) that all match
// its REGEX: the satellite's go_* and process_* metrics, which
// github.com/VictoriaMetrics/metrics writes without HELP lines
// (docs/metrics.md); a page promtool cannot parse fails regardless.
func cmdMetrics(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	status := fs.Int("status", http.StatusOK, "")
	wait := fs.Int("wait", 0, "")
	match := fs.String("match", "", "")
	lintOK := fs.String("lint-ok", "", "")
	if neg || fs.Parse(args) != nil || fs.NArg() != 1 {
		ts.Fatalf("usage: metrics [-status CODE] [-wait SECONDS] [-match REGEX] [-lint-ok REGEX] URL")
	}
	re, err := regexp.Compile("(?m)" + *match)
	ts.Check(err)
	var lint *regexp.Regexp
	if *lintOK != "" {
		lint, err = regexp.Compile(*lintOK)
		ts.Check(err)
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
		if err == nil && code == *status && re.Match(body) {
			break
		}
		if time.Now().After(deadline) {
			ts.Fatalf("GET %s: status %d, want %d, body to match %q (err %v): %s", url, code, *status, *match, err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.HasSuffix(url, "/metrics") {
		promtool(ts, body, lint)
	}
	ts.Stdout().Write(body)
}

// promtool runs 'promtool check metrics' on a metrics page; lint, when
// not nil, matches the lint complaints to accept.
func promtool(ts *testscript.TestScript, page []byte, lint *regexp.Regexp) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		ts.Fatalf("promtool is not installed (apt-get install prometheus); guard the script with [!promtool] skip")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(page)
	out, err := cmd.CombinedOutput()
	// promtool exits 3 for lint complaints alone, 1 when it cannot parse.
	var ee *exec.ExitError
	if err != nil && lint != nil && errors.As(err, &ee) && ee.ExitCode() == 3 {
		err = nil
		for l := range strings.Lines(string(out)) {
			if !lint.MatchString(strings.TrimSpace(l)) {
				err = fmt.Errorf("lint complaint not accepted by -lint-ok: %s", l)
			}
		}
	}
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

// cmdPXEOffer sends the proxy DHCP service on 127.0.0.1:PORT the
// DHCPDISCOVER of a BIOS PXE client that already has an address
// (127.0.0.1, so the answer comes back by unicast, without a network
// namespace) and prints the answer's type and boot file:
//
//	pxeoffer PORT
func cmdPXEOffer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pxeoffer PORT")
	}
	port, err := strconv.Atoi(args[0])
	ts.Check(err)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	d, err := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, make([]byte, 17))))
	ts.Check(err)
	d.ClientIPAddr = net.IPv4(127, 0, 0, 1)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	ts.Check(err)
	defer c.Close()
	_, err = c.WriteToUDP(d.ToBytes(), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	ts.Check(err)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		ts.Fatalf("no answer from the proxy on port %d: %v", port, err)
	}
	r, err := dhcpv4.FromBytes(buf[:n])
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%s boot file %q\n", r.MessageType(), r.BootFileName)
}

// TestPromtoolMissingFailsInCI: CI installs promtool, so there a missing
// one fails the metrics scripts instead of skipping them.
func TestPromtoolMissingFailsInCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "true")
	if ok, err := promtoolOK(); ok || err == nil {
		t.Errorf("promtoolOK() = %v, %v with CI=true and no promtool; want an error", ok, err)
	}
	t.Setenv("CI", "")
	if ok, err := promtoolOK(); ok || err != nil {
		t.Errorf("promtoolOK() = %v, %v outside CI with no promtool; want a skip (false, nil)", ok, err)
	}
}
