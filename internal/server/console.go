package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"zonekit/internal/client"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/server/console"
)

// consoleActor marks a request the core makes for an administrator
// signed in to the web console. Its type is unexported: no client can
// set it, only consoleBackend.Call.
type consoleActor struct{}

// adminOf is the administrator a request speaks for: the console's
// signed-in administrator, or the request's own credentials.
func (s *Server) adminOf(r *http.Request) (string, error) {
	if a, ok := r.Context().Value(consoleActor{}).(string); ok && a != "" {
		return a, nil
	}
	return s.auth.authenticate(r)
}

// consoleBackend is the core as the web console sees it (console.Backend).
type consoleBackend struct {
	s   *Server
	mux *http.ServeMux
}

func (b consoleBackend) Login(r *http.Request, name, pw string) (string, error) {
	return b.s.auth.login(r, name, pw)
}

func (b consoleBackend) StaleSince() string { return b.s.cluster.StaleSince() }

// Call serves an API request in process, through the API's own mux and
// handlers (the same checks, zone commands and audit records as zman's),
// as administrator actor.
func (b consoleBackend) Call(r *http.Request, actor, method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	ctx := context.WithValue(r.Context(), consoleActor{}, actor)
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return err
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &answer{header: http.Header{}, status: http.StatusOK}
	b.mux.ServeHTTP(rec, req)
	if rec.status >= 300 {
		return client.AnswerError(rec.status, rec.body.Bytes())
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(rec.body.Bytes(), out)
}

// answer collects an in-process API answer.
type answer struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(code int) {
	if !a.wrote {
		a.status, a.wrote = code, true
	}
}

func (a *answer) Write(p []byte) (int, error) {
	a.wrote = true
	return a.body.Write(p)
}

func (s *Server) consoleHandlers(mux *http.ServeMux) *console.Handlers {
	return &console.Handlers{Zone: s.db, Backend: consoleBackend{s: s, mux: mux}, Now: s.now, Log: s.log,
		Images: func() ([]imaging.Image, error) { return imaging.List(s.content.ImagesDir()) }}
}
