package zone

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func checkDecodeDevice(t *testing.T, in []byte) {
	t.Helper()
	var want Device
	werr := json.Unmarshal(in, &want)
	var got Device
	gerr := DecodeDevice(in, &got)
	if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
		t.Fatalf("%q: error %v, encoding/json %v", in, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", in, got, want)
	}
}

func TestDecodeDeviceMatchesEncodingJSON(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 5, time.UTC)
	for _, d := range []Device{
		{ID: "a", Name: "ws-1", OS: "linux", CertSerial: "12", CertNotAfter: now, Registered: now, LastContact: now, Address: "10.0.0.1", RegKey: "k", Kind: "ocs"},
		{ID: "b", Name: "<é> \"q\" \\ \u2028"},
		{ID: "s", Satellite: &Satellite{}},
		{},
	} {
		b, _ := json.Marshal(d)
		checkDecodeDevice(t, b)
	}
	for _, in := range []string{"{}", "null", `{"ID":"x"}`, `{"id":1}`, `{"id":"a",}`, `{"id":"a"} x`, `{"id":"a","id":"b"}`,
		`{"registered":"bad"}`, `{"unknown":[1,{"x":2}]}`, "", "{", ` { "id" : "a" } `} {
		checkDecodeDevice(t, []byte(in))
	}
}

func FuzzDecodeDevice(f *testing.F) {
	f.Add([]byte(`{"id":"a","name":"n","cert_not_after":"2026-01-01T00:00:00Z","kind":"ocs"}`))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecodeDevice(t, in) })
}

// A stored record decoded as the device list and the console do, against
// encoding/json.
func BenchmarkDecodeDevice(b *testing.B) {
	t := time.Date(2026, 12, 7, 9, 30, 1, 123456789, time.UTC)
	raw, _ := json.Marshal(Device{ID: "c4f5a58656eef5109dcec3ad077dec6c", Name: "ws-0000001.branch01.example.com", OS: "linux", CertSerial: "1234567890",
		CertNotAfter: t.AddDate(10, 0, 0), Registered: t, LastContact: t, Address: "10.80.188.121"})
	b.Run("jsonscan", func(b *testing.B) {
		for b.Loop() {
			var d Device
			if err := DecodeDevice(raw, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var d Device
			if err := json.Unmarshal(raw, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
