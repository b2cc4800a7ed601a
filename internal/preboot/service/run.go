package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/dhcp"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/plog"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/preboot/ptls"
	"zonekit/internal/preboot/tftp"
)

// daemon is one running service.
type daemon interface {
	start() error
	reload(v *conf.Values) error
	stop()
	describe() string // where it listens, for the start message
}

// Options are what Run needs besides the layout.
type Options struct {
	Layout  conf.Layout
	Service string
	Stderr  io.Writer
	// Zone answers the imaging service's work requests and checks
	// administrators' credentials; nil gives every device the default
	// menu and nobody images.
	Zone imaging.Zone
	// TLS is this zone server's certificate and the zone CA: the imaging
	// service serves HTTPS with it, the policy service presents it to the
	// imaging service. Nil without a zone.
	TLS *ptls.Material
	// Ready, when set, is called once the service listens (tests).
	Ready func()
}

// logSettings names a service's log parameters: file, level, size.
func logSettings(l conf.Layout, service string, v *conf.Values) (path string, level, sizeMB int) {
	switch service {
	case conf.Imaging:
		if !v.Bool("EnableLogging") {
			return "", 0, 0
		}
		return l.Log(conf.Imaging), plog.Request, v.Int("PrebootServiceLogFileSize")
	case conf.ProxyDHCP:
		return v.String("ProxyLogFile"), v.Int("ProxyLogLevel"), v.Int("ProxyLogFileSize")
	case conf.TFTP:
		return v.String("TFTPLogFile"), v.Int("TFTPLogLevel"), v.Int("TFTPLogFileSize")
	default:
		return v.String("PolicyLogFile"), v.Int("PolicyLogLevel"), v.Int("PolicyLogFileSize")
	}
}

// critical is the start/stop priority: 0, but 1 for the policy service,
// whose levels start at 1.
func critical(service string) int {
	if service == conf.Policy {
		return policy.Critical
	}
	return plog.Critical
}

// Run is the foreground daemon: it writes the configuration file with
// its defaults when there is none, serves until ctx ends, rereads the
// configuration on SIGHUP without dropping transfers, and keeps the pid
// file while it runs.
func Run(ctx context.Context, o Options) error {
	l, service := o.Layout, o.Service
	if _, err := l.WriteDefault(service); err != nil {
		return err
	}
	v, err := l.Load(service)
	if err != nil {
		return err
	}
	path, level, size := logSettings(l, service, v)
	log, err := plog.Open(path, service, level, size, nil)
	if err != nil {
		return err
	}
	defer log.Close()
	d, err := build(l, service, v, log, o)
	if err != nil {
		log.Logf(critical(service), "not started: %v", err)
		return err
	}
	// The metrics listener opens first: the policy and imaging services
	// take its HTTP middleware when they start.
	mctx, stopMetrics := context.WithCancel(ctx)
	waitMetrics, err := serveMetrics(mctx, v.String("MetricsAddress"), service, d, o.TLS)
	if err != nil {
		stopMetrics()
		log.Logf(critical(service), "not started: %v", err)
		return err
	}
	defer func() { stopMetrics(); waitMetrics() }()
	if err := d.start(); err != nil {
		log.Logf(critical(service), "not started: %v", err)
		return err
	}
	if err := os.MkdirAll(l.RunDir(), 0o750); err != nil {
		d.stop()
		return fmt.Errorf("create %s: %w", l.RunDir(), err)
	}
	// SIGHUP is taken before the pid file names this process: force-reload
	// may signal as soon as it does, and SIGHUP's default is to end it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	os.Remove(ReloadFile(l, service))
	defer os.Remove(ReloadFile(l, service))
	if err := atomicfile.WriteFile(l.PidFile(service), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		d.stop()
		return err
	}
	defer os.Remove(l.PidFile(service))
	log.Logf(critical(service), "%s started (pid %d), %s", Title(service), os.Getpid(), d.describe())
	fmt.Fprintf(o.Stderr, "%s running (pid %d), %s; log in %s\n", Title(service), os.Getpid(), d.describe(), orNone(path))
	if o.Ready != nil {
		o.Ready()
	}
	reloads := 0
	for {
		select {
		case <-ctx.Done():
			log.Logf(critical(service), "%s stopping", Title(service))
			d.stop()
			log.Logf(critical(service), "%s stopped", Title(service))
			return nil
		case <-hup:
			reloads++
			nv, err := l.Load(service)
			var npath string
			var level, size int
			if err == nil {
				// Every setting is applied, the log's too, or none is.
				npath, level, size = logSettings(l, service, nv)
				err = plog.Check(npath)
			}
			if err == nil {
				err = d.reload(nv)
			}
			if err == nil && npath != path {
				log.Logf(critical(service), "log moves to %s", orNone(npath))
			}
			if err == nil {
				err = log.Configure(npath, level, size)
			}
			if err != nil {
				log.Logf(critical(service), "configuration not reloaded, the previous one stays: %v", err)
				writeReloaded(l, service, reloads, err)
				continue
			}
			if npath != path {
				log.Logf(critical(service), "log moved here from %s", orNone(path))
				path = npath
			}
			log.Logf(critical(service), "configuration reloaded from %s", l.File(service))
			writeReloaded(l, service, reloads, nil)
		}
	}
}

