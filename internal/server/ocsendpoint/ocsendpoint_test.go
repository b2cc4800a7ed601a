package ocsendpoint

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zonekit/internal/background"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeZone holds devices and records the commands the endpoint sends.
type fakeZone struct {
	mu       sync.Mutex
	devices  map[string]zone.Device
	inv      map[string]zone.Inventory
	deps     []zone.Deployment
	pkgs     []zone.Package
	commands []string
}

func newFake() *fakeZone {
	return &fakeZone{devices: map[string]zone.Device{}, inv: map[string]zone.Inventory{}}
}

func (f *fakeZone) Now() time.Time { return t0 }
func (f *fakeZone) Device(id string) (zone.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[id]
	if !ok {
		return d, errkind.New(errkind.NotFound, "device %q not found", id)
	}
	return d, nil
}
func (f *fakeZone) OCSContact(dev zone.Device) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devices[dev.ID] = dev
	return nil
}
func (f *fakeZone) SetInventory(id string, inv zone.Inventory) error {
	f.inv[id] = inv
	return nil
}
func (f *fakeZone) Inventory(id string) (*zone.Inventory, error) {
	if inv, ok := f.inv[id]; ok {
		return &inv, nil
	}
	return nil, nil
}
func (f *fakeZone) DownloadConfig() (zone.DownloadConfig, error) {
	return zone.DownloadConfig{Enabled: true}, nil
}
func (f *fakeZone) DevicePackages(string) ([]zone.Deployment, []zone.Package, error) {
	return f.deps, f.pkgs, nil
}
func (f *fakeZone) ExecBatch(actor, name string, data any) error {
	f.commands = append(f.commands, actor+" "+name)
	return nil
}

func zlibBody(s string) io.Reader {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return &b
}

const agent = "pc1-2026-01-01-00-00-00"

func post(t *testing.T, h http.Handler, query, extra string, mod func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/ocsinventory", zlibBody(`<?xml version="1.0" encoding="UTF-8"?><REQUEST><DEVICEID>`+agent+`</DEVICEID><QUERY>`+query+`</QUERY>`+extra+`</REQUEST>`))
	r.RemoteAddr = "192.0.2.7:40000"
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestRefusals(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	_, lan, _ := net.ParseCIDR("192.0.2.0/24")
	_, other, _ := net.ParseCIDR("198.51.100.0/24")
	for _, tc := range []struct {
		name string
		cfg  config.OCS
		mod  func(*http.Request)
		code int
		says string
	}{
		{"off", config.OCS{}, nil, 404, "switched off"},
		{"get", config.OCS{Enabled: true}, func(r *http.Request) { r.Method = http.MethodGet }, 405, "POST"},
		{"network", config.OCS{Enabled: true, Networks: []*net.IPNet{other}}, nil, 403, "ocs.networks"},
		{"client cert over plain HTTP", config.OCS{Enabled: true, RequireClientCert: true}, nil, 403, "needs HTTPS"},
		{"no credentials", config.OCS{Enabled: true, Networks: []*net.IPNet{lan}, User: "ocs", PasswordFile: pw}, nil, 401, "credentials required"},
		{"wrong password", config.OCS{Enabled: true, User: "ocs", PasswordFile: pw}, func(r *http.Request) { r.SetBasicAuth("ocs", "guess") }, 401, "credentials required"},
		{"unknown query", config.OCS{Enabled: true, User: "ocs", PasswordFile: pw}, func(r *http.Request) { r.SetBasicAuth("ocs", "s3cret") }, 400, "unsupported OCS query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := post(t, Handler(Options{Config: tc.cfg, Zone: newFake()}), "FROBNICATE", "", tc.mod)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.says) {
				t.Errorf("got %d %q; want %d saying %q", w.Code, w.Body.String(), tc.code, tc.says)
			}
			if tc.code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
}

func TestPrologMakesTheAgentADevice(t *testing.T) {
	z := newFake()
	z.pkgs = []zone.Package{{ID: "p1", Activation: &zone.Activation{InfoLocation: "srv/info", PackLocation: "srv/pack"}}}
	z.deps = []zone.Deployment{{Package: "p1", Device: zone.OCSDeviceID(agent), Status: zone.StatusWaiting}}
	h := Handler(Options{Config: config.OCS{Enabled: true, PrologFreq: 10, InventoryEvery: 24}, Zone: z, Now: func() time.Time { return t0 }})
	w := post(t, h, "PROLOG", "", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-compress" {
		t.Fatalf("PROLOG: %d %q", w.Code, w.Body.String())
	}
	dev, err := z.Device(zone.OCSDeviceID(agent))
	if err != nil || dev.Kind != zone.KindOCS || dev.Address != "192.0.2.7" {
		t.Fatalf("device after PROLOG: %+v, %v", dev, err)
	}
	if len(z.commands) != 1 || z.commands[0] != "ocs:"+dev.ID+" "+zone.CmdPackageNotify {
		t.Errorf("commands = %q; want one package notification", z.commands)
	}
	zr, err := zlib.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(zr)
	if !strings.Contains(string(reply), "p1") || !strings.Contains(string(reply), "<RESPONSE>SEND</RESPONSE>") {
		t.Errorf("PROLOG reply offers no package or asks no inventory: %s", reply)
	}
}

// blockingZone holds every later contact's write until released, counting
// how many are in flight at once.
type blockingZone struct {
	*fakeZone
	release        chan struct{}
	inFlight, peak atomic.Int32
	written        atomic.Int32
}

func (b *blockingZone) OCSContact(dev zone.Device) error {
	if _, err := b.fakeZone.Device(dev.ID); err != nil {
		return b.fakeZone.OCSContact(dev) // first contact: in the request
	}
	n := b.inFlight.Add(1)
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	<-b.release
	b.inFlight.Add(-1)
	b.written.Add(1)
	return nil
}

// TestContactsBounded: a burst of a known agent's contacts, each recorded
// in the background, runs at most the group's limit of writes at once
// (the rest go unrecorded rather than piling up goroutines), every
// request is answered without waiting for its write, and closing the
// group at shutdown waits for the writes in flight.
func TestContactsBounded(t *testing.T) {
	z := &blockingZone{fakeZone: newFake(), release: make(chan struct{})}
	bg := background.New(3)
	h := Handler(Options{Config: config.OCS{Enabled: true, PrologFreq: 10, InventoryEvery: 24}, Zone: z, Now: func() time.Time { return t0 }, Background: bg})
	if w := post(t, h, "PROLOG", "", nil); w.Code != 200 { // creates the device
		t.Fatalf("first PROLOG: %d %s", w.Code, w.Body.String())
	}
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		if w := post(t, h, "PROLOG", "", nil); w.Code != 200 {
			t.Fatalf("PROLOG %d: %d %s", i, w.Code, w.Body.String())
		}
	}
	if g := runtime.NumGoroutine() - before; g > 3 {
		t.Errorf("%d more goroutines after 50 contacts; want at most 3", g)
	}
	closed := make(chan error, 1)
	go func() { closed <- bg.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with writes in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(z.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if p, n := z.peak.Load(), z.written.Load(); p != 3 || n != 3 {
		t.Errorf("peak %d writes at once, %d written; want 3 and 3", p, n)
	}
	// After shutdown a contact is answered and not recorded.
	if w := post(t, h, "PROLOG", "", nil); w.Code != 200 || z.written.Load() != 3 {
		t.Errorf("PROLOG after Close: %d, %d written", w.Code, z.written.Load())
	}
}
