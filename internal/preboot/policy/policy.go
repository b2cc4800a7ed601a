// Package policy is the preboot policy service (zmgprebootpolicy): iPXE
// clients sent here by the proxy DHCP service fetch their boot script,
// which carries the work assigned to the device in the zone (an image to
// restore or take, or a preboot menu), resolved through the imaging
// service, or else the default menu. It also serves the boot files of the
// TFTP directory over HTTP for UEFI HTTP boot clients.
package policy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"zonekit/internal/preboot/plog"
	"zonekit/internal/preboot/regfile"
)

// Priorities of the policy service's log (1-4, as the reference numbers them).
const (
	Critical = 1
	Normal   = 2
	Debug    = 3
	Complete = 4
)

// Work is what a device is to do at its next network boot. The imaging
// service answers it for a MAC address.
type Work struct {
	Action string `json:"action"`          // "none", "menu" or "image" (restore) or "take-image"
	Menu   string `json:"menu,omitempty"`  // the menu's name, for "menu"
	Image  string `json:"image,omitempty"` // the image's name, for the image actions
	Device string `json:"device,omitempty"`
	// Session, Clients and Wait make a restore part of a multicast
	// session (see imaging).
	Session string `json:"session,omitempty"`
	Clients int    `json:"clients,omitempty"`
	Wait    int    `json:"wait,omitempty"`
	// Status is an imaging task's state (queued, running, done, failed);
	// only a queued task is served.
	Status string `json:"status,omitempty"`
	// Token is the task token that lets the machine fetch or send this
	// one image (image actions only).
	Token string `json:"token,omitempty"`
	// Error is set (by the policy service only) when the work could not be
	// resolved and the default menu is served instead.
	Error string `json:"-"`
}

// Config is the service's resolved configuration.
type Config struct {
	Addr string // LocalInterface, or "" for every address
	Port int
	// PrebootServer is the imaging service's base URL, e.g.
	// http://10.0.0.5:8070. Empty: the imaging service of this server, at
	// the address the client's request arrived on and ImagingPort, so a
	// machine is never sent to its own loopback.
	PrebootServer string
	ImagingPort   int
	// Scheme is https when the imaging service serves with the zone's
	// certificate; TLS then authenticates this service to it.
	Scheme        string
	TLS           *tls.Config
	MenuDir       string // the menus: default.ipxe, imaging.ipxe, NAME.ipxe
	TFTPDirectory string // boot files served under /boot/
	AMT           bool
}

// Server is the running policy service.
type Server struct {
	// Observe, when set before Start, wraps the HTTP handler (metrics).
	Observe func(http.Handler) http.Handler

	log    *plog.Logger
	cfg    atomic.Pointer[Config]
	client *http.Client
	srv    *http.Server
	ln     net.Listener
	done   chan error
}

// New returns a service with cfg; Start begins serving.
func New(cfg Config, log *plog.Logger) *Server {
	s := &Server{log: log, client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg.TLS}}}
	s.cfg.Store(&cfg)
	return s
}

