package satellite

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"zonekit/internal/api"
)

// Relay is the authentication satellite's API side: it takes the calls
// agents make to a zone server (registration, refresh, device packages and
// status, certificate renewal) over HTTPS with the satellite's own
// certificate, and passes them to the zone servers in order until one
// answers, saying which agent it speaks for (api.HeaderRelayedFor and, when
// the agent showed one that this satellite verified in its handshake, its
// device certificate: api.HeaderRelayedCert). It speaks to the zone with
// its own device certificate, which a zone server accepts as a relay only
// while the device holds the Authentication role.
type Relay struct {
	// Upstreams lists the zone servers' base URLs (https://HOST:PORT) in
	// the order to try them.
	Upstreams func() []string
	// Client talks to them: the zone CA as trust, the satellite's device
	// certificate as client certificate.
	Client *http.Client
	Log    *slog.Logger
}

// maxRelayBody bounds what an agent may send through the satellite: the
// largest agent call is a CSR or a status report.
const maxRelayBody = 1 << 20

// relayed says whether the satellite passes a call on: only what agents
// call, never the administrators' API.
func relayed(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && p == api.Prefix+"/registrations",
		r.Method == http.MethodGet && (p == api.Prefix+"/trust" || p == "/api/version"),
		p == api.Prefix+"/device" || strings.HasPrefix(p, api.Prefix+"/device/"):
		return true
	}
	return false
}

func (rl *Relay) log() *slog.Logger {
	if rl.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rl.Log
}

func relayError(w http.ResponseWriter, status int, code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Error: api.ErrorBody{Code: code, Message: fmt.Sprintf(format, args...)}})
}

func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !relayed(r) {
		relayError(w, http.StatusNotFound, "not_found", "no such route on an authentication satellite: %s %s", r.Method, r.URL.Path)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRelayBody+1))
	if err != nil {
		relayError(w, http.StatusBadRequest, "usage", "read request: %v", err)
		return
	}
	if len(body) > maxRelayBody {
		relayError(w, http.StatusRequestEntityTooLarge, "usage", "request larger than %d bytes", maxRelayBody)
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	var cert string
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert = base64.StdEncoding.EncodeToString(r.TLS.VerifiedChains[0][0].Raw)
	}
	var errs []error
	for _, up := range rl.Upstreams() {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimRight(up, "/")+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, h := range []string{"Content-Type", "Accept", "User-Agent"} {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		// Whatever the agent sent under these names is replaced.
		req.Header.Set(api.HeaderRelayedFor, host)
		if cert != "" {
			req.Header.Set(api.HeaderRelayedCert, cert)
		}
		resp, err := rl.Client.Do(req)
		if err != nil {
			errs = append(errs, err)
			rl.log().Warn("relay", "upstream", up, "err", err)
			continue
		}
		if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout {
			resp.Body.Close()
			errs = append(errs, fmt.Errorf("%s answered %s", up, resp.Status))
			continue
		}
		for k, vs := range resp.Header {
			switch http.CanonicalHeaderKey(k) {
			case "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length":
				continue
			}
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		rl.log().Info("relayed", "agent", host, "call", r.Method+" "+r.URL.Path, "upstream", up, "status", resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no zone server known"))
	}
	rl.log().Error("relay", "path", r.URL.Path, "err", errors.Join(errs...))
	relayError(w, http.StatusServiceUnavailable, "unavailable", "the authentication satellite reaches no zone server: %v", errs[0])
}
