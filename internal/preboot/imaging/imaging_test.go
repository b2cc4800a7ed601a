package imaging

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

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
