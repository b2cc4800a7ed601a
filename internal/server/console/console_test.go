package console

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/zone"
)

type fakeBackend struct {
	stale string
	calls *[]string // the changes asked for, "METHOD path body"
}

func (fakeBackend) Login(r *http.Request, name, pw string) (string, error) {
	if name == "admin" && pw == "pw" {
		return name, nil
	}
	return "", errkind.New(errkind.Auth, "authentication failed")
}

func (b fakeBackend) Call(r *http.Request, actor, method, path string, in, out any) error {
	if method != http.MethodGet && b.calls != nil {
		*b.calls = append(*b.calls, fmt.Sprintf("%s %s %s %+v", actor, method, path, in))
	}
	switch p := strings.TrimPrefix(path, api.Prefix); {
	case p == "/preboot/work":
		*out.(*[]api.PrebootWork) = nil
	case p == "/packages/7":
		*out.(*api.Package) = api.Package{ID: "7", PackageSpec: api.PackageSpec{Name: "<b>pkg</b>"}}
	case p == "/packages/7/activate":
		*out.(*api.Package) = api.Package{ID: "7"}
	case p == "/packages/7/validate":
		*out.(*api.PackageValidateResult) = api.PackageValidateResult{Package: "7", Removed: 3}
	case p == "/servers":
		*out.(*[]api.Server) = []api.Server{{Name: "zs1.example", Roles: []string{"CertAuth"}}}
	case p == "/certificate-authority":
		*out.(*api.CA) = api.CA{Subject: "CN=Acme CA", NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.AddDate(1, 0, 0)}
	case p == "/server-certificates":
		*out.(*[]api.ServerCertificate) = []api.ServerCertificate{{Server: "zs1.example", NotBefore: t0, NotAfter: t0.AddDate(0, 0, 20)}}
	case p == "/certificate-changes/current":
		return errkind.New(errkind.NotFound, "no certificate change is under way")
	default:
		return fmt.Errorf("fake backend: no %s %s", method, path)
	}
	return nil
}

func (b fakeBackend) StaleSince() string { return b.stale }

var t0 = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

type fakeZone struct {
	devs []zone.Device
	deps []zone.Deployment
}

func (z *fakeZone) Zone() (zone.Zone, error) { return zone.Zone{Name: "Acme"}, nil }
func (z *fakeZone) Devices() ([]zone.Device, error) {
	return append([]zone.Device(nil), z.devs...), nil
}
func (z *fakeZone) ResolveDevice(ref string) (zone.Device, error) {
	for _, d := range z.devs {
		if d.ID == ref || d.Name == ref {
			return d, nil
		}
	}
	return zone.Device{}, errkind.New(errkind.NotFound, "no device %q", ref)
}
func (z *fakeZone) DevicePackages(string) ([]zone.Deployment, []zone.Package, error) {
	return nil, nil, nil
}
func (z *fakeZone) Groups() ([]zone.Group, error) {
	return []zone.Group{{Name: "lab", Members: []string{"d1"}}}, nil
}
func (z *fakeZone) Inventory(id string) (*zone.Inventory, error) {
	return nil, errkind.New(errkind.NotFound, "no inventory")
}
func (z *fakeZone) Deployments(string) ([]zone.Deployment, error) { return z.deps, nil }
func (z *fakeZone) DeploymentStatusCounts() (map[string]zone.StatusCounts, error) {
	return map[string]zone.StatusCounts{"1": {Success: 3, Error: 1}}, nil
}

type client struct {
	t       *testing.T
	h       *Handlers
	cookies map[string]string
}

func newClient(t *testing.T, now *time.Time, z *fakeZone) *client {
	h := &Handlers{Zone: z, Backend: fakeBackend{}, Now: func() time.Time { return *now }}
	return &client{t: t, h: h, cookies: map[string]string{}}
}

func (c *client) do(method, path string, form url.Values) *httptest.ResponseRecorder {
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, "https://zs1.example"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, "https://zs1.example"+path, nil)
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return rec
}

var tokenRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func token(t *testing.T, body string) string {
	t.Helper()
	m := tokenRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf token: %s", body)
	}
	return m[1]
}

