package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/preboot/plog"
)

func TestNormalizeMAC(t *testing.T) {
	for in, want := range map[string]string{"52-54-00-AA-bb-01": "52:54:00:aa:bb:01", "52:54:00:12:34:56": "52:54:00:12:34:56"} {
		if got, err := NormalizeMAC(in); err != nil || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "52:54:00:12:34", "52:54:00:12:34:56:78", "zz:54:00:12:34:56", "525400123456"} {
		if _, err := NormalizeMAC(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"", "..", "../x", "a/b", ".hidden", "x\ny"} {
		if ValidName(bad) {
			t.Errorf("name %q accepted", bad)
		}
	}
}

// TestService serves scripts for work from a fake imaging service, the
// default menu when it fails, and boot files over HTTP.
func TestService(t *testing.T) {
	menus, tftp := t.TempDir(), t.TempDir()
	for name, text := range DefaultMenus() {
		os.WriteFile(filepath.Join(menus, name), []byte(text), 0o644)
	}
	os.WriteFile(filepath.Join(tftp, "ipxe.efi"), []byte("EFI"), 0o644)
	imaging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/work/52:54:00:12:34:56":
			json.NewEncoder(w).Encode(Work{Action: "image", Image: "win11.img", Device: "pc1"})
		case "/work/52:54:00:00:00:02":
			http.Error(w, "zone down", http.StatusBadGateway)
		default:
			json.NewEncoder(w).Encode(Work{Action: "none"})
		}
	}))
	defer imaging.Close()
	log, _ := plog.Open(filepath.Join(t.TempDir(), "p.log"), "zmgprebootpolicy", Complete, 15, nil)
	defer log.Close()
	s := New(Config{Addr: "127.0.0.1", Port: 0, PrebootServer: imaging.URL, MenuDir: menus, TFTPDirectory: tftp}, log)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/ipxe/52-54-00-12-34-56"); code != 200 || !strings.Contains(body, "set zonekit-image win11.img\n") || !strings.Contains(body, "zonekit-imaging/vmlinuz") || !strings.HasPrefix(body, "#!ipxe\n") {
		t.Errorf("image work: %d\n%s", code, body)
	}
	if code, body := get("/ipxe/52-54-00-00-00-02"); code != 200 || !strings.Contains(body, "set zonekit-action none") || !strings.Contains(body, "echo zonekit: the imaging service could not be asked") {
		t.Errorf("failing imaging service: %d\n%s", code, body)
	}
	if code, _ := get("/ipxe/not-a-mac"); code != 400 {
		t.Errorf("bad MAC: %d", code)
	}
	if code, body := get("/boot/ipxe.efi"); code != 200 || body != "EFI" {
		t.Errorf("boot file: %d %q", code, body)
	}
	if code, _ := get("/boot/../../etc/passwd"); code == 200 {
		t.Error("boot file outside the TFTP directory")
	}
}

// TestImagingURL: without PrebootServer a machine is sent to the address
// its request arrived on, never to loopback; the same URL resolves its
// work.
func TestImagingURL(t *testing.T) {
	cfg := &Config{ImagingPort: 8070}
	if got := ImagingURL(cfg, "10.99.0.2"); got != "http://10.99.0.2:8070" {
		t.Errorf("got %q", got)
	}
	if got := ImagingURL(cfg, "fd99::2"); got != "http://[fd99::2]:8070" {
		t.Errorf("got %q", got)
	}
	cfg.PrebootServer = "http://10.0.0.7:8070"
	if got := ImagingURL(cfg, "10.99.0.2"); got != cfg.PrebootServer {
		t.Errorf("got %q", got)
	}
	// End to end: the imaging port of the address the request came to.
	menus := t.TempDir()
	for name, text := range DefaultMenus() {
		os.WriteFile(filepath.Join(menus, name), []byte(text), 0o644)
	}
	imaging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Work{Action: "image", Image: "win11.img"})
	}))
	defer imaging.Close()
	port := imaging.Listener.Addr().(*net.TCPAddr).Port
	s := New(Config{Addr: "127.0.0.1", ImagingPort: port, MenuDir: menus}, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	resp, err := http.Get("http://" + s.Addr().String() + "/ipxe/52-54-00-12-34-56")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("set zonekit-server http://127.0.0.1:%d\n", port); !strings.Contains(string(body), want) || !strings.Contains(string(body), "set zonekit-image win11.img\n") {
		t.Errorf("script lacks %q:\n%s", want, body)
	}
}
