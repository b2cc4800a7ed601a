package server_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/zone"
)

// browser is a cookie-keeping client of the console that does not follow
// redirects, so a test sees each answer.
type browser struct {
	t  *testing.T
	f  *fixture
	c  *http.Client
	ur *url.URL
}

func newBrowser(t *testing.T, f *fixture) *browser {
	jar, _ := cookiejar.New(nil)
	c := f.httpClient(nil)
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u, _ := url.Parse(f.srv.URL)
	return &browser{t: t, f: f, c: c, ur: u}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.f.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.f.srv.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf token in %s", page)
	}
	return m[1]
}

func (b *browser) signIn(name, pw string) (int, string) {
	b.t.Helper()
	_, page, _ := b.get("/console/login")
	code, body, _ := b.post("/console/login", url.Values{"csrf": {csrfOf(b.t, page)}, "name": {name}, "password": {pw}, "next": {"/console/"}})
	return code, body
}

// TestConsoleThroughTheServer drives the console on a real zone server:
// sign-in through the API's password check, the pages, an assignment
// with its confirmation (the API's command and audit record), CSRF and
// signed-out refusals, and a hostile device name kept as text.
func TestConsoleThroughTheServer(t *testing.T) {
	f := newFixture(t, nil)
	hostile := `<img src=x onerror=alert(1)>`
	if err := f.db.Exec("test", zone.CmdDeviceRegister, map[string]any{"device": zone.Device{ID: "d1", Name: hostile, OS: "linux", Registered: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Exec("test", zone.CmdDeviceRegister, map[string]any{"device": zone.Device{ID: "d2", Name: "pc2", OS: "windows", Registered: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Exec("test", zone.CmdPackageCreate, zone.Package{ID: "1", Spec: content.Spec{Name: "firefox", OS: "linux", Action: "launch", Command: "true"}, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, f)
	// Signed out, a page sends to the sign-in form.
	code, _, hd := b.get("/console/devices")
	if code != http.StatusSeeOther || hd.Get("Location") != "/console/login?next=%2Fconsole%2Fdevices" {
		t.Fatalf("signed out: %d %q", code, hd.Get("Location"))
	}
	if code, body := b.signIn(testerName, "wrong"); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong administrator name or password") {
		t.Fatalf("wrong password: %d %s", code, body)
	}
	// A sign-in without the form's token is refused.
	if code, _, _ := b.post("/console/login", url.Values{"name": {testerName}, "password": {testerPass}}); code != http.StatusForbidden {
		t.Fatalf("sign-in without token: %d", code)
	}
	code, _ = b.signIn(testerName, testerPass)
	if code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	var cookie *http.Cookie
	for _, c := range b.c.Jar.Cookies(b.ur) {
		if c.Name == "__Host-zkconsole" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}

	code, body, hd := b.get("/console/")
	if code != http.StatusOK || !strings.Contains(body, "Zone <strong>Acme</strong>") || !strings.Contains(body, "<svg class=\"chart timeline\"") ||
		!strings.Contains(body, "CertAuth") || !strings.Contains(body, "<dt>Registered</dt><dd>2</dd>") {
		t.Fatalf("overview: %d %s", code, body)
	}
	if !strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'none'") || hd.Get("Cache-Control") != "no-store" {
		t.Errorf("overview headers %v", hd)
	}

	code, body, _ = b.get("/console/devices?os=linux")
	if code != http.StatusOK || strings.Contains(body, hostile) || !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") || strings.Contains(body, "pc2") {
		t.Fatalf("device search: %d %s", code, body)
	}
	code, body, _ = b.get("/console/devices/d1")
	if code != http.StatusOK || strings.Contains(body, hostile) || !strings.Contains(body, "<code>d1</code>") {
		t.Fatalf("device page: %d %s", code, body)
	}

	// Assign: the first post asks, the confirmation assigns.
	_, page, _ := b.get("/console/packages/1")
	token := csrfOf(t, page)
	code, body, _ = b.post("/console/packages/1/assign", url.Values{"csrf": {token}, "devices": {"d1"}})
	if code != http.StatusOK || !strings.Contains(body, "Yes, assign") {
		t.Fatalf("assign, first step: %d %s", code, body)
	}
	if deps, _ := f.db.Deployments("1"); len(deps) != 0 {
		t.Fatalf("assigned before the confirmation: %v", deps)
	}
	// Without the token, nothing happens.
	if code, _, _ := b.post("/console/packages/1/assign", url.Values{"devices": {"d1"}, "confirm": {"yes"}}); code != http.StatusForbidden {
		t.Fatalf("assign without csrf: %d", code)
	}
	code, body, _ = b.post("/console/packages/1/assign", url.Values{"csrf": {token}, "devices": {"d1"}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "Assigned: 1 devices changed") || !strings.Contains(body, "&lt;img") ||
		!strings.Contains(body, `<svg class="chart progress"`) {
		t.Fatalf("assign: %d %s", code, body)
	}
	deps, _ := f.db.Deployments("1")
	if len(deps) != 1 || deps[0].Device != "d1" {
		t.Fatalf("deployments %v", deps)
	}
	audit, _ := f.db.Audit(5)
	found := false
	for _, a := range audit {
		if a.Command == zone.CmdPackageAssign && a.Actor == testerName {
			found = true
		}
	}
	if !found {
		t.Errorf("no package.assign audit record by %s: %+v", testerName, audit)
	}
	code, body, _ = b.get("/console/packages")
	if code != http.StatusOK || !strings.Contains(body, "firefox") || !strings.Contains(body, `<rect class="waiting"`) {
		t.Fatalf("packages: %d %s", code, body)
	}
	// Activate and validate: each asks first, then goes through the
	// API's route (the same zone command and audit record as zman's).
	_, page, _ = b.get("/console/packages/1")
	token = csrfOf(t, page)
	code, body, _ = b.post("/console/packages/1/activate", url.Values{"csrf": {token}})
	if code != http.StatusOK || !strings.Contains(body, "Yes, activate") {
		t.Fatalf("activate, first step: %d %s", code, body)
	}
	if code, _, _ := b.post("/console/packages/1/activate", url.Values{"confirm": {"yes"}}); code != http.StatusForbidden {
		t.Fatalf("activate without csrf: %d", code)
	}
	// The API's own check refuses (this test server serves no plain-HTTP
	// content, so the fragments have nowhere to come from), and the
	// console shows its answer; the success is console_test.go's.
	code, body, _ = b.post("/console/packages/1/activate", url.Values{"csrf": {token}, "confirm": {"yes"}})
	if code != http.StatusConflict || !strings.Contains(body, "serves no plain-HTTP content") {
		t.Fatalf("activate: %d %s", code, body)
	}
	code, body, _ = b.post("/console/packages/1/validate", url.Values{"csrf": {token}, "mode": {"not-notified"}})
	if code != http.StatusOK || !strings.Contains(body, "Yes, validate") {
		t.Fatalf("validate, first step: %d %s", code, body)
	}
	if deps, _ := f.db.Deployments("1"); len(deps) != 1 {
		t.Fatalf("validated before the confirmation: %v", deps)
	}
	if code, _, _ := b.post("/console/packages/1/validate", url.Values{"csrf": {token}, "mode": {"everything"}, "confirm": {"yes"}}); code != http.StatusBadRequest {
		t.Fatalf("validate with a bad mode: %d", code)
	}
	code, body, _ = b.post("/console/packages/1/validate", url.Values{"csrf": {token}, "mode": {"not-notified"}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "Validated: 1 deployment records removed") {
		t.Fatalf("validate: %d %s", code, body)
	}
	if deps, _ := f.db.Deployments("1"); len(deps) != 0 {
		t.Fatalf("deployments after validate: %v", deps)
	}
	audit, _ = f.db.Audit(10)
	seen := map[string]bool{}
	for _, a := range audit {
		if a.Actor == testerName {
			seen[a.Command] = true
		}
	}
	if seen[zone.CmdPackageActivate] || !seen[zone.CmdPackageValidate] {
		t.Errorf("want a package.validate audit record by %s and no package.activate: %+v", testerName, audit)
	}
	if code, body, _ = b.get("/console/certificates"); code != http.StatusOK || !strings.Contains(body, "No certificate change is under way") {
		t.Fatalf("certificates: %d %s", code, body)
	}
	if code, body, _ = b.get("/console/preboot"); code != http.StatusOK || !strings.Contains(body, "No preboot work") || !strings.Contains(body, "No images on this server") {
		t.Fatalf("preboot: %d %s", code, body)
	}
	// An image in the imaging service's directory (pbserv's, where
	// content replication also puts the peers'), with its digest file.
	images := filepath.Join(f.paths.Home, "data", "images")
	sum := strings.Repeat("ab", 32)
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(images, "debian12.img"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(images, "debian12.img.sha256"), []byte(sum+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body, _ = b.get("/console/preboot"); code != http.StatusOK || !strings.Contains(body, "<td>debian12.img</td><td>3.0 MiB</td>") || !strings.Contains(body, sum) {
		t.Fatalf("preboot with an image: %d %s", code, body)
	}
	if code, _, _ = b.get("/console/assets/style.css"); code != http.StatusOK {
		t.Fatalf("style: %d", code)
	}

	// Sign out: the old cookie no longer opens anything.
	_, page, _ = b.get("/console/")
	if code, _, _ := b.post("/console/logout", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	b.c.Jar.SetCookies(b.ur, []*http.Cookie{{Name: cookie.Name, Value: cookie.Value, Path: "/"}})
	if code, _, _ := b.get("/console/"); code != http.StatusSeeOther {
		t.Fatalf("after logout: %d", code)
	}
	if code, _, _ := b.post("/console/certificates/cancel", url.Values{"csrf": {token}, "confirm": {"yes"}}); code != http.StatusForbidden {
		t.Fatalf("change after logout: %d", code)
	}
}

// TestConsoleCancelsACertificateChange: the certificates page shows a
// change in progress and cancels it after the confirmation, as zman
// certificate-change-cancel does (audited as the administrator).
func TestConsoleCancelsACertificateChange(t *testing.T) {
	f := newFixture(t, nil)
	r := f.do(t, f.httpClient(nil), "POST", api.Prefix+"/server-certificates/remint", tester, api.RemintRequest{Name: "renew-2026", Activation: time.Now().Add(30 * 24 * time.Hour)})
	if r.status >= 300 {
		t.Fatalf("remint: %d %s", r.status, r.body)
	}
	b := newBrowser(t, f)
	if code, _ := b.signIn(testerName, testerPass); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	code, body, _ := b.get("/console/certificates")
	if code != http.StatusOK || !strings.Contains(body, "renew-2026") || !strings.Contains(body, "Cancel this change") {
		t.Fatalf("certificates: %d %s", code, body)
	}
	if _, body, _ = b.get("/console/"); !strings.Contains(body, "activation ") {
		t.Errorf("overview timeline has no activation mark: %s", body)
	}
	token := csrfOf(t, body)
	code, _, hd := b.post("/console/certificates/cancel", url.Values{"csrf": {token}})
	if code != http.StatusSeeOther || hd.Get("Location") != "/console/certificates?cancel=confirm" {
		t.Fatalf("cancel, first step: %d %v", code, hd)
	}
	if rm, _ := f.db.Remint(); rm == nil {
		t.Fatal("cancelled before the confirmation")
	}
	_, body, _ = b.get("/console/certificates?cancel=confirm")
	if !strings.Contains(body, "Yes, cancel the change") {
		t.Fatalf("no confirmation: %s", body)
	}
	code, body, _ = b.post("/console/certificates/cancel", url.Values{"csrf": {token}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "The certificate change was cancelled") {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if rm, _ := f.db.Remint(); rm != nil {
		t.Fatalf("change still under way: %+v", rm)
	}
}