func (c *client) signIn() {
	c.t.Helper()
	page := c.do("GET", "/console/login", nil)
	rec := c.do("POST", "/console/login", url.Values{"csrf": {token(c.t, page.Body.String())}, "name": {"admin"}, "password": {"pw"}, "next": {"/console/devices"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/console/devices" {
		c.t.Fatalf("sign-in: %d %v", rec.Code, rec.Header())
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	now := t0
	c := newClient(t, &now, &fakeZone{})
	page := c.do("GET", "/console/login", nil)
	rec := c.do("POST", "/console/login", url.Values{"csrf": {token(t, page.Body.String())}, "name": {"admin"}, "password": {"pw"}})
	var found bool
	for _, ck := range rec.Result().Cookies() {
		if ck.Name != cookieName {
			continue
		}
		found = true
		if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge != int(MaxAge/time.Second) {
			t.Errorf("session cookie %+v", ck)
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
}

// TestSessionExpiry: a session ends after IdleTimeout without use, and
// after MaxAge however busy (fake clock); an expired session's page is a
// redirect to sign-in and its change a refusal.
func TestSessionExpiry(t *testing.T) {
	now := t0
	c := newClient(t, &now, &fakeZone{})
	c.signIn()
	page := c.do("GET", "/console/devices", nil)
	if page.Code != http.StatusOK {
		t.Fatalf("devices: %d", page.Code)
	}
	tok := token(t, page.Body.String())
	now = now.Add(IdleTimeout - time.Second)
	if rec := c.do("GET", "/console/devices", nil); rec.Code != http.StatusOK {
		t.Fatalf("just before idle expiry: %d", rec.Code)
	}
	now = now.Add(IdleTimeout)
	if rec := c.do("GET", "/console/devices", nil); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/console/login?next=") {
		t.Fatalf("after idle expiry: %d %v", rec.Code, rec.Header())
	}
	if rec := c.do("POST", "/console/logout", url.Values{"csrf": {tok}}); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "session has expired") {
		t.Fatalf("post after expiry: %d %s", rec.Code, rec.Body)
	}

	// Busy all along, the session still ends at MaxAge.
	c.signIn()
	start := now
	for now.Sub(start) < MaxAge-IdleTimeout/2 {
		now = now.Add(IdleTimeout / 2)
		if rec := c.do("GET", "/console/devices", nil); rec.Code != http.StatusOK {
			t.Fatalf("at %v: %d", now.Sub(start), rec.Code)
		}
	}
	now = start.Add(MaxAge)
	if rec := c.do("GET", "/console/devices", nil); rec.Code != http.StatusSeeOther {
		t.Fatalf("after max age: %d", rec.Code)
	}
}

func TestCSRFRefusals(t *testing.T) {
	now := t0
	c := newClient(t, &now, &fakeZone{})
	c.signIn()
	for _, form := range []url.Values{{}, {"csrf": {"forged"}}} {
		if rec := c.do("POST", "/console/logout", form); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "security token") {
			t.Errorf("logout with %v: %d %s", form, rec.Code, rec.Body)
		}
	}
	// Another session's token is not this one's.
	other := newClient(t, &now, &fakeZone{})
	other.h = c.h
	other.signIn()
	otherTok := token(t, other.do("GET", "/console/devices", nil).Body.String())
	if rec := c.do("POST", "/console/logout", url.Values{"csrf": {otherTok}}); rec.Code != http.StatusForbidden {
		t.Errorf("logout with another session's token: %d", rec.Code)
	}
	tok := token(t, c.do("GET", "/console/devices", nil).Body.String())
	if rec := c.do("POST", "/console/logout", url.Values{"csrf": {tok}}); rec.Code != http.StatusSeeOther {
		t.Errorf("logout: %d", rec.Code)
	}
	if rec := c.do("GET", "/console/devices", nil); rec.Code != http.StatusSeeOther {
		t.Errorf("after logout: %d", rec.Code)
	}
}

func TestLoginRefusals(t *testing.T) {
	now := t0
	c := newClient(t, &now, &fakeZone{})
	page := c.do("GET", "/console/login", nil).Body.String()
	if rec := c.do("POST", "/console/login", url.Values{"csrf": {token(t, page)}, "name": {"admin"}, "password": {"nope"}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", rec.Code)
	}
	// The login cookie was renewed with the new form; the old token is stale.
	if rec := c.do("POST", "/console/login", url.Values{"csrf": {token(t, page)}, "name": {"admin"}, "password": {"pw"}}); rec.Code != http.StatusForbidden {
		t.Errorf("stale login token: %d", rec.Code)
	}
	delete(c.cookies, loginCookieName)
	if rec := c.do("POST", "/console/login", url.Values{"csrf": {"x"}, "name": {"admin"}, "password": {"pw"}}); rec.Code != http.StatusForbidden {
		t.Errorf("no login cookie: %d", rec.Code)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/devices?os=linux": "/console/devices?os=linux",
		"https://evil.example/":     Prefix,
		"//evil.example/console/":   Prefix,
		"/console/\\evil":           Prefix,
		"":                          Prefix,
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHostileValuesStayText: device-supplied values are escaped in every
// context they reach (text, attribute, URL).
func TestHostileValuesStayText(t *testing.T) {
	now := t0
	hostile := `<img src=x onerror=alert(1)>`
	z := &fakeZone{devs: []zone.Device{{ID: `d1"><script>`, Name: hostile, OS: `"><svg onload=alert(1)>`, Address: "<b>"}}}
	c := newClient(t, &now, z)
	c.signIn()
	for _, path := range []string{"/console/devices", "/console/devices?name=" + url.QueryEscape(hostile), "/console/devices/" + url.PathEscape(`d1"><script>`)} {
		body := c.do("GET", path, nil).Body.String()
		for _, bad := range []string{"<img", "<script", "<svg onload", "<b>"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: %q unescaped in %s", path, bad, body)
			}
		}
		if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("%s: the name is not shown as text: %s", path, body)
		}
	}
}

func TestOverviewWarnsAndStale(t *testing.T) {
	now := t0
	z := &fakeZone{devs: []zone.Device{{ID: "d1", Name: "pc1", LastContact: t0.Add(-time.Hour)}, {ID: "d2", Name: "pc2", LastContact: t0.AddDate(0, 0, -30)}, {ID: "d3", Name: "pc3"}}}
	c := newClient(t, &now, z)
	c.h.Backend = fakeBackend{stale: "2026-12-07T07:00:00Z"}
	c.signIn()
	body := c.do("GET", "/console/", nil).Body.String()
	for _, want := range []string{
		"stale since 2026-12-07T07:00:00Z",
		"Server zs1.example expires on 2026-12-27 (in 20 days).",
		"1 devices have not been in contact for over 7 days.",
		"<dt>Seen in the last day</dt><dd>1</dd>", "<dt>Never in contact</dt><dd>1</dd>",
		"<dt>Succeeded</dt><dd>3</dd>",
		`<svg class="chart timeline"`, `<g class="expiring">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q:\n%s", want, body)
		}
	}
}

func TestSearch(t *testing.T) {
	z := &fakeZone{devs: []zone.Device{{ID: "d1", Name: "Lab-PC1", OS: "Debian Linux"}, {ID: "d2", Name: "lab-pc2", OS: "Windows 11"}, {ID: "d3", Name: "office", OS: "linux"}}}
	h := &Handlers{Zone: z}
	groups, _ := z.Groups()
	for _, tc := range []struct {
		q    deviceQuery
		want string
	}{
		{deviceQuery{Name: "lab"}, "d1 d2"},
		{deviceQuery{Name: "LAB-pc"}, "d1 d2"},
		{deviceQuery{OS: "linux"}, "d1 d3"},
		{deviceQuery{Group: "lab"}, "d1"},
		{deviceQuery{Name: "lab", OS: "windows"}, "d2"},
	} {
		got, err := h.search(deviceQuery{Name: strings.ToLower(tc.q.Name), Group: tc.q.Group, OS: tc.q.OS}, groups)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range got {
			ids = append(ids, d.ID)
		}
		if strings.Join(ids, " ") != tc.want {
			t.Errorf("%+v: %v, want %s", tc.q, ids, tc.want)
		}
	}
	if _, err := h.search(deviceQuery{Group: "nope"}, groups); errkind.Of(err) != errkind.Usage {
		t.Errorf("unknown group: %v", err)
	}
}

// TestPageWeight: the heaviest pages (the overview, a device search
// listing its most devices) with the stylesheet stay under 200 KiB.
func TestPageWeight(t *testing.T) {
	now := t0
	z := &fakeZone{}
	for i := range 20000 {
		z.devs = append(z.devs, zone.Device{ID: fmt.Sprintf("dev%06d", i), Name: fmt.Sprintf("workstation-%06d.branch-office.acme.example", i),
			OS: "Microsoft Windows 11 Enterprise 10.0.22631", Address: "[2001:db8:1234:5678::abcd]:443", LastContact: t0})
	}
	c := newClient(t, &now, z)
	c.signIn()
	css := c.do("GET", "/console/assets/style.css", nil).Body.Len()
	for _, path := range []string{"/console/", "/console/devices", "/console/devices?os=windows"} {
		rec := c.do("GET", path, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		if n := rec.Body.Len() + css; n > 200<<10 {
			t.Errorf("%s weighs %d bytes with the stylesheet (%d), over 200 KiB", path, n, css)
		} else {
			t.Logf("%s: %d bytes with the stylesheet", path, n)
		}
	}
}

// TestActivateAndValidate: each asks for a confirmation first (and makes
// no call), then calls the API's route as the administrator; without the
// CSRF token, or with a mode package-validate does not have, nothing is
// called.
func TestActivateAndValidate(t *testing.T) {
	now := t0
	var calls []string
	c := newClient(t, &now, &fakeZone{})
	c.h.Backend = fakeBackend{calls: &calls}
	c.signIn()
	tok := token(t, c.do("GET", "/console/packages/7", nil).Body.String())

	rec := c.do("POST", "/console/packages/7/activate", url.Values{"csrf": {tok}, "info_location": {"zs.example/content"}})
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, "Yes, activate") ||
		!strings.Contains(body, `name="info_location" value="zs.example/content"`) || strings.Contains(body, "<b>pkg") {
		t.Fatalf("activate, first step: %d %s", rec.Code, body)
	}
	rec = c.do("POST", "/console/packages/7/validate", url.Values{"csrf": {tok}, "mode": {"all"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Yes, validate") {
		t.Fatalf("validate, first step: %d %s", rec.Code, rec.Body)
	}
	for _, f := range []url.Values{
		{"confirm": {"yes"}, "mode": {"all"}},
		{"csrf": {"stale"}, "confirm": {"yes"}, "mode": {"all"}},
	} {
		for _, path := range []string{"/console/packages/7/activate", "/console/packages/7/validate"} {
			if rec := c.do("POST", path, f); rec.Code != http.StatusForbidden {
				t.Errorf("%s %v: %d", path, f, rec.Code)
			}
		}
	}
	if rec := c.do("POST", "/console/packages/7/validate", url.Values{"csrf": {tok}, "mode": {"everything"}, "confirm": {"yes"}}); rec.Code != http.StatusBadRequest {
		t.Errorf("bad mode: %d", rec.Code)
	}
	if len(calls) != 0 {
		t.Fatalf("calls before a confirmation: %q", calls)
	}

	rec = c.do("POST", "/console/packages/7/activate", url.Values{"csrf": {tok}, "info_location": {"zs.example/content"}, "confirm": {"yes"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("activate: %d %s", rec.Code, rec.Body)
	}
	rec = c.do("POST", "/console/packages/7/validate", url.Values{"csrf": {tok}, "mode": {"all"}, "confirm": {"yes"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Validated: 3 deployment records removed") {
		t.Fatalf("validate: %d %s", rec.Code, rec.Body)
	}
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "admin POST /api/v1/packages/7/activate {InfoLocation:zs.example/content PackLocation: ") ||
		calls[1] != "admin POST /api/v1/packages/7/validate {Mode:all}" {
		t.Errorf("calls %q", calls)
	}
}

// TestPrebootImages: the Preboot page lists the images with size and
// digest; an image name is the imaging service's, shown as text; a
// server without an image directory shows none rather than failing.
func TestPrebootImages(t *testing.T) {
	now := t0
	c := newClient(t, &now, &fakeZone{})
	c.h.Images = func() ([]imaging.Image, error) {
		return []imaging.Image{{Name: "<img src=x>.img", Size: 5 << 30, SHA256: strings.Repeat("0f", 32), Modified: t0}}, nil
	}
	c.signIn()
	rec := c.do("GET", "/console/preboot", nil)
	body := rec.Body.String()
	if rec.Code != http.StatusOK || strings.Contains(body, "<img src") || !strings.Contains(body, "&lt;img src=x&gt;.img") ||
		!strings.Contains(body, "5.0 GiB") || !strings.Contains(body, strings.Repeat("0f", 32)) {
		t.Fatalf("preboot: %d %s", rec.Code, body)
	}
	c.h.Images = func() ([]imaging.Image, error) {
		return nil, &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
	}
	if rec := c.do("GET", "/console/preboot", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "No images on this server") {
		t.Fatalf("no image directory: %d %s", rec.Code, rec.Body)
	}
}
