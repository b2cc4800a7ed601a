package spkvalues

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

type fakeZone struct {
	set map[string]zone.SPKValue
}

func (f *fakeZone) AllSPKValues() ([]zone.SPKValues, error) {
	return []zone.SPKValues{{Scope: zone.ScopeZone, Values: f.set}}, nil
}
func (f *fakeZone) SetSPKValues(actor, scope, target string, set map[string]zone.SPKValue, unset []string) error {
	for k, v := range set {
		f.set[k] = v
	}
	return nil
}
func (f *fakeZone) DeviceSPKValues(string) (map[string]zone.SPKValue, error) { return f.set, nil }
func (f *fakeZone) ResolveDevice(ref string) (zone.Device, error) {
	return zone.Device{}, errkind.New(errkind.NotFound, "device %q not found", ref)
}

// prefixSealer stands for the zone's SPK key.
type prefixSealer struct{}

func (prefixSealer) Seal(_ context.Context, _, v string) (string, error) { return "sealed:" + v, nil }
func (prefixSealer) Unseal(_ context.Context, _, s string) (string, error) {
	return strings.TrimPrefix(s, "sealed:"), nil
}

func change(h *Handlers, body string) error {
	return h.changeSPKValues(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", strings.NewReader(body)), "Administrator")
}

func TestSecretsAreSealedMaskedAndOpenedForDevices(t *testing.T) {
	z := &fakeZone{set: map[string]zone.SPKValue{}}
	h := &Handlers{Zone: z, Sealer: prefixSealer{}}
	if err := change(h, `{"scope":"zone"}`); errkind.Of(err) != errkind.Usage {
		t.Errorf("empty change: %v; want a usage error", err)
	}
	if err := change(h, `{"scope":"zone","set":{"bad-name":{"value":"x"}}}`); errkind.Of(err) != errkind.Usage || !strings.Contains(err.Error(), "not a variable name") {
		t.Errorf("bad name: %v", err)
	}
	if err := change(h, `{"scope":"device","target":"pc9","set":{"A":{"value":"x"}}}`); errkind.Of(err) != errkind.NotFound {
		t.Errorf("unknown device: %v", err)
	}
	if err := change(h, `{"scope":"zone","set":{"DB_PASSWORD":{"value":"hunter2","secret":true},"PORT":{"value":"5432"}}}`); err != nil {
		t.Fatal(err)
	}
	if got := z.set["DB_PASSWORD"]; got.Value != "" || got.Sealed != "sealed:hunter2" || !got.Secret {
		t.Errorf("stored secret %+v; want it sealed, no clear value", got)
	}

	w := httptest.NewRecorder()
	if err := h.listSPKValues(w, httptest.NewRequest("GET", "/x", nil), "Administrator"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(w.Body.String(), "hunter2") || !strings.Contains(w.Body.String(), "********") {
		t.Errorf("administrators' listing shows the secret: %s", w.Body)
	}

	w = httptest.NewRecorder()
	if err := h.deviceSPKValues(w, httptest.NewRequest("GET", "/x", nil), zone.Device{ID: "d1"}); err != nil {
		t.Fatal(err)
	}
	var got api.DeviceSPKValues
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Values["DB_PASSWORD"] != "hunter2" || got.Values["PORT"] != "5432" || len(got.Secret) != 1 || got.Secret[0] != "DB_PASSWORD" {
		t.Errorf("device read %+v", got)
	}
}
