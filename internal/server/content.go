package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/fileserve"
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

// fragmentPattern is the content port's route of fragments, served on the
// fast path (resolveFragment) and, for the requests it leaves, by the mux.
const fragmentPattern = "GET " + api.ContentPrefix + "/{id}/{file}"

// ContentHandler is the plain-HTTP listener's handler: fragments only.
func (s *Server) ContentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(fragmentPattern, s.serveContent(true))
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
// timeout). Fragments go out on internal/fileserve's fast path (open
// files kept, header and body in one send); everything else, and every
// request the fast path leaves, goes to ContentHandler through net/http.
func (s *Server) ServeContent(ctx context.Context, ln net.Listener) error {
	fs := &fileserve.Server{
		Resolve:           s.resolveFragment,
		Fallback:          s.metrics.HTTP.Handler("content", s.ContentHandler()),
		Observe:           s.metrics.HTTP.Observer("content", fragmentPattern),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   s.shutdown,
		Log:               s.log,
	}
	s.log.Info("content server started", "addr", ln.Addr().String(), "repository", s.pkg.repo.Dir())
	if err := fs.Serve(ctx, ln); err != nil {
		return fmt.Errorf("serve content: %w", err)
	}
	return nil
}

// resolveFragment maps /content/ID/ID-N to the fragment's file; other
// paths (and info files, not served on the plain port) go to the handler.
func (s *Server) resolveFragment(_ context.Context, path string) (fileserve.Target, error) {
	rest, ok := strings.CutPrefix(path, api.ContentPrefix+"/")
	if !ok {
		return fileserve.Target{}, fileserve.ErrNotHandled
	}
	id, file, ok := strings.Cut(rest, "/")
	if !ok {
		return fileserve.Target{}, fileserve.ErrNotHandled
	}
	p, ok := s.pkg.repo.ServedFile(id, file, true)
	if !ok {
		return fileserve.Target{}, fileserve.ErrNotHandled
	}
	// The headers serveContent sets for a fragment.
	return fileserve.Target{Path: p, ContentType: "application/octet-stream", CacheControl: "max-age=86400"}, nil
}
