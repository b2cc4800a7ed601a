package imaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/preboot/plog"
)

func TestRoundTripAndIntegrity(t *testing.T) {
	dir := t.TempDir()
	log, _ := plog.Open(filepath.Join(t.TempDir(), "i.log"), "pbserv", plog.Request, 15, nil)
	defer log.Close()
	s := New(Config{Addr: "127.0.0.1", Dir: filepath.Join(dir, "images"), StatsFile: filepath.Join(dir, "stats.json")}, nil, log)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c := NewClient("http://" + s.Addr().String())
	ctx := context.Background()
	src := filepath.Join(dir, "disk.img")
	data := bytes.Repeat([]byte("zonekit image "), 100000)
	os.WriteFile(src, data, 0o644)
	if _, err := c.Upload(ctx, "disk.img", src, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, "disk.img", src, false); errkind.Of(err) != errkind.Exists {
		t.Fatalf("second upload: %v", err)
	}
	out := filepath.Join(dir, "back.img")
	if _, err := c.Download(ctx, "disk.img", out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("downloaded image differs")
	}
	// Damage the stored image: the service breaks the transfer off before
	// its end, and the client writes nothing.
	stored := filepath.Join(dir, "images", "disk.img")
	damaged := append([]byte{}, data...)
	damaged[12345] ^= 1
	os.WriteFile(stored, damaged, 0o640)
	out2 := filepath.Join(dir, "back2.img")
	if _, err := c.Download(ctx, "disk.img", out2); err == nil {
		t.Fatalf("damaged download: %v", err)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Fatal("a damaged download left a file")
	}
	imgs, err := c.List(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].Name != "disk.img" {
		t.Fatalf("list %v %v", imgs, err)
	}
	st, err := ReadStats(filepath.Join(dir, "stats.json"))
	if err != nil || st.ImagesReceived != 1 || st.ImagesSent != 1 || st.PXERequests != 4 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if _, err := c.Upload(ctx, "../x", src, false); err == nil {
		t.Fatal("a path as image name was accepted")
	}
}

func startService(t *testing.T) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	s := New(Config{Addr: "127.0.0.1", Dir: filepath.Join(dir, "images")}, nil, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, dir
}

// TestConcurrentUploadOfNewName: while one upload of a new name is under
// way, a second one of the same name is told that it exists; the first
// completes.
func TestConcurrentUploadOfNewName(t *testing.T) {
	s, dir := startService(t)
	data := bytes.Repeat([]byte("x"), 1<<20)
	sum := sha256.Sum256(data)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", "http://"+s.Addr().String()+"/images/new.img", pr)
	req.ContentLength = int64(len(data))
	req.Header.Set(DigestHeader, hex.EncodeToString(sum[:]))
	first := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		first <- resp
	}()
	pw.Write(data[:1000])
	for deadline := time.Now().Add(10 * time.Second); ; { // the first upload is now under way
		s.mu.Lock()
		n := len(s.uploading)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first upload did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	src := filepath.Join(dir, "other")
	os.WriteFile(src, []byte("other"), 0o644)
	c := NewClient("http://" + s.Addr().String())
	if _, err := c.Upload(context.Background(), "new.img", src, false); errkind.Of(err) != errkind.Exists || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second upload: %v", err)
	}
	pw.Write(data[1000:])
	pw.Close()
	resp := <-first
	if resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("first upload: %v", resp)
	}
	resp.Body.Close()
	if got, _ := os.ReadFile(filepath.Join(dir, "images", "new.img")); !bytes.Equal(got, data) {
		t.Fatal("stored image is not the first upload's")
	}
}

// TestSweep: temporary files of killed uploads, and checksum files whose
// image never arrived, are removed at start.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	os.MkdirAll(images, 0o750)
	for _, n := range []string{".a.img.tmp-123456", ".a.img.sha256.tmp-99", "gone.img.sha256", "kept.img", "kept.img.sha256", ".other"} {
		os.WriteFile(filepath.Join(images, n), []byte("x"), 0o640)
	}
	s := New(Config{Addr: "127.0.0.1", Dir: images}, nil, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	ents, _ := os.ReadDir(images)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != ".other kept.img kept.img.sha256" {
		t.Fatalf("left %v", left)
	}
}

// TestFIFOImage: a FIFO named like an image is not served (and does not
// block the handler).
func TestFIFOImage(t *testing.T) {
	s, dir := startService(t)
	if err := syscall.Mkfifo(filepath.Join(dir, "images", "fifo.img"), 0o644); err != nil {
		t.Skip(err)
	}
	os.WriteFile(filepath.Join(dir, "images", "fifo.img.sha256"), []byte(strings.Repeat("0", 64)), 0o640)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewClient("http://"+s.Addr().String()).Download(ctx, "fifo.img", filepath.Join(dir, "out"))
	if errkind.Of(err) != errkind.NotFound {
		t.Fatalf("download of a FIFO: %v", err)
	}
}