// ReloadFile records the outcome of the daemon's latest reload, so that
// force-reload can wait for it: "N ok" or "N error: ...".
func ReloadFile(l conf.Layout, service string) string {
	return filepath.Join(l.RunDir(), service+".reload")
}

func writeReloaded(l conf.Layout, service string, n int, err error) {
	msg := fmt.Sprintf("%d %d ok\n", os.Getpid(), n)
	if err != nil {
		msg = fmt.Sprintf("%d %d error: %v\n", os.Getpid(), n, err)
	}
	atomicfile.WriteFile(ReloadFile(l, service), []byte(msg), 0o644)
}

func orNone(path string) string {
	if path == "" {
		return "(logging off)"
	}
	return path
}

func build(l conf.Layout, service string, v *conf.Values, log *plog.Logger, o Options) (daemon, error) {
	switch service {
	case conf.TFTP:
		cfg, err := TFTPConfig(v)
		if err != nil {
			return nil, err
		}
		s, err := tftp.New(cfg, log)
		if err != nil {
			return nil, err
		}
		return &tftpDaemon{s: s}, nil
	case conf.ProxyDHCP:
		cfg, err := ProxyConfig(l, v)
		if err != nil {
			return nil, err
		}
		return &proxyDaemon{s: dhcp.New(cfg, log), l: l}, nil
	case conf.Policy:
		cfg, err := PolicyConfig(l, v, o.TLS)
		if err != nil {
			return nil, err
		}
		if err := writeMenus(l); err != nil {
			return nil, err
		}
		return &policyDaemon{s: policy.New(cfg, log), l: l, tls: o.TLS}, nil
	case conf.Imaging:
		return &imagingDaemon{s: imaging.New(ImagingConfig(l, v, o.TLS), o.Zone, log), l: l, tls: o.TLS}, nil
	}
	return nil, fmt.Errorf("unknown service %q", service)
}

func addr(v *conf.Values, name string) netip.Addr {
	a, _ := netip.ParseAddr(v.String(name)) // checked when parsed
	return a
}

// TFTPConfig turns tftp.conf into the server's configuration.
func TFTPConfig(v *conf.Values) (tftp.Config, error) {
	writes := v.Int("TFTPAllowWrites") == 1
	return tftp.Config{
		Root:            v.String("TFTPDirectory"),
		Addr:            addr(v, "TFTPInterface"),
		Port:            v.Int("TFTPPort"),
		MaxBlockSize:    v.Int("TransferBlockSize"),
		Timeout:         time.Duration(v.Int("TimeoutInterval")) * time.Second,
		AllowWrites:     writes,
		AllowOverwrites: writes && v.Int("TFTPAllowOverwrites") == 1,
		MaxTransfers:    v.Int("TFTPMaxTransfers"),
		MaxPerClient:    v.Int("TFTPMaxClientTransfers"),
		Silence:         time.Duration(v.Int("TFTPClientSilence")) * time.Second,
		MaxWindow:       v.Int("TFTPMaxWindowSize"),
	}, nil
}

// ProxyConfig turns proxydhcp.conf into the proxy's configuration; the
// policy service's port comes from its own file on this server.
func ProxyConfig(l conf.Layout, v *conf.Values) (dhcp.Config, error) {
	port := conf.DefaultPolicyPort
	if pv, err := l.Load(conf.Policy); err == nil {
		port = pv.Int("PolicyPort")
	}
	return dhcp.Config{
		LocalDHCP:    v.Int("LocalDHCPFlag") == 1,
		Addr:         addr(v, "LocalInterface"),
		DHCPPort:     v.Int("ProxyDHCPPort"),
		PXEPort:      v.Int("ProxyPXEPort"),
		NBPx86:       v.String("NBPx86"),
		NBPx64:       v.String("NBPx64"),
		NBParm64:     v.String("NBParm64"),
		TFTPServer:   addr(v, "TFTPServer"),
		PolicyEngine: v.String("NovellPolicyEngine"),
		PolicyPort:   port,
		MenuTimeout:  v.Int("MenuTimeout"),
	}, nil
}

