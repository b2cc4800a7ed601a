package certificates

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"zonekit/internal/api"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// routes records how each pattern is mounted, and the open handlers.
type routes struct {
	kind map[string]string
	open map[string]httpapi.Handler
}

func (r *routes) Admin(p string, _ httpapi.Handler)         { r.kind[p] = "admin" }
func (r *routes) ServerOrAdmin(p string, _ httpapi.Handler) { r.kind[p] = "server-or-admin" }
func (r *routes) Open(p string, h httpapi.Handler)          { r.kind[p], r.open[p] = "open", h }
func (r *routes) Device(p string, _ func(http.ResponseWriter, *http.Request, zone.Device) error) {
	r.kind[p] = "device"
}
func (r *routes) Peer(p string, _ func(http.ResponseWriter, *http.Request, zone.Server) error) {
	r.kind[p] = "peer"
}
func (r *routes) ZoneServer(*http.Request) bool { return false }

type theZone = Zone

// fakeZone holds a zone record and a change under way; the methods the
// test does not reach are nil.
type fakeZone struct {
	theZone
	z  zone.Zone
	rm *zone.Remint
}

func (f fakeZone) Zone() (zone.Zone, error)      { return f.z, nil }
func (f fakeZone) Remint() (*zone.Remint, error) { return f.rm, nil }

type trust struct{ served [][]byte }

func (t trust) ZoneCA() *x509.Certificate { return nil }
func (t trust) TrustedCAs() []string      { return nil }
func (t trust) Served() [][]byte          { return t.served }

// Only /trust is open; re-certifying a device, checking a change and
// the CA's routes are the administrators', a renewal the device's own.
func TestRegister(t *testing.T) {
	r := &routes{kind: map[string]string{}, open: map[string]httpapi.Handler{}}
	(&Handlers{}).Register(r)
	want := map[string]string{
		"GET " + api.Prefix + "/certificate-changes/check":           "admin",
		"POST " + api.Prefix + "/device/retrust":                     "admin",
		"GET " + api.Prefix + "/trust":                               "open",
		"POST " + api.Prefix + "/device/certificate":                 "device",
		"GET " + api.Prefix + "/certificate-authority":               "admin",
		"GET " + api.Prefix + "/server-certificates":                 "admin",
		"POST " + api.Prefix + "/certificate-authority/export":       "admin",
		"POST " + api.Prefix + "/certificate-authority/import":       "admin",
		"POST " + api.Prefix + "/certificate-authority/role-enable":  "admin",
		"POST " + api.Prefix + "/certificate-authority/role-disable": "admin",
	}
	if len(r.kind) != len(want) {
		t.Fatalf("mounted %v", r.kind)
	}
	for p, k := range want {
		if r.kind[p] != k {
			t.Errorf("%s mounted %q, want %q", p, r.kind[p], k)
		}
	}
}

// /trust gives the zone CA, its cross certificates with the change's, the
// future CA and the chain this server serves.
func TestTrust(t *testing.T) {
	ca, cross, future := "CA-PEM", "CROSS-1", "FUTURE-PEM"
	z := fakeZone{z: zone.Zone{Name: "Acme", CACertPEM: ca, CrossCerts: []string{cross}},
		rm: &zone.Remint{FutureCA: future, CrossCert: "CROSS-2"}}
	r := &routes{kind: map[string]string{}, open: map[string]httpapi.Handler{}}
	(&Handlers{Zone: z, Trust: trust{}}).Register(r)
	w := httptest.NewRecorder()
	if err := r.open["GET "+api.Prefix+"/trust"](w, httptest.NewRequest("GET", api.Prefix+"/trust", nil), ""); err != nil {
		t.Fatal(err)
	}
	var got api.Trust
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Zone != "Acme" || got.CAPEM != ca || got.FuturePEM != future || len(got.CrossPEMs) != 2 || got.CrossPEMs[1] != "CROSS-2" {
		t.Fatalf("trust %+v", got)
	}
	if len(z.z.CrossCerts) != 1 {
		t.Fatal("the zone record's cross certificates were changed")
	}
}
