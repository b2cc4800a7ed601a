package cluster

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"zonekit/internal/api"
	"zonekit/internal/config"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

type theZone = Zone

// fakeZone answers what MayBootstrap reads: the replication state and
// the servers.
type fakeZone struct {
	theZone // the methods MayBootstrap does not call are nil
	inc     store.Incarnation
	applied uint64
	servers []zone.Server
}

func (f *fakeZone) ReplicationState() (store.Incarnation, uint64, error) {
	return f.inc, f.applied, nil
}
func (f *fakeZone) Servers() ([]zone.Server, error) { return f.servers, nil }

// A server starts a cluster of its own only when told so, or at the
// first start of a new zone that lists no other server: never a store
// that replicated before, and never one told to join.
func TestMayBootstrap(t *testing.T) {
	self := zone.Server{ID: "a", Name: "a.example", Port: 443}
	other := zone.Server{ID: "b", Name: "b.example", Port: 443}
	for _, tc := range []struct {
		name   string
		cfg    func(*config.Server)
		marker bool
		z      fakeZone
		want   bool
	}{
		{name: "new zone", z: fakeZone{servers: []zone.Server{self}}, want: true},
		{name: "new zone told to join", cfg: func(c *config.Server) { c.Cluster.Join = "https://b.example:443" }, z: fakeZone{servers: []zone.Server{self}}},
		{name: "other server listed", z: fakeZone{servers: []zone.Server{self, other}}},
		{name: "replicated before", z: fakeZone{applied: 7, servers: []zone.Server{self}}},
		{name: "older incarnation", z: fakeZone{inc: store.Incarnation{Gen: 1, ID: "x"}, servers: []zone.Server{self}}},
		{name: "bootstrap ordered", cfg: func(c *config.Server) { c.Cluster.Bootstrap = true }, z: fakeZone{applied: 7, servers: []zone.Server{self, other}}, want: true},
		{name: "recover marker", marker: true, z: fakeZone{applied: 7, servers: []zone.Server{self, other}}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths := config.Paths{Home: t.TempDir()}
			if tc.marker {
				if err := os.MkdirAll(filepath.Dir(paths.RecoverMarker()), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(paths.RecoverMarker(), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var cfg config.Server
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			z := tc.z
			cl := &Cluster{Zone: &z, Self: self, Config: cfg, Paths: paths}
			if got := cl.MayBootstrap(); got != tc.want {
				t.Fatalf("MayBootstrap = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAdvertise(t *testing.T) {
	self := zone.Server{Name: "a.example"}
	for _, tc := range []struct {
		cfg  config.Server
		want string
	}{
		{config.Server{Port: 443}, "a.example:443"},
		{config.Server{Address: "0.0.0.0", Port: 8443}, "a.example:8443"},
		{config.Server{Address: "10.0.0.1", Port: 443}, "10.0.0.1:443"},
		{config.Server{Address: "10.0.0.1", Port: 443, Cluster: config.Cluster{Advertise: "lb.example:9443"}}, "lb.example:9443"},
	} {
		cl := &Cluster{Self: self, Config: tc.cfg}
		if got := cl.Advertise(); got != tc.want {
			t.Errorf("%+v: Advertise = %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

// routes records how each pattern is mounted.
type routes map[string]string

func (r routes) Admin(p string, _ httpapi.Handler)         { r[p] = "admin" }
func (r routes) ServerOrAdmin(p string, _ httpapi.Handler) { r[p] = "server-or-admin" }
func (r routes) Open(p string, _ httpapi.Handler)          { r[p] = "open" }
func (r routes) Device(p string, _ func(http.ResponseWriter, *http.Request, zone.Device) error) {
	r[p] = "device"
}
func (r routes) Peer(p string, _ func(http.ResponseWriter, *http.Request, zone.Server) error) {
	r[p] = "peer"
}
func (r routes) ZoneServer(*http.Request) bool { return false }

// Writes and membership are the zone's servers' alone; the server
// routes are the administrators'.
func TestRegister(t *testing.T) {
	r := routes{}
	(&Cluster{}).Register(r)
	for p, want := range map[string]string{
		"POST " + api.Prefix + "/cluster/apply":          "peer",
		"POST " + api.Prefix + "/cluster/members":        "peer",
		"POST " + api.Prefix + "/cluster/members/remove": "peer",
		"GET " + api.Prefix + "/cluster/status":          "peer",
		"GET " + api.Prefix + "/cluster/snapshot":        "peer",
		"POST " + api.Prefix + "/cluster/leader":         "peer",
		"POST " + api.Prefix + "/cluster/join":           "admin",
		"GET " + api.Prefix + "/cluster/store":           "admin",
		"DELETE " + api.Prefix + "/servers/{name}":       "admin",
		"POST " + api.Prefix + "/servers/{name}/address": "admin",
		"POST " + api.Prefix + "/servers/{name}/leader":  "admin",
	} {
		if r[p] != want {
			t.Errorf("%s mounted %q, want %q", p, r[p], want)
		}
	}
	if len(r) != 11 {
		t.Errorf("%d routes mounted, want 11: %v", len(r), r)
	}
}

// A server that does not replicate is never stale.
func TestStaleSinceWithoutReplica(t *testing.T) {
	if s := (&Cluster{}).StaleSince(); s != "" {
		t.Fatalf("StaleSince without replication = %q", s)
	}
}

func TestJoinAddress(t *testing.T) {
	if a, err := joinAddress("https://b.example:8443"); err != nil || a != "b.example:8443" {
		t.Errorf("joinAddress = %q, %v", a, err)
	}
	for _, bad := range []string{"http://b.example:8443", "https://b.example", "b.example:8443"} {
		if _, err := joinAddress(bad); err == nil {
			t.Errorf("joinAddress(%q) accepted", bad)
		}
	}
}
