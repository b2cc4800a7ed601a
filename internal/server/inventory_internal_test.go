package server

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"zonekit/internal/zone"
)

// The inventory answer keeps the stored record's JSON: a field added to
// zone.Inventory without api.Inventory fails here.
func TestInventoryWireFormat(t *testing.T) {
	inv := zone.Inventory{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), AgentID: "pc1-2026", Hostname: "pc1", OS: "Debian",
		OSVersion: "13", CPU: "x86_64", CPUs: 2, MemoryMB: 2048, IP: "192.0.2.7", MACs: []string{"52:54:00:12:34:56"},
		Software: []zone.InventorySoftware{{Name: "bash", Version: "5.2"}}}
	if n := reflect.TypeOf(inv).NumField(); n != 11 {
		t.Fatalf("zone.Inventory has %d fields: fill every one above and in apiInventory", n)
	}
	stored, _ := json.Marshal(inv)
	wire, _ := json.Marshal(apiInventory(inv))
	if string(stored) != string(wire) {
		t.Errorf("wire form differs from the stored one:\n%s\n%s", wire, stored)
	}
	empty, _ := json.Marshal(apiInventory(zone.Inventory{}))
	storedEmpty, _ := json.Marshal(zone.Inventory{})
	if string(empty) != string(storedEmpty) {
		t.Errorf("empty inventory: %s; want %s", empty, storedEmpty)
	}
}
