package backup

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// The frames written in parallel read back as one stream, in order.
func TestFrameWriterRoundTrip(t *testing.T) {
	data := append(randBytes(3*frameSize+12345), bytes.Repeat([]byte("zone acme "), frameSize/5)...)
	var out bytes.Buffer
	w, err := newFrameWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes cross frame boundaries.
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 777777)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := newDecoder(&out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(data))
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

// A failure of the destination reaches the writer, and abandoning a
// compression ends its goroutines.
func TestFrameWriterErrors(t *testing.T) {
	w, err := newFrameWriter(&failingWriter{after: 1})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(frameSize)
	var werr error
	for range 20 {
		if _, werr = w.Write(data); werr != nil {
			break
		}
	}
	if cerr := w.Close(); werr == nil && cerr == nil {
		t.Fatal("a failing destination went unnoticed")
	}
	w2, err := newFrameWriter(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	w2.Write(data[:frameSize/2])
	w2.abandon()
	w2.abandon()
}
