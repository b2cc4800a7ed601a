package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
)

// serveContent serves the content repository: over HTTPS everything
// (info files, manifests, fragments), over plain HTTP fragments only.
// Files go out through http.ServeContent on the *os.File, which answers
// Range and conditional requests with the right Content-Length, and on a
// plain TCP connection hands the bytes to the kernel (sendfile).
func (s *Server) serveContent(plain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, file := r.PathValue("id"), r.PathValue("file")
		p, ok := s.pkg.repo.ServedFile(id, file, plain)
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		f, err := os.Open(p)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h := w.Header()
		switch file {
		case content.InfoFile:
			h.Set("Content-Type", "application/xml")
			h.Set("Cache-Control", "no-cache")
		case content.ManifestFile:
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-cache")
		default:
			// A package's files never change under its id.
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Cache-Control", "max-age=86400")
		}
		h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()))
		http.ServeContent(w, r, "", fi.ModTime(), f)
	}
}

// ContentHandler is the plain-HTTP listener's handler: fragments only.
func (s *Server) ContentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.ContentPrefix+"/{id}/{file}", s.serveContent(true))
	mux.HandleFunc("/ocsinventory", s.ocsHandler(false))
	s.setupRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "not found", http.StatusNotFound) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Access logs of fragments are debug material: a package is
		// thousands of requests per device.
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			mux.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &sendfileRecorder{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(rec, r)
		s.log.Debug("content", "method", r.Method, "path", r.URL.Path, "status", rec.status, "range", r.Header.Get("Range"),
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr)
	})
}

// sendfileRecorder records the status and keeps io.ReaderFrom, which is
// the path to sendfile.
type sendfileRecorder struct {
	http.ResponseWriter
	status int
}

func (rec *sendfileRecorder) WriteHeader(code int) {
	rec.status = code
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *sendfileRecorder) ReadFrom(src io.Reader) (int64, error) {
	return rec.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
}

// ServeContent answers plain-HTTP fragment requests on ln until ctx is
// cancelled, then lets downloads in flight finish (up to the shutdown
// timeout).
func (s *Server) ServeContent(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.metrics.HTTP.Handler("content", s.ContentHandler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("content server started", "addr", ln.Addr().String(), "repository", s.pkg.repo.Dir())
	select {
	case err := <-errc:
		return fmt.Errorf("serve content: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("content shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