// Start listens and serves.
func (s *Server) Start() error {
	cfg := s.cfg.Load()
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Addr, fmt.Sprint(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen for preboot policy requests: %w", err)
	}
	if cfg.AMT {
		s.log.Logf(Critical, "EnableAMTSupport is set, but Intel AMT is not supported; ignored")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ipxe/{mac}", s.script)
	mux.HandleFunc("GET /boot/{file...}", s.bootFile)
	var h http.Handler = mux
	if s.Observe != nil {
		h = s.Observe(mux)
	}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.ln = ln
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Reload applies a new configuration; a new address or port needs a restart.
func (s *Server) Reload(cfg Config) error {
	old := s.cfg.Load()
	if old.Addr != cfg.Addr || old.Port != cfg.Port {
		return errors.New("LocalInterface or PolicyPort changed: restart the service to move it")
	}
	s.cfg.Store(&cfg)
	return nil
}

// Stop ends the service, letting requests finish for a few seconds.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	<-s.done
}

var macRe = regexp.MustCompile(`^[0-9a-fA-F]{2}([-:][0-9a-fA-F]{2}){5}$`)

// NormalizeMAC returns a MAC address as lower-case colon-separated hex,
// or an error.
func NormalizeMAC(s string) (string, error) {
	if !macRe.MatchString(s) {
		return "", fmt.Errorf("%q is not a MAC address (like 52:54:00:12:34:56)", s)
	}
	return strings.ToLower(strings.ReplaceAll(s, "-", ":")), nil
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether s can name a menu or an image (a file name
// without a directory).
func ValidName(s string) bool { return nameRe.MatchString(s) && !strings.Contains(s, "..") }

func (s *Server) script(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	mac, err := NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		s.log.Logf(Normal, "request from %s refused: %v", r.RemoteAddr, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	imaging := ImagingURL(cfg, localAddr(r))
	work, werr := s.resolve(r.Context(), imaging, mac)
	if werr != nil {
		s.log.Logf(Critical, "work for %s: %v; serving the default menu", mac, werr)
		work = Work{Action: "none", Error: werr.Error()}
	}
	body, err := Script(cfg, work, mac, host, imaging, "http://"+r.Host)
	if err != nil {
		s.log.Logf(Critical, "script for %s (%s): %v", mac, work.Action, err)
		http.Error(w, "no boot script", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, body)
	what := work.Action
	switch work.Action {
	case "menu":
		what += " " + work.Menu
	case "image", "take-image":
		what += " " + work.Image
	case "none":
		what = "default menu"
	}
	who := mac
	if work.Device != "" {
		who += " (" + work.Device + ")"
	}
	s.log.Logf(Normal, "%s from %s: %s", who, r.RemoteAddr, what)
}

// localAddr is the address of this server that the request arrived on.
func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			return host
		}
	}
	return ""
}

// ImagingURL is the imaging service a client is sent to (and that
// resolves its work): PrebootServer, or else this server's imaging port
// on the address the request arrived on.
func ImagingURL(cfg *Config, local string) string {
	if cfg.PrebootServer != "" {
		return cfg.PrebootServer
	}
	if local == "" {
		return ""
	}
	scheme := cfg.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + net.JoinHostPort(local, fmt.Sprint(cfg.ImagingPort))
}

// resolve asks the imaging service for the device's work.
func (s *Server) resolve(ctx context.Context, base, mac string) (Work, error) {
	if base == "" {
		return Work{}, errors.New("no imaging service address")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/work/"+mac, nil)
	if err != nil {
		return Work{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return Work{}, fmt.Errorf("ask the imaging service: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Work{}, fmt.Errorf("imaging service: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	var work Work
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&work); err != nil {
		return Work{}, fmt.Errorf("imaging service answer: %w", err)
	}
	s.log.Logf(Debug, "imaging service: %s has work %+v", mac, work)
	return work, nil
}

// Script builds the iPXE script for a device's work: a prelude that sets
// zonekit-* variables, then the menu file.
func Script(cfg *Config, work Work, mac, bootServer, imaging, bootURL string) (string, error) {
	menu := "default"
	switch work.Action {
	case "menu":
		menu = work.Menu
	case "image", "take-image":
		menu = "imaging"
	}
	if !ValidName(menu) {
		return "", fmt.Errorf("bad menu name %q", menu)
	}
	data, err := os.ReadFile(filepath.Join(cfg.MenuDir, menu+".ipxe"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "set zonekit-mac %s\n", mac)
	fmt.Fprintf(&b, "set zonekit-action %s\n", work.Action)
	fmt.Fprintf(&b, "set zonekit-boot-server %s\n", bootServer)
	fmt.Fprintf(&b, "set zonekit-boot-url %s\n", bootURL)
	if work.Image != "" {
		fmt.Fprintf(&b, "set zonekit-image %s\n", work.Image)
	}
	if work.Token != "" {
		fmt.Fprintf(&b, "set zonekit-token %s\n", work.Token)
	}
	if imaging != "" {
		fmt.Fprintf(&b, "set zonekit-server %s\n", imaging)
	}
	if work.Error != "" {
		// Shown on the machine's console, so a failure is not a silent
		// local boot.
		fmt.Fprintf(&b, "echo zonekit: the imaging service could not be asked for this machine's work; see the policy service's log\n")
	}
	body := strings.TrimPrefix(string(data), "#!ipxe\n")
	b.WriteString(body)
	return b.String(), nil
}

func (s *Server) bootFile(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	root, err := os.OpenRoot(cfg.TFTPDirectory)
	if err != nil {
		http.Error(w, "no boot files", http.StatusNotFound)
		return
	}
	defer root.Close()
	name := r.PathValue("file")
	f, fi, err := regfile.Open(root, name)
	if err != nil {
		s.log.Logf(Normal, "boot file %q for %s: %v", name, r.RemoteAddr, err)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	http.ServeContent(w, r, filepath.Base(name), fi.ModTime(), f)
	s.log.Logf(Normal, "boot file %q sent to %s (%d bytes)", name, r.RemoteAddr, fi.Size())
}

// DefaultMenus are written to the menu directory when it has none: the
// default menu boots the local disk after a pause, and the imaging script
// loads the imaging environment from the TFTP server.
func DefaultMenus() map[string]string {
	return map[string]string{
		"default.ipxe": `#!ipxe
# zonekit default preboot menu: served to devices with no work assigned.
# The variables zonekit-mac, zonekit-action, zonekit-boot-server (this
# server) and zonekit-boot-url (this service's URL), and zonekit-image,
# zonekit-server (the imaging service) and zonekit-token when set, are
# defined above this text.
menu zonekit preboot menu (${zonekit-mac})
item --default local Boot from the local disk
item shell iPXE shell
choose --timeout 5000 target && goto ${target}
:local
echo zonekit: no preboot work for ${zonekit-mac}, booting the local disk
sanboot --no-describe --drive 0x80 || exit
:shell
shell
`,
		"imaging.ipxe": `#!ipxe
# zonekit imaging: served to devices with an image to restore (action
# image) or to take (take-image). 'pbserv imaging-build' puts the imaging
# environment's kernel and initrd in the TFTP directory under
# zonekit-imaging/; they are loaded over HTTP from this policy service
# (zonekit-boot-url), which serves that directory under /boot/.
# initrd= hands the initrd over on UEFI too.
echo zonekit: ${zonekit-action} ${zonekit-image} for ${zonekit-mac}
kernel ${zonekit-boot-url}/boot/zonekit-imaging/vmlinuz initrd=initrd console=tty0 console=ttyS0 panic=-1 zonekit.action=${zonekit-action} zonekit.image=${zonekit-image} zonekit.server=${zonekit-server} zonekit.mac=${zonekit-mac} zonekit.token=${zonekit-token}
initrd ${zonekit-boot-url}/boot/zonekit-imaging/initrd
boot
`,
	}
}
