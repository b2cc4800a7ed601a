// Package daemon runs the zone server process and controls it from the
// outside: the foreground daemon (zconfigure serve) with its pid file and
// logs, and start, stop, restart and status for a background one.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/metrics"
	"zonekit/internal/replica"
	"zonekit/internal/restore"
	"zonekit/internal/server"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// Serve runs the zone server of the zone at p until ctx is cancelled.
// Progress for people goes to stderr; the structured log to logs/.
func Serve(ctx context.Context, p config.Paths, stderr io.Writer) error {
	// A restore that a crash interrupted is finished or undone before
	// anything reads the configuration or the store it swaps.
	did, err := restore.Recover(p)
	if err != nil {
		return fmt.Errorf("zone server cannot start: %w", err)
	}
	if did != "" {
		fmt.Fprintf(stderr, "restore: %s\n", did)
	}
	if err := p.CheckZone(); err != nil {
		return err
	}
	cfg, err := config.LoadServer(p)
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(p.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: levelOf(cfg.LogLevel)}))
	if did != "" {
		log.Warn("restore: "+did, "home", p.Home)
	}

	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()

	srv, err := server.New(server.Options{Paths: p, Config: cfg, DB: zone.New(st, nil), Logger: log})
	if err != nil {
		// The log is where a service manager's operator looks first.
		log.Error("zone server cannot start", "err", err)
		return err
	}
	// Replication starts before the port opens and stops after it closes.
	bootstrap := srv.MayBootstrap()
	node, err := replica.Start(replica.Options{
		Dir: p.Raft(), ID: cfg.ServerID, Advertise: srv.Advertise(), Store: st,
		TLSConfig: srv.PeerTLSConfig, Forward: srv.Forward, Bootstrap: bootstrap,
		LogOutput: logFile, HeartbeatTimeout: cfg.Cluster.HeartbeatTimeout, ElectionTimeout: cfg.Cluster.HeartbeatTimeout,
		ZoneID: srv.ZoneID(), FetchStore: srv.FetchStore, Log: log,
	})
	if err != nil {
		log.Error("zone server cannot start", "err", err)
		return err
	}
	defer node.Shutdown()
	srv.SetReplica(node)
	if node.Bootstrapped() {
		srv.Bootstrapped()
	}
	node.WaitSingleLeader(5 * time.Second)
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return errkind.New(errkind.Unavailable, "port %d is already in use: stop what listens there or choose another with 'zconfigure -D server.port=N'", cfg.Port)
		}
		if errors.Is(err, syscall.EACCES) {
			return errkind.New(errkind.Unavailable, "not allowed to listen on port %d: run as root or choose a port above 1023 with 'zconfigure -D server.port=N'", cfg.Port)
		}
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer ln.Close()
	var cln net.Listener
	if cfg.ContentPort != 0 {
		if cln, err = listenContent(cfg); err != nil {
			return err
		}
		defer cln.Close()
	}
	contentDone := make(chan struct{})
	cctx, stopContent := context.WithCancel(ctx)
	defer func() { stopContent(); <-contentDone }()
	if cln != nil {
		go func() {
			defer close(contentDone)
			if err := srv.ServeContent(cctx, cln); err != nil {
				log.Error("content server failed", "err", err)
			}
		}()
	} else {
		close(contentDone)
	}
	if cfg.MetricsAddress != "" {
		mln, err := metrics.Listen(cfg.MetricsAddress, "'zconfigure -D metrics.address=HOST:PORT'")
		if err != nil {
			return errkind.Wrap(errkind.Unavailable, err)
		}
		defer mln.Close()
		mctx, stopMetrics := context.WithCancel(ctx)
		metricsDone := make(chan struct{})
		defer func() { stopMetrics(); <-metricsDone }()
		go func() {
			defer close(metricsDone)
			if err := metrics.Serve(mctx, mln, metrics.Handler(srv.Metrics().Registry, srv.Health()), log); err != nil {
				log.Error("metrics listener failed", "err", err)
			}
		}()
		log.Info("metrics listener started", "addr", mln.Addr().String())
	}
	if err := atomicfile.WriteFile(p.PidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(p.PidFile())
	fmt.Fprintf(stderr, "zone server listening on %s (pid %d); log in %s\n", ln.Addr(), os.Getpid(), p.LogFile())
	// The background loops are stopped, and waited for, before the pid
	// file goes and the store is closed.
	loops := srv.Loops()
	defer server.StopLoops(loops)
	return srv.Serve(ctx, ln, func() { server.StartLoops(ctx, loops) })
}

// listenContent opens the plain-HTTP port that serves package fragments.
func listenContent(cfg config.Server) (net.Listener, error) {
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.ContentPort))
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, errkind.New(errkind.Unavailable, "content port %d is already in use: stop what listens there or choose another with 'zconfigure -D server.content-port=N'", cfg.ContentPort)
	case errors.Is(err, syscall.EACCES):
		return nil, errkind.New(errkind.Unavailable, "not allowed to listen on content port %d: run as root or choose a port above 1023 with 'zconfigure -D server.content-port=N'", cfg.ContentPort)
	case err != nil:
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

func levelOf(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
