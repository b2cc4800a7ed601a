package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func sampleDevices() []Device {
	t := time.Date(2026, 12, 7, 9, 30, 1, 123456789, time.UTC)
	return []Device{
		{ID: "a1", Name: "ws-1.example.com", Kind: "zac", OS: "linux", Registered: t, LastContact: t.Add(time.Hour), Address: "10.0.0.1", CertNotAfter: t.AddDate(10, 0, 0), Groups: []string{}},
		{ID: "b2", Name: "<odd> & \"quoted\" \\ name\t\u2028 é \xff", Kind: "ocs", Registered: t.In(time.FixedZone("X", 3600)), Groups: []string{"g1", "g<2>"}},
		{ID: "c3", Name: "ünïcode", Groups: nil},
		{},
	}
}

func TestAppendDeviceMatchesEncodingJSON(t *testing.T) {
	for _, d := range sampleDevices() {
		want, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendDevice(nil, &d, "", "")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("compact:\n got %s (%v)\nwant %s", got, err, want)
		}
		want, _ = json.MarshalIndent(&d, "  ", "  ")
		got, err = AppendDevice(nil, &d, "  ", "  ")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("indented:\n got %s (%v)\nwant %s", got, err, want)
		}
	}
	bad := Device{Registered: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := AppendDevice(nil, &bad, "", ""); err == nil {
		t.Error("a year out of JSON's range was encoded")
	}
}

func TestDecodeDevicesMatchesEncodingJSON(t *testing.T) {
	page, _ := json.Marshal(sampleDevices())
	for _, in := range []string{string(page), "[]", " [ ] ", "null", `[{"ID":"x"}]`, `[{"id":"a","groups":null}]`, `[{"id":"a\u0041"}]`,
		`[{"id":1}]`, `[{"id":"a"},]`, `[{"id":"a"}] x`, `[{"registered":"2026-13-01T00:00:00Z"}]`, `[{"extra":{"x":[1]}}]`, "", "["} {
		checkDecode(t, []byte(in))
	}
}

func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	var want []Device
	werr := json.Unmarshal(in, &want)
	got, gerr := DecodeDevices(in)
	if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
		t.Fatalf("%q: error %v, encoding/json %v", in, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", in, got, want)
	}
}

func FuzzDecodeDevices(f *testing.F) {
	page, _ := json.Marshal(sampleDevices())
	f.Add(page)
	f.Add([]byte(`[{"id":"a","name":"n","groups":["x"]}]`))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, in) })
}

func FuzzAppendDevice(f *testing.F) {
	f.Add("a", "n<&>\u2028", "g", int64(0), int64(1))
	f.Fuzz(func(t *testing.T, id, name, group string, sec, nsec int64) {
		d := Device{ID: id, Name: name, Registered: time.Unix(sec, nsec).UTC(), LastContact: time.Unix(nsec, sec), Groups: []string{group}}
		want, werr := json.MarshalIndent(&d, "  ", "  ")
		got, gerr := AppendDevice(nil, &d, "  ", "  ")
		if (werr == nil) != (gerr == nil) || werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v), want %s (%v)", got, gerr, want, werr)
		}
	})
}

// benchPage is a page of 10,000 devices as the server sends it.
func benchPage(b *testing.B) []Device {
	b.Helper()
	t := time.Date(2026, 12, 7, 9, 30, 1, 123456789, time.UTC)
	devs := make([]Device, 10000)
	for i := range devs {
		devs[i] = Device{ID: fmt.Sprintf("%032x", i), Name: fmt.Sprintf("ws-%07d.branch%02d.example.com", i, i%100), Kind: "zac", OS: "linux",
			Registered: t, LastContact: t.Add(time.Hour), Address: "10.80.188.121", CertNotAfter: t.AddDate(10, 0, 0), Groups: []string{}}
	}
	return devs
}

// The device list's codecs against encoding/json on a page of 10,000.
func BenchmarkDevicePage(b *testing.B) {
	devs := benchPage(b)
	page, _ := json.Marshal(devs)
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if _, err := DecodeDevices(page); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			var out []Device
			if err := json.Unmarshal(page, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-indented", func(b *testing.B) {
		buf := make([]byte, 0, 1<<20)
		for b.Loop() {
			for i := range devs {
				buf, _ = AppendDevice(buf[:0], &devs[i], "  ", "  ")
			}
		}
	})
	b.Run("encode-indented-encoding-json", func(b *testing.B) {
		for b.Loop() {
			for i := range devs {
				if _, err := json.MarshalIndent(&devs[i], "  ", "  "); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