// PolicyConfig turns zmgprebootpolicy.conf into the service's
// configuration. Without a PrebootServer it uses this server's imaging
// service: at its IPAddress when set, else at the address each request
// arrived on.
func PolicyConfig(l conf.Layout, v *conf.Values, m *ptls.Material) (policy.Config, error) {
	cfg := policy.Config{Port: v.Int("PolicyPort"), MenuDir: l.MenuDir(), AMT: v.Bool("EnableAMTSupport"), Scheme: "http"}
	if m != nil {
		cfg.Scheme = "https"
		cfg.TLS = ptls.ClientConfig(m.CA, &m.Cert)
	}
	if a := addr(v, "LocalInterface"); a.IsValid() {
		cfg.Addr = a.String()
	}
	cfg.ImagingPort = conf.DefaultImagingPort
	iv, err := l.Load(conf.Imaging)
	if err == nil {
		cfg.ImagingPort = iv.Int("ImagingPort")
	}
	if ps := v.String("PrebootServer"); ps != "" {
		if _, _, err := net.SplitHostPort(ps); err != nil {
			ps = net.JoinHostPort(ps, strconv.Itoa(conf.DefaultImagingPort))
		}
		cfg.PrebootServer = cfg.Scheme + "://" + ps
	} else if iv != nil && iv.String("IPAddress") != "" {
		// The imaging service listens on that address only.
		cfg.PrebootServer = cfg.Scheme + "://" + net.JoinHostPort(iv.String("IPAddress"), strconv.Itoa(cfg.ImagingPort))
	}
	if tv, err := l.Load(conf.TFTP); err == nil {
		cfg.TFTPDirectory = tv.String("TFTPDirectory")
	}
	return cfg, nil
}

// ImagingConfig turns pbserv.conf into the imaging service's configuration.
func ImagingConfig(l conf.Layout, v *conf.Values, m *ptls.Material) imaging.Config {
	return imaging.Config{
		TLS:           m,
		TokenKey:      l.TokenKeyFile(),
		MaxImageBytes: int64(v.Int("MaxImageSize")) << 30,
		Addr:          v.String("IPAddress"),
		Port:          v.Int("ImagingPort"),
		Dir:           v.String("ImageDirectory"),
		StatsFile:     l.StatsFile(),
		Library:       v.String("LIBRARY_NAME"),
	}
}

// writeMenus puts the default menus in place when they are missing.
func writeMenus(l conf.Layout) error {
	if err := os.MkdirAll(l.MenuDir(), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", l.MenuDir(), err)
	}
	for name, text := range policy.DefaultMenus() {
		p := filepath.Join(l.MenuDir(), name)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := atomicfile.WriteFile(p, []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

type tftpDaemon struct{ s *tftp.Server }

func (d *tftpDaemon) start() error { return d.s.Start() }
func (d *tftpDaemon) stop()        { d.s.Stop(30 * time.Second) }
func (d *tftpDaemon) describe() string {
	return "TFTP on " + d.s.Addr().String()
}
func (d *tftpDaemon) reload(v *conf.Values) error {
	cfg, err := TFTPConfig(v)
	if err != nil {
		return err
	}
	return d.s.Reload(cfg)
}

type proxyDaemon struct {
	s *dhcp.Server
	l conf.Layout
}

func (d *proxyDaemon) start() error { return d.s.Start() }
func (d *proxyDaemon) stop()        { d.s.Stop() }
func (d *proxyDaemon) describe() string {
	return fmt.Sprintf("proxy DHCP on UDP ports %v", d.s.Ports())
}
func (d *proxyDaemon) reload(v *conf.Values) error {
	cfg, err := ProxyConfig(d.l, v)
	if err != nil {
		return err
	}
	return d.s.Reload(cfg)
}

type policyDaemon struct {
	s   *policy.Server
	l   conf.Layout
	tls *ptls.Material
}

func (d *policyDaemon) start() error { return d.s.Start() }
func (d *policyDaemon) stop()        { d.s.Stop() }
func (d *policyDaemon) describe() string {
	return "boot scripts on http://" + d.s.Addr().String() + "/ipxe/MAC"
}
func (d *policyDaemon) reload(v *conf.Values) error {
	cfg, err := PolicyConfig(d.l, v, d.tls)
	if err != nil {
		return err
	}
	return d.s.Reload(cfg)
}

type imagingDaemon struct {
	s   *imaging.Server
	l   conf.Layout
	tls *ptls.Material
}

func (d *imagingDaemon) start() error { return d.s.Start() }
func (d *imagingDaemon) stop()        { d.s.Stop() }
func (d *imagingDaemon) describe() string {
	if d.tls != nil {
		return "imaging on https://" + d.s.Addr().String()
	}
	return "imaging on http://" + d.s.Addr().String() + " (no zone: images refused)"
}
func (d *imagingDaemon) reload(v *conf.Values) error {
	return d.s.Reload(ImagingConfig(d.l, v, d.tls))
}
