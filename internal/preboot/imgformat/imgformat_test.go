package imgformat

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	m := Manifest{DiskBytes: 1 << 20, Layout: "label: dos\n", Partitions: []Partition{{Number: 1, Start: 2048 * 512, Size: 300000, FS: "ext4", Tool: ToolPartclone}, {Number: 2, Size: 300000, Tool: ToolRaw}}}
	if err := WriteHeader(&b, m); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 40<<20) // past one frame
	rand.Read(data)
	fw := NewFrameWriter(&b)
	fw.Write(data)
	fw.Close()
	// A raw partition: zeros with two islands of data.
	part := make([]byte, 300000)
	copy(part[100:], "hello")
	copy(part[200000:], "world")
	fw = NewFrameWriter(&b)
	kept, err := WriteRaw(fw, bytes.NewReader(part), int64(len(part)))
	if err != nil || kept >= int64(len(part)) {
		t.Fatalf("raw: kept %d of %d: %v", kept, len(part), err)
	}
	fw.Close()

	got, err := ReadHeader(&b)
	if err != nil || got.Layout != m.Layout || len(got.Partitions) != 2 {
		t.Fatalf("manifest %+v %v", got, err)
	}
	back, err := io.ReadAll(NewFrameReader(&b))
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("frames: %d bytes, %v", len(back), err)
	}
	out := filepath.Join(t.TempDir(), "p2")
	os.WriteFile(out, bytes.Repeat([]byte{0xff}, len(part)), 0o644) // not blank: zeros must be written
	f, _ := os.OpenFile(out, os.O_RDWR, 0)
	if err := ReadRaw(f, NewFrameReader(&b), int64(len(part))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if restored, _ := os.ReadFile(out); !bytes.Equal(restored, part) {
		t.Fatal("raw partition differs")
	}
}

func TestBadInput(t *testing.T) {
	for _, in := range []string{"", "ZONEKIT-IMAGE 2\n", Magic + "\xff\xff\xff\xff", Magic + "\x00\x00\x00\x02{}"} {
		if _, err := ReadHeader(bytes.NewReader([]byte(in))); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if _, err := io.ReadAll(NewFrameReader(bytes.NewReader([]byte{0, 0, 0, 9, 'a'}))); err == nil {
		t.Error("cut frame accepted")
	}
}

func FuzzReadHeader(f *testing.F) {
	var b bytes.Buffer
	WriteHeader(&b, Manifest{Layout: "x", Partitions: []Partition{{Number: 1, Tool: ToolRaw}}})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		if _, err := ReadHeader(r); err == nil {
			io.Copy(io.Discard, NewFrameReader(r))
		}
	})
}
