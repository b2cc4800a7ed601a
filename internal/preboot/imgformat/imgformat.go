// Package imgformat is the layout of a zonekit disk image: a magic line,
// a manifest (the disk's partition table as sfdisk dumps it, and each
// partition's filesystem and how it was read), then each partition's
// data as a sequence of length-prefixed frames ended by an empty one.
// A partition's data is a zstd stream of what its tool wrote: partclone's
// image for filesystems partclone knows (used blocks only), or raw
// records (offset, length, bytes) of the non-zero blocks otherwise.
// Framing lets a reader stream the image from the network straight into
// the tools without knowing sizes in advance.
package imgformat

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Magic starts every image.
const Magic = "ZONEKIT-IMAGE 1\n"

// maxManifest and maxFrame bound what a reader accepts.
const (
	maxManifest = 1 << 20
	maxFrame    = 16 << 20
)

// Tools a partition's data comes from.
const (
	ToolPartclone = "partclone.extfs" // ext2, ext3, ext4
	ToolRaw       = "raw"             // non-zero blocks, any content
)

// Partition is one partition of the captured disk.
type Partition struct {
	Number int    `json:"number"`
	Start  int64  `json:"start"` // bytes from the disk's start
	Size   int64  `json:"size"`  // bytes
	FS     string `json:"fs"`    // "ext4" and so on, or "" when not known
	Tool   string `json:"tool"`
}

// Manifest describes the disk an image was taken of.
type Manifest struct {
	DiskBytes  int64       `json:"disk_bytes"`
	Layout     string      `json:"layout"` // sfdisk --dump
	Partitions []Partition `json:"partitions"`
}

// WriteHeader writes the magic line and the manifest.
func WriteHeader(w io.Writer, m Manifest) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(data) > maxManifest {
		return fmt.Errorf("manifest of %d bytes is too large", len(data))
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	if _, err := io.WriteString(w, Magic); err != nil {
		return err
	}
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// ReadHeader reads and checks the magic line and the manifest.
func ReadHeader(r io.Reader) (Manifest, error) {
	var m Manifest
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != Magic {
		return m, errors.New("not a zonekit disk image")
	}
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return m, fmt.Errorf("image manifest: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxManifest {
		return m, fmt.Errorf("image manifest of %d bytes is too large", size)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return m, fmt.Errorf("image manifest: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("image manifest: %w", err)
	}
	if m.Layout == "" {
		return m, errors.New("image manifest: no partition table")
	}
	for _, p := range m.Partitions {
		if p.Tool != ToolPartclone && p.Tool != ToolRaw {
			return m, fmt.Errorf("image manifest: partition %d: unknown tool %q", p.Number, p.Tool)
		}
		if p.Number < 1 || p.Number > 128 || p.Start < 0 || p.Size < 0 {
			return m, fmt.Errorf("image manifest: partition %d out of range", p.Number)
		}
	}
	return m, nil
}

// FrameWriter frames one partition's data; Close writes the end mark.
type FrameWriter struct{ w io.Writer }

// NewFrameWriter starts a partition's data.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

func (f *FrameWriter) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], uint32(n))
		if _, err := f.w.Write(h[:]); err != nil {
			return done, err
		}
		if _, err := f.w.Write(p[:n]); err != nil {
			return done, err
		}
		done += n
		p = p[n:]
	}
	return done, nil
}

// Close ends the partition's data.
func (f *FrameWriter) Close() error {
	_, err := f.w.Write([]byte{0, 0, 0, 0})
	return err
}

// FrameReader reads one partition's data up to its end mark.
type FrameReader struct {
	r    io.Reader
	left uint32
	done bool
}

// NewFrameReader reads a partition's data from r.
func NewFrameReader(r io.Reader) *FrameReader { return &FrameReader{r: r} }

func (f *FrameReader) Read(p []byte) (int, error) {
	for f.left == 0 {
		if f.done {
			return 0, io.EOF
		}
		var h [4]byte
		if _, err := io.ReadFull(f.r, h[:]); err != nil {
			return 0, fmt.Errorf("image data cut short: %w", err)
		}
		f.left = binary.BigEndian.Uint32(h[:])
		if f.left > maxFrame {
			return 0, fmt.Errorf("image frame of %d bytes is too large", f.left)
		}
		if f.left == 0 {
			f.done = true
		}
	}
	n, err := f.r.Read(p[:min(len(p), int(f.left))])
	f.left -= uint32(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Raw records: the non-zero blocks of a partition that no tool knows.
const rawBlock = 64 << 10

// WriteRaw writes the non-zero blocks of src (size bytes) to w as
// records: 8-byte offset, 4-byte length, the bytes; an offset of all
// ones ends them. Zero blocks are left out (the sparse part).
func WriteRaw(w io.Writer, src io.Reader, size int64) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	buf := make([]byte, rawBlock)
	var off, kept int64
	for off < size {
		n, err := io.ReadFull(src, buf[:min(int64(rawBlock), size-off)])
		if n > 0 && !allZero(buf[:n]) {
			var h [12]byte
			binary.BigEndian.PutUint64(h[:], uint64(off))
			binary.BigEndian.PutUint32(h[8:], uint32(n))
			bw.Write(h[:])
			bw.Write(buf[:n])
			kept += int64(n)
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return kept, err
		}
	}
	var end [12]byte
	binary.BigEndian.PutUint64(end[:], ^uint64(0))
	bw.Write(end[:])
	return kept, bw.Flush()
}

// ReadRaw writes raw records from r into dst, a partition of size
// bytes; the blocks between records are written as zeros, so the target
// need not be blank.
func ReadRaw(dst io.WriterAt, r io.Reader, size int64) error {
	br := bufio.NewReaderSize(r, 1<<20)
	zero := make([]byte, rawBlock)
	buf := make([]byte, rawBlock)
	var at int64
	fill := func(to int64) error {
		for at < to {
			n := min(int64(len(zero)), to-at)
			if _, err := dst.WriteAt(zero[:n], at); err != nil {
				return err
			}
			at += n
		}
		return nil
	}
	for {
		var h [12]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return fmt.Errorf("raw data cut short: %w", err)
		}
		off := binary.BigEndian.Uint64(h[:])
		if off == ^uint64(0) {
			return fill(size)
		}
		n := binary.BigEndian.Uint32(h[8:])
		if n > rawBlock || int64(off) < at || int64(off)+int64(n) > size {
			return fmt.Errorf("raw record at %d (%d bytes) out of order or out of the partition", off, n)
		}
		if err := fill(int64(off)); err != nil {
			return err
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			return fmt.Errorf("raw data cut short: %w", err)
		}
		if _, err := dst.WriteAt(buf[:n], int64(off)); err != nil {
			return err
		}
		at = int64(off) + int64(n)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
