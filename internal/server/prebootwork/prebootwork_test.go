package prebootwork

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// routes records how each pattern is mounted; ZoneServer says yes when
// the request has the X-Test-Server header.
type routes struct{ mounted map[string]string }

func (r *routes) Admin(p string, _ httpapi.Handler)         { r.mounted[p] = "admin" }
func (r *routes) ServerOrAdmin(p string, _ httpapi.Handler) { r.mounted[p] = "server-or-admin" }
func (r *routes) Open(p string, _ httpapi.Handler)          { r.mounted[p] = "open" }
func (r *routes) Device(p string, _ func(http.ResponseWriter, *http.Request, zone.Device) error) {
	r.mounted[p] = "device"
}
func (r *routes) Peer(p string, _ func(http.ResponseWriter, *http.Request, zone.Server) error) {
	r.mounted[p] = "peer"
}
func (r *routes) ZoneServer(req *http.Request) bool { return req.Header.Get("X-Test-Server") != "" }

type fakeZone struct {
	work  map[string]zone.PrebootWork
	execs []string
}

func (f *fakeZone) Exec(actor, name string, data any) error {
	f.execs = append(f.execs, actor+" "+name)
	if w, ok := data.(zone.PrebootWork); ok && name == zone.CmdPrebootAssign {
		f.work[w.MAC] = w
	}
	return nil
}
func (f *fakeZone) PrebootWork(mac string) (zone.PrebootWork, error) {
	w, ok := f.work[mac]
	if !ok {
		return w, errkind.New(errkind.NotFound, "no preboot work is assigned to %s", mac)
	}
	return w, nil
}
func (f *fakeZone) PrebootWorks() ([]zone.PrebootWork, error) { return nil, nil }
func (f *fakeZone) Device(id string) (zone.Device, error) {
	return zone.Device{}, errkind.New(errkind.NotFound, "device %q not found", id)
}
func (f *fakeZone) ResolveDevice(ref string) (zone.Device, error) { return f.Device(ref) }

func newHandlers(t *testing.T) (*Handlers, *fakeZone, *routes) {
	z := &fakeZone{work: map[string]zone.PrebootWork{}}
	h := &Handlers{Zone: z, Home: t.TempDir()}
	r := &routes{mounted: map[string]string{}}
	h.Register(r)
	return h, z, r
}

func TestRoutesAndWhoMayUseThem(t *testing.T) {
	_, _, r := newHandlers(t)
	want := map[string]string{
		"GET " + api.Prefix + "/preboot/work":               "server-or-admin",
		"PUT " + api.Prefix + "/preboot/work/{mac}":         "admin",
		"DELETE " + api.Prefix + "/preboot/work/{mac}":      "admin",
		"GET " + api.Prefix + "/preboot/work/{mac}":         "server-or-admin",
		"POST " + api.Prefix + "/preboot/work/{mac}/report": "open",
	}
	if len(r.mounted) != len(want) {
		t.Errorf("mounted %v; want %v", r.mounted, want)
	}
	for p, kind := range want {
		if r.mounted[p] != kind {
			t.Errorf("%s mounted as %q; want %q", p, r.mounted[p], kind)
		}
	}
}

func TestOnlyZoneServersReport(t *testing.T) {
	h, z, _ := newHandlers(t)
	req := httptest.NewRequest("POST", "/x", strings.NewReader(`{"status":"running"}`))
	req.SetPathValue("mac", "52:54:00:12:34:56")
	err := h.reportPrebootTask(httptest.NewRecorder(), req, "")
	if errkind.Of(err) != errkind.Auth || !strings.Contains(err.Error(), "only the zone's servers") {
		t.Fatalf("report without a server certificate: %v", err)
	}
	if len(z.execs) != 0 {
		t.Errorf("a refused report ran %v", z.execs)
	}
}

func TestAssign(t *testing.T) {
	h, z, _ := newHandlers(t)
	assign := func(mac, body string) (*httptest.ResponseRecorder, error) {
		req := httptest.NewRequest("PUT", "/x", strings.NewReader(body))
		req.SetPathValue("mac", mac)
		w := httptest.NewRecorder()
		return w, h.assignPrebootWork(w, req, "Administrator")
	}
	for _, tc := range []struct {
		mac, body string
		kind      errkind.Kind
		says      string
	}{
		{"nonsense", `{"action":"menu","menu":"m"}`, errkind.Usage, ""},
		{"52:54:00:12:34:56", `{"action":"reboot"}`, errkind.Usage, "want menu, image or take-image"},
		{"52:54:00:12:34:56", `{"action":"menu","menu":"../x"}`, errkind.Usage, "menu name"},
		{"52:54:00:12:34:56", `{"action":"take-image","image":"i","session":"s","clients":2}`, errkind.Usage, "cannot take one"},
		{"52:54:00:12:34:56", `{"action":"menu","menu":"rescue"}`, errkind.NotFound, "no preboot menu rescue"},
	} {
		if _, err := assign(tc.mac, tc.body); errkind.Of(err) != tc.kind || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("assign %s %s: %v; want kind %d saying %q", tc.mac, tc.body, err, tc.kind, tc.says)
		}
	}
	if len(z.execs) != 0 {
		t.Fatalf("refused assignments ran %v", z.execs)
	}

	menus := conf.Layout{Home: h.Home}.MenuDir()
	os.MkdirAll(menus, 0o755)
	os.WriteFile(filepath.Join(menus, "rescue.ipxe"), []byte("#!ipxe\n"), 0o644)
	w, err := assign("52-54-00-12-34-56", `{"action":"menu","menu":"rescue"}`)
	if err != nil {
		t.Fatal(err)
	}
	var got api.PrebootWork
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.MAC != "52:54:00:12:34:56" || got.Menu != "rescue" || len(z.execs) != 1 || z.execs[0] != "Administrator "+zone.CmdPrebootAssign {
		t.Errorf("assigned %+v with %v", got, z.execs)
	}
}
