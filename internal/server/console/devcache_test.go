package console

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"zonekit/internal/zone"
)

// records is a store of device records in id order, counting reads.
type records struct{ raw map[string][]byte }

func (r *records) DeviceRecords(fn func(id, raw []byte) error) error {
	ids := make([]string, 0, len(r.raw))
	for id := range r.raw {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := fn([]byte(id), r.raw[id]); err != nil {
			return err
		}
	}
	return nil
}

func (r *records) put(d zone.Device) {
	b, _ := json.Marshal(d)
	r.raw[d.ID] = b
}

func names(devs []zone.Device) string {
	var out []string
	for _, d := range devs {
		out = append(out, d.ID+"="+d.Name)
	}
	return strings.Join(out, " ")
}

// TestDeviceCache: the cache answers what the records say after every
// kind of change (first read, nothing, a change, an addition in the
// middle and at the end, removals in the middle and at the end), and a
// list it returned earlier is never modified by a later read.
func TestDeviceCache(t *testing.T) {
	r := &records{raw: map[string][]byte{}}
	for _, id := range []string{"d1", "d3", "d5"} {
		r.put(zone.Device{ID: id, Name: "pc-" + id})
	}
	c := newDeviceCache()
	check := func(want string) []zone.Device {
		t.Helper()
		got, err := c.get(r)
		if err != nil {
			t.Fatal(err)
		}
		if names(got) != want {
			t.Fatalf("devices %q, want %q", names(got), want)
		}
		return got
	}
	first := check("d1=pc-d1 d3=pc-d3 d5=pc-d5")
	if again := check("d1=pc-d1 d3=pc-d3 d5=pc-d5"); &again[0] != &first[0] {
		t.Error("nothing changed, yet the list was built again")
	}
	r.put(zone.Device{ID: "d3", Name: "renamed"})
	check("d1=pc-d1 d3=renamed d5=pc-d5")
	r.put(zone.Device{ID: "d2", Name: "pc-d2"})
	r.put(zone.Device{ID: "d9", Name: "pc-d9"})
	check("d1=pc-d1 d2=pc-d2 d3=renamed d5=pc-d5 d9=pc-d9")
	delete(r.raw, "d2")
	check("d1=pc-d1 d3=renamed d5=pc-d5 d9=pc-d9")
	delete(r.raw, "d9")
	check("d1=pc-d1 d3=renamed d5=pc-d5")
	delete(r.raw, "d1")
	r.put(zone.Device{ID: "d0", Name: "pc-d0"})
	check("d0=pc-d0 d3=renamed d5=pc-d5")
	for id := range r.raw {
		delete(r.raw, id)
	}
	check("")
	if names(first) != "d1=pc-d1 d3=pc-d3 d5=pc-d5" {
		t.Errorf("an earlier answer changed: %q", names(first))
	}
	r.raw["bad"] = []byte("{")
	if _, err := c.get(r); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt record: %v", err)
	}
}

// sortedRecords hands out records already in id order, as bbolt does.
type sortedRecords struct{ ids, raw [][]byte }

func (r *sortedRecords) DeviceRecords(fn func(id, raw []byte) error) error {
	for i := range r.ids {
		if err := fn(r.ids[i], r.raw[i]); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkDeviceCacheCold100k: the console's first request after a start
// decodes every device of a 100,000-device zone.
func BenchmarkDeviceCacheCold100k(b *testing.B) {
	var src sortedRecords
	t := time.Date(2026, 12, 7, 9, 30, 1, 123456789, time.UTC)
	for i := range 100000 {
		d := zone.Device{ID: fmt.Sprintf("%032x", i), Name: fmt.Sprintf("ws-%07d.example.com", i), OS: "windows", CertSerial: "1234567890",
			CertNotAfter: t.AddDate(10, 0, 0), Registered: t, LastContact: t, Address: "10.80.188.121"}
		raw, _ := json.Marshal(d)
		src.ids, src.raw = append(src.ids, []byte(d.ID)), append(src.raw, raw)
	}
	for b.Loop() {
		if devs, err := newDeviceCache().get(&src); err != nil || len(devs) != 100000 {
			b.Fatal(len(devs), err)
		}
	}
}
