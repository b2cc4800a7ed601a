package replica

import (
	"net/http"
	"strings"
	"testing"

	"zonekit/internal/store"
	"zonekit/internal/version"
)

// Streams from another zone, another incarnation (not newer, or while this
// server holds a log) or another release series are refused.
func TestAdmit(t *testing.T) {
	n := &Node{opts: Options{ZoneID: "zone-a", Advertise: "127.0.0.1:1"}}
	n.inc.Store(store.Incarnation{Gen: 2, ID: "aaaa"})
	hdr := func(zone, inc, ver string) http.Header {
		h := http.Header{}
		h.Set(HeaderZone, zone)
		h.Set(HeaderIncarnation, inc)
		h.Set(HeaderVersion, ver)
		h.Set(HeaderFrom, "127.0.0.2:1")
		return h
	}
	for _, tc := range []struct {
		name       string
		h          http.Header
		code       int
		msgContain string
	}{
		{"same", hdr("zone-a", "2-aaaa", version.String()), 0, ""},
		{"other zone", hdr("zone-b", "2-aaaa", version.String()), http.StatusForbidden, "belongs to zone zone-a, not zone-b"},
		{"other series", hdr("zone-a", "2-aaaa", "9.0.0"), http.StatusConflict, "cannot share a zone store"},
		{"older incarnation", hdr("zone-a", "1-bbbb", version.String()), http.StatusConflict, "incarnation"},
		{"twin incarnation", hdr("zone-a", "2-cccc", version.String()), http.StatusConflict, "incarnation"},
		{"malformed", hdr("zone-a", "x", version.String()), http.StatusBadRequest, "malformed"},
		{"no headers, named log", http.Header{}, http.StatusForbidden, "not "},
	} {
		code, msg := n.admit(tc.h)
		if code != tc.code || !strings.Contains(msg, tc.msgContain) {
			t.Errorf("%s: admit = %d %q, want %d containing %q", tc.name, code, msg, tc.code, tc.msgContain)
		}
	}
}

// A peer from before incarnations (no headers) is taken only while this
// store follows the unnamed log too: a rolling upgrade.
func TestAdmitLegacyPeer(t *testing.T) {
	n := &Node{opts: Options{ZoneID: "zone-a"}}
	n.inc.Store(store.Incarnation{})
	if code, msg := n.admit(http.Header{}); code != 0 {
		t.Errorf("legacy peer refused: %d %s", code, msg)
	}
}

func TestIncarnationRoundTrip(t *testing.T) {
	for _, s := range []string{"", "1-abcd", "42-0011223344556677"} {
		inc, err := store.ParseIncarnation(s)
		if err != nil || inc.String() != s {
			t.Errorf("ParseIncarnation(%q) = %v, %v", s, inc, err)
		}
	}
	for _, s := range []string{"x", "1-", "-a", "a-b"} {
		if _, err := store.ParseIncarnation(s); err == nil {
			t.Errorf("ParseIncarnation(%q) accepted", s)
		}
	}
}

// Peers' incarnation headers are parsed before anything else is checked.
func FuzzParseIncarnation(f *testing.F) {
	for _, s := range []string{"", "1-abcd", "18446744073709551615-x", "-", "1--", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inc, err := store.ParseIncarnation(s)
		if err != nil {
			return
		}
		back, err := store.ParseIncarnation(inc.String())
		if err != nil || back != inc {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, inc, inc.String(), back, err)
		}
	})
}
