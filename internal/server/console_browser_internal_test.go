package server

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/server/console"
	"zonekit/internal/zone"
)

// chromium finds Debian's chromium. Missing, the test skips on a
// developer's machine but fails in CI (CI=true), where .ci/run installs it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: the console's browser test needs it in CI (.ci/run installs it)")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// TestConsoleInABrowser drives the console in a real headless chromium
// against a zone server started here: sign in, read the overview, open a
// device with a hostile name (it stays text), assign a package through
// the confirmation and see its status, cancel a certificate change, a
// forged POST refused and an expired session sent back to sign-in. On
// failure, a screenshot of the page is saved and its path printed.
func TestConsoleInABrowser(t *testing.T) {
	exe := chromium(t)
	var clock atomic.Pointer[time.Time]
	now := time.Now()
	clock.Store(&now)
	s, db := newClockedServer(t, &clock, &bytes.Buffer{})
	hostile := `<img src=x onerror=alert(1)>`
	for _, err := range []error{
		db.Exec("test", zone.CmdDeviceRegister, map[string]any{"device": zone.Device{ID: "d1", Name: hostile, OS: "linux", Registered: now}}),
		db.Exec("test", zone.CmdPackageCreate, zone.Package{ID: "1", Spec: content.Spec{Name: "firefox", OS: "linux", Action: "launch", Command: "true"}, Created: now}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = s.TLSConfig()
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	defer hs.Close()
	// A certificate change in progress, started as zman would.
	if err := (consoleBackend{s: s, mux: s.apiMux}).Call(httptest.NewRequest("POST", "/", nil), "tester", "POST",
		api.Prefix+"/server-certificates/remint", api.RemintRequest{Name: "renew-browser", Activation: now.Add(30 * 24 * time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		// The zone CA is the test's own; the browser talks to 127.0.0.1 only.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.NoSandbox, // CI runs as root, where chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(1000, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	step := "start"
	defer func() {
		if !t.Failed() {
			return
		}
		var png []byte
		sctx, c := context.WithTimeout(ctx, 5*time.Second)
		defer c()
		if err := chromedp.Run(sctx, chromedp.FullScreenshot(&png, 80)); err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		dir := os.Getenv("ZK_TEST_ARTIFACTS")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "zonekit-test-artifacts")
		}
		os.MkdirAll(dir, 0o755)
		p := filepath.Join(dir, "console-"+strings.ReplaceAll(step, " ", "-")+".jpg")
		if err := os.WriteFile(p, png, 0o644); err == nil {
			t.Logf("screenshot of the page at step %q: %s", step, p)
		}
	}()
	run := func(name string, actions ...chromedp.Action) {
		t.Helper()
		step = name
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	base := hs.URL
	var text, h1 string
	var imgs int

	run("sign in",
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible("#name", chromedp.ByID),
		chromedp.SendKeys("#name", "tester", chromedp.ByID),
		chromedp.SendKeys("#password", "tester-password", chromedp.ByID),
		chromedp.Click(`form.login button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`svg.timeline`, chromedp.ByQuery),
		chromedp.Text("main", &text, chromedp.ByQuery),
	)
	if !strings.Contains(text, "Acme") || !strings.Contains(text, "renew-browser") {
		t.Errorf("overview: %s", text)
	}

	run("device",
		chromedp.Navigate(base+"/console/devices?os=linux"),
		chromedp.WaitVisible(`main table a`, chromedp.ByQuery),
		chromedp.Click(`main table a`, chromedp.ByQuery),
		chromedp.WaitVisible(`dl.props`, chromedp.ByQuery),
		chromedp.Text("h1", &h1, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("img").length`, &imgs),
	)
	if h1 != "Device "+hostile || imgs != 0 {
		t.Errorf("device page: h1 %q, %d img elements", h1, imgs)
	}

	run("assign",
		chromedp.Navigate(base+"/console/packages/1"),
		chromedp.WaitVisible("#a-devices", chromedp.ByID),
		chromedp.SendKeys("#a-devices", "d1", chromedp.ByID),
		chromedp.Click(`form.assign button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`form.confirm button[name=confirm]`, chromedp.ByQuery),
		chromedp.Click(`form.confirm button[name=confirm]`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.banner.ok`, chromedp.ByQuery),
		chromedp.Text("main", &text, chromedp.ByQuery),
	)
	if !strings.Contains(text, "Assigned: 1 devices changed") || !strings.Contains(text, "(1)") || !strings.Contains(text, hostile) {
		t.Errorf("after the assignment: %s", text)
	}
	var polygons int
	run("progress chart", chromedp.Evaluate(`document.querySelectorAll("svg.progress polygon").length`, &polygons))
	if polygons != 4 {
		t.Errorf("the deployment chart over time has %d layers, want 4", polygons)
	}
	run("device status",
		chromedp.Navigate(base+"/console/devices/d1"),
		chromedp.WaitVisible(`section.deployment`, chromedp.ByQuery),
		chromedp.Text(`section.deployment h3`, &text, chromedp.ByQuery),
	)
	if deps, _ := db.Deployments("1"); len(deps) != 1 || !strings.Contains(text, "firefox") || !strings.Contains(text, deps[0].Status) {
		t.Errorf("device's package: %q, deployments %v", text, deps)
	}

	run("validate",
		chromedp.Navigate(base+"/console/packages/1"),
		chromedp.WaitVisible(`form.validate input[value=not-notified]`, chromedp.ByQuery),
		chromedp.Click(`form.validate input[value=not-notified]`, chromedp.ByQuery),
		chromedp.Click(`form.validate button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`form.confirm button[name=confirm]`, chromedp.ByQuery),
		chromedp.Click(`form.confirm button[name=confirm]`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.banner.ok`, chromedp.ByQuery),
		chromedp.Text("main", &text, chromedp.ByQuery),
	)
	if deps, _ := db.Deployments("1"); len(deps) != 0 || !strings.Contains(text, "Validated: 1 deployment records removed") {
		t.Errorf("after validating: %s, deployments %v", text, deps)
	}

	run("cancel change",
		chromedp.Navigate(base+"/console/certificates"),
		chromedp.WaitVisible(`//button[contains(., "Cancel this change")]`),
		chromedp.Click(`//button[contains(., "Cancel this change")]`),
		chromedp.WaitVisible(`form.confirm button[name=confirm]`, chromedp.ByQuery),
		chromedp.Click(`form.confirm button[name=confirm]`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.banner.ok`, chromedp.ByQuery),
	)
	if rm, _ := db.Remint(); rm != nil {
		t.Errorf("change still under way after the console cancelled it: %s", rm.Name)
	}

	// A forged change: a form without the session's token (built by the
	// devtools' script; the page itself runs none) is refused.
	var ok bool
	run("csrf",
		chromedp.Evaluate(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = "/console/logout";
			const i = document.createElement("input"); i.name = "csrf"; i.value = "forged"; f.appendChild(i);
			document.body.appendChild(f); f.submit(); return true })()`, &ok),
		chromedp.WaitVisible(`p.banner.error`, chromedp.ByQuery),
		chromedp.Text("main", &text, chromedp.ByQuery),
	)
	if !strings.Contains(text, "Forbidden") || !strings.Contains(text, "security token") {
		t.Errorf("forged POST: %s", text)
	}

	later := now.Add(console.IdleTimeout + time.Minute)
	clock.Store(&later)
	var url string
	run("expired",
		chromedp.Navigate(base+"/console/packages"),
		chromedp.WaitVisible("#name", chromedp.ByID),
		chromedp.Location(&url),
	)
	if !strings.Contains(url, "/console/login?next=") {
		t.Errorf("after the session expired: %s", url)
	}
}
