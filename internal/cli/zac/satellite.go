package zac

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"zonekit/internal/agent"
	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/observe"
	"zonekit/internal/satellite"
)

// SatelliteOptions are the satellite-serve command's inputs.
type SatelliteOptions struct {
	*Options
	Listen      string
	AuthListen  string
	Parents     []string
	Dir         string
	Prefetch    time.Duration
	InstallUnit bool
	Verbose     bool
	UnitDir     string
	// MetricsListen is host:port serving /metrics, /healthz and /readyz.
	MetricsListen string
	// unitArgs are the flags the administrator gave, for the unit's ExecStart.
	unitArgs []string
}

// DefaultUnitDir is where --install-unit writes zonekit-satellite.service.
const DefaultUnitDir = "/etc/systemd/system"

func newSatelliteServe(opts *Options) *cobra.Command {
	o := &SatelliteOptions{Options: opts}
	cmd := &cobra.Command{
		Use:         "satellite-serve [--parent URL] [--listen ADDR] [--auth-listen ADDR]",
		Annotations: map[string]string{cmdutil.OwnShutdown: "yes"},
		Aliases:     []string{"sats"},
		Short:       "Run this registered device as a satellite for its site",
		Long: `Serve the satellite roles the zone gave this device ('zman
satellite-add-role'). Runs until SIGTERM or Ctrl-C; --install-unit writes a
systemd unit that runs it instead (see below).

Content: serve package fragments to the agents of a site over plain HTTP
on --listen (default the port of the role's content URL), in the layout
of a zone server's content port (/content/ID/ID-n). Agents get this
satellite first in their packages' fragment locations (closest first)
and fail over to the next. A fragment not here yet is pulled from the
first --parent that has it (a zone server's content port or another
satellite: tiers; default the parent set in the zone) and checked against
the SHA-256 in the package's manifest, which comes from the zone over
HTTPS (the device's trust store). Fragments are kept by digest in --dir,
so an unchanged fragment of a new package version does not travel again,
and an interrupted pull continues where it stopped. What is here is
served even while the parent is stopped. With a prefetch interval (the
role's --prefetch-interval, or --prefetch-interval here), the content of
every active package is pulled ahead of requests at start and then on that
schedule; each round's counts go to DIR/prefetch.json.

Authentication: serve agents over HTTPS on --auth-listen (default the port
of the role's auth URL) with the satellite's own certificate from the zone
CA ('zac asr -t all' makes one, 'zac iac' imports one), verify their
device certificates against the trust store, and relay their calls
(registration, refresh, packages, status, certificate renewal) to the zone
servers, so that agents near it need only the satellite. With the Content
role too, it serves info files and manifests over HTTPS as well, so the
satellite is also the agents' info location.

--install-unit writes zonekit-satellite.service into --unit-dir (default
/etc/systemd/system) to run 'zac satellite-serve' with the same home and
the flags given here, restarted on failure, and enables and starts it when
systemd runs and the default directory is used.`,
		Example: `  zac satellite-serve --listen :8080 --parent http://zone1.acme.example:80/content
  zac sats --listen :8080 --parent http://sat-hq.acme.example:8080/content --parent http://zone1.acme.example/content
  zac satellite-serve --install-unit`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.Flags().Visit(func(f *pflag.Flag) {
				switch f.Name {
				case "install-unit", "unit-dir", "home", "output":
				case "verbose", "verbose-v":
					o.unitArgs = append(o.unitArgs, "--verbose")
				case "parent":
					for _, p := range o.Parents {
						o.unitArgs = append(o.unitArgs, "--parent", p)
					}
				default:
					o.unitArgs = append(o.unitArgs, "--"+f.Name, f.Value.String())
				}
			})
			if o.InstallUnit {
				return installUnit(cmd.Context(), o)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return satelliteRun(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "", "address to serve fragments on over HTTP (default :PORT of the content URL, else :8080)")
	f.StringVar(&o.AuthListen, "auth-listen", "", "address to serve agents on over HTTPS (default :PORT of the auth URL)")
	f.StringArrayVar(&o.Parents, "parent", nil, "content URL to pull from, http://HOST:PORT/content (repeatable, tried in order; default the parent set in the zone)")
	f.StringVar(&o.Dir, "dir", "", "cache directory (default HOME/satellite-cache)")
	f.DurationVar(&o.Prefetch, "prefetch-interval", 0, "pull every active package's content this often (default the role's setting; 0 and no setting: on first request only)")
	cmdutil.VerboseFlag(f, &o.Verbose, "log every relayed call and pull, not only failures")
	f.StringVar(&o.MetricsListen, "metrics-listen", "", "address to serve Prometheus metrics, /healthz and /readyz on over HTTP (127.0.0.1:9101, say; default none)")
	f.BoolVar(&o.InstallUnit, "install-unit", false, "write (and enable) a systemd unit running satellite-serve, then exit")
	f.StringVar(&o.UnitDir, "unit-dir", DefaultUnitDir, "where --install-unit writes zonekit-satellite.service")
	return cmd
}

// portOf turns a role URL into ":PORT" to listen on.
func portOf(raw, def string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Port() == "" {
		return def
	}
	return ":" + u.Port()
}

func satelliteRun(ctx context.Context, o *SatelliteOptions) error {
	a := o.Agent()
	st, err := a.State()
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if o.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(o.IO.ErrOut, &slog.HandlerOptions{Level: level}))
	sat, err := a.SatelliteConfig(ctx)
	if err != nil {
		if len(o.Parents) == 0 {
			return err
		}
		// The zone is out of reach: serve content from what is here.
		log.Warn("satellite configuration", "err", err, "serving", "content only")
		sat = api.Satellite{DeviceName: st.DeviceID, Roles: []string{api.SatelliteContent}}
	}
	content := slices.Contains(sat.Roles, api.SatelliteContent)
	auth := slices.Contains(sat.Roles, api.SatelliteAuthentication)
	if len(o.Parents) == 0 {
		o.Parents = sat.Parents
		if len(o.Parents) == 0 && sat.Parent != "" {
			o.Parents = []string{sat.Parent} // a zone server of an older version
		}
	}
	if content && len(o.Parents) == 0 {
		return errkind.New(errkind.Usage, "no parent to pull from: pass --parent URL or set one with 'zman satellite-add-role %s --parent URL'", sat.DeviceName)
	}
	cas, err := a.TrustedCAs()
	if err != nil {
		return err
	}
	dir := o.Dir
	if dir == "" {
		dir = filepath.Join(a.Home, "satellite-cache")
	}
	zoneFile := func(file string) satellite.ManifestSource {
		return func(ctx context.Context, id string) ([]byte, error) {
			servers, err := a.ZoneServers()
			if err != nil {
				return nil, err
			}
			var errs []error
			for _, s := range servers {
				c, err := client.New(client.Options{BaseURL: s, CA: cas[0], MoreCAs: cas[1:], Timeout: 30 * time.Second, EnvProxy: true})
				if err != nil {
					return nil, err
				}
				var data []byte
				if file == "manifest.json" {
					var m json.RawMessage
					err = c.Get(ctx, api.ContentPrefix+"/"+id+"/"+file, &m)
					data = m
				} else {
					var resp *http.Response
					if resp, err = c.Stream(ctx, http.MethodGet, api.ContentPrefix+"/"+id+"/"+file, nil, ""); err == nil {
						data, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
						resp.Body.Close()
					}
				}
				c.Close()
				if err == nil {
					return data, nil
				}
				if client.IsStatus(err, http.StatusNotFound) {
					return nil, fmt.Errorf("%s: %w", s, satellite.ErrNotFound)
				}
				errs = append(errs, err)
			}
			if len(errs) == 0 {
				return nil, errors.New("no zone server known")
			}
			return nil, errors.Join(errs...)
		}
	}
	cache := &satellite.Cache{Dir: dir, Parents: o.Parents, Manifests: zoneFile("manifest.json"), Log: log}
	if content {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("satellite cache: %w", err)
		}
	}
	obs := newSatObserver(a, dir, content, auth)

	var servers []*http.Server
	serving := false            // the content port, outside servers
	done := make(chan error, 3) // content, authentication, metrics
	serve := func(ln net.Listener, h http.Handler, tlsConfig *tls.Config) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConfig}
		servers = append(servers, srv)
		go func() {
			if tlsConfig != nil {
				done <- srv.ServeTLS(ln, "", "")
			} else {
				done <- srv.Serve(ln)
			}
		}()
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range servers {
			s.Shutdown(sctx)
		}
	}()
	if auth {
		tf := &satellite.TLSFiles{CertFile: a.SatelliteCertPath(), KeyFile: a.SatelliteKeyPath(), CAFile: a.CACertPath(), Log: log}
		if err := tf.Load(); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errkind.New(errkind.NotFound, "no satellite certificate at %s: run 'zac asr -t all' (the zone CA issues one) or 'zac iac' (import one)", a.SatelliteCertPath())
			}
			return errkind.Wrap(errkind.Invalid, err)
		}
		relay := &satellite.Relay{Upstreams: cachedServers(a), Log: log, Client: relayClient(a, cas)}
		mux := http.NewServeMux()
		mux.Handle("/api/", relay)
		if content {
			cache.Infos = zoneFile("info")
			mux.Handle("/content/", cache.SecureHandler())
		}
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "not found", http.StatusNotFound) })
		addr := o.AuthListen
		if addr == "" {
			addr = portOf(sat.AuthURL, ":8443")
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return errkind.Wrap(errkind.Unavailable, fmt.Errorf("listen on %s: %w", addr, err))
		}
		serve(ln, obs.handler("satellite-auth", mux), tf.Config())
		fmt.Fprintf(o.IO.Out, "Authentication satellite of zone %s serving agents on https://%s (certificate %s).\n", st.ZoneName, ln.Addr(), a.SatelliteCertPath())
	}
	if content {
		addr := o.Listen
		if addr == "" {
			addr = portOf(sat.ContentURL, ":8080")
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return errkind.Wrap(errkind.Unavailable, fmt.Errorf("listen on %s: %w", addr, err))
		}
		// The fast path, with cache.Handler behind it; it stops (letting
		// downloads in flight finish) before this function returns.
		fs := cache.FileServer()
		fs.Fallback = obs.handler("satellite-content", cache.Handler())
		fs.Observe = obs.http.Observer("satellite-content", satellite.FragmentPattern)
		fctx, fcancel := context.WithCancel(ctx)
		fdone := make(chan struct{})
		go func() {
			defer close(fdone)
			if err := fs.Serve(fctx, ln); err != nil {
				done <- err
			}
		}()
		defer func() { fcancel(); <-fdone }()
		serving = true
		fmt.Fprintf(o.IO.Out, "Content satellite of zone %s serving %s on %s (parents %v).\n", st.ZoneName, dir, ln.Addr(), o.Parents)
		every := o.Prefetch
		if every == 0 && sat.Prefetch != "" {
			every, _ = time.ParseDuration(sat.Prefetch)
		}
		if every > 0 {
			go prefetchLoop(ctx, o, a, cache, dir, every)
		}
	}
	if (len(servers) > 0 || serving) && o.MetricsListen != "" {
		ln, err := observe.Listen(o.MetricsListen, "--metrics-listen")
		if err != nil {
			return errkind.Wrap(errkind.Unavailable, err)
		}
		go func() { done <- observe.Serve(ctx, ln, observe.Handler(obs.reg, obs.health), log) }()
		fmt.Fprintf(o.IO.Out, "Metrics on http://%s/metrics.\n", ln.Addr())
	}
	if len(servers) == 0 && !serving {
		return errkind.New(errkind.Usage, "device %s holds no satellite role this zac serves (Content, Authentication)", sat.DeviceName)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

// prefetchStatus is DIR/prefetch.json: the last round, for administrators
// and scripts.
type prefetchStatus struct {
	Time     time.Time `json:"time"`
	Interval string    `json:"interval"`
	satellite.PrefetchResult
	Error string `json:"error,omitempty"`
}

// prefetchLoop pulls the active packages' content at start and then every
// interval.
func prefetchLoop(ctx context.Context, o *SatelliteOptions, a *agent.Agent, cache *satellite.Cache, dir string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var res satellite.PrefetchResult
		pkgs, err := a.SatellitePackages(ctx)
		if err == nil {
			ids := make([]string, 0, len(pkgs))
			for _, p := range pkgs {
				ids = append(ids, p.ID)
			}
			res, err = cache.Prefetch(ctx, ids)
		}
		if ctx.Err() != nil {
			return
		}
		status := prefetchStatus{Time: time.Now().UTC(), Interval: every.String(), PrefetchResult: res}
		if err != nil {
			status.Error = err.Error()
		}
		fmt.Fprintf(o.IO.Out, "Prefetch: %d package(s), %d fragment(s) pulled, %d already here, %d failed.\n", res.Packages, res.Pulled, res.Held, res.Failed)
		if data, jerr := json.MarshalIndent(status, "", "  "); jerr == nil {
			atomicfile.WriteFile(filepath.Join(dir, "prefetch.json"), append(data, '\n'), 0o644)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cachedServers lists the zone servers to relay to, read from the agent's
// state at most once a minute (the agent's refresh keeps it current).
func cachedServers(a *agent.Agent) func() []string {
	var mu sync.Mutex
	var list []string
	var at time.Time
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		if list == nil || time.Since(at) > time.Minute {
			if l, err := a.ZoneServers(); err == nil {
				list, at = l, time.Now()
			}
		}
		return list
	}
}

// relayClient speaks to the zone servers as this device: its device
// certificate (read again at each handshake: the agent renews it), the
// trust store as the only roots.
func relayClient(a *agent.Agent, cas []*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 16,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				c, err := a.DeviceCert()
				return &c, err
			}}}}
}
