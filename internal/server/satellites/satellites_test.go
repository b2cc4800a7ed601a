package satellites

import (
	"net/http"
	"strings"
	"testing"

	"zonekit/internal/api"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// kinds records how each route is mounted.
type kinds map[string]string

func (k kinds) Admin(p string, _ httpapi.Handler)         { k[p] = "admin" }
func (k kinds) ServerOrAdmin(p string, _ httpapi.Handler) { k[p] = "server-or-admin" }
func (k kinds) Open(p string, _ httpapi.Handler)          { k[p] = "open" }
func (k kinds) Device(p string, _ func(http.ResponseWriter, *http.Request, zone.Device) error) {
	k[p] = "device"
}
func (k kinds) Peer(p string, _ func(http.ResponseWriter, *http.Request, zone.Server) error) {
	k[p] = "peer"
}
func (k kinds) ZoneServer(*http.Request) bool { return false }

// Administrators manage the roles; only the satellite device itself
// reads its configuration and has its certificate issued.
func TestRoutesAndWhoMayUseThem(t *testing.T) {
	got := kinds{}
	(&Handlers{}).Register(got)
	want := kinds{
		"GET " + api.Prefix + "/device/satellite":                 "device",
		"POST " + api.Prefix + "/device/satellite/certificate":    "device",
		"GET " + api.Prefix + "/device/satellite/packages":        "device",
		"GET " + api.Prefix + "/satellites":                       "admin",
		"POST " + api.Prefix + "/satellites/{ref}/roles":          "admin",
		"DELETE " + api.Prefix + "/satellites/{ref}/roles/{role}": "admin",
	}
	if len(got) != len(want) {
		t.Errorf("mounted %v; want %v", got, want)
	}
	for p, k := range want {
		if got[p] != k {
			t.Errorf("%s mounted as %q; want %q", p, got[p], k)
		}
	}
}

type records []zone.Device

// SatelliteDevices returns a new slice each time, as the store does.
func (r records) SatelliteDevices() ([]zone.Device, error) {
	return append([]zone.Device(nil), r...), nil
}

// The closest satellites come first (longest shared address prefix),
// then by name; Auth leaves the asking satellite out.
func TestClosestAndAuth(t *testing.T) {
	sat := func(id, name, addr string, roles ...string) zone.Device {
		return zone.Device{ID: id, Name: name, Address: addr, Satellite: &zone.Satellite{Roles: roles,
			ContentURL: "http://" + name + ":8080/content", AuthURL: "https://" + name + ":8443"}}
	}
	z := records{
		sat("1", "far", "192.168.0.1", zone.SatelliteContent, zone.SatelliteAuthentication),
		sat("2", "near", "10.1.2.200", zone.SatelliteContent, zone.SatelliteAuthentication),
		sat("3", "b-same", "10.1.9.9", zone.SatelliteContent),
		sat("4", "a-same", "10.1.9.9", zone.SatelliteContent),
	}
	var names []string
	for _, d := range Closest(z, "10.1.2.3", zone.SatelliteContent) {
		names = append(names, d.Name)
	}
	if want := "near a-same b-same far"; strings.Join(names, " ") != want {
		t.Errorf("Closest: %s; want %s", strings.Join(names, " "), want)
	}
	if got := Content(z, "192.168.0.7"); len(got) != 4 || got[0] != "http://far:8080/content" {
		t.Errorf("Content: %v", got)
	}
	if got := Auth(z, z[1]); len(got) != 1 || got[0] != "https://far:8443" {
		t.Errorf("Auth for the near satellite itself: %v; want only far", got)
	}
}
