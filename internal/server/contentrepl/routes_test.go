package contentrepl

import (
	"net/http"
	"testing"

	"zonekit/internal/api"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

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

// Images and damage reports are for the zone's servers only (their
// server certificate), never for agents or administrators.
func TestRoutesAndWhoMayUseThem(t *testing.T) {
	got := kinds{}
	New(&Content{}).Register(got)
	want := kinds{
		"GET " + api.Prefix + "/content-replication":          "admin",
		"GET " + api.Prefix + "/content-replication/schedule": "admin",
		"PUT " + api.Prefix + "/content-replication/schedule": "admin",
		"POST " + api.Prefix + "/content-replication/now":     "admin",
		"GET " + api.Prefix + "/closest-server-rules":         "admin",
		"PUT " + api.Prefix + "/closest-server-rules":         "admin",
		"DELETE " + api.Prefix + "/closest-server-rules":      "admin",
		"POST " + api.Prefix + "/content/scrub":               "admin",
		"GET " + api.Prefix + "/replication/images":           "peer",
		"GET " + api.Prefix + "/replication/images/{name}":    "peer",
		"POST " + api.Prefix + "/cluster/content/suspect":     "peer",
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

func TestCheckScrubItem(t *testing.T) {
	for item, ok := range map[string]bool{"1800000100": true, "image:win11.zmg": true, "image:win11.zmg.sha256": false,
		"image:../x": false, "../etc": false, "": false} {
		if err := checkScrubItem(item); (err == nil) != ok {
			t.Errorf("checkScrubItem(%q) = %v; want ok=%v", item, err, ok)
		}
	}
}
