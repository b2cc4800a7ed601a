package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Listen opens the metrics listener at addr (host:port), with a message
// that names setting when the port is taken or not allowed.
func Listen(addr, setting string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("metrics address %s is already in use: stop what listens there or choose another with %s", addr, setting)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("not allowed to listen on metrics address %s: choose a port above 1023 with %s", addr, setting)
	case err != nil:
		return nil, fmt.Errorf("listen for metrics on %s (%s): %w", addr, setting, err)
	}
	return ln, nil
}

// Serve answers on ln with h (plain HTTP) until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NotFound answers what a metrics listener does not serve.
func NotFound(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not found: this port serves /metrics, /healthz and /readyz", http.StatusNotFound)
}
