// Package client is the zone server's API client, used by zman and zac. It
// trusts exactly the zone CA it is given, never the system roots, and turns
// TLS and API failures into one-line errors that say what to do.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
)

// Options configure a Client.
type Options struct {
	BaseURL    string              // https://host:port
	CA         *x509.Certificate   // the zone CA; required
	MoreCAs    []*x509.Certificate // also trusted: the future CA while a change of CA is under way
	ClientCert *tls.Certificate    // a device certificate, for device routes
	Timeout    time.Duration       // whole-request limit; default 30s
	// Auth, when set, authorises each request (Basic or Bearer).
	Auth func(*http.Request)
	// Trace, when set, receives one line per request (zman --debug).
	Trace io.Writer
	// Observe, when set, sees every response before it is read (zman
	// watches the certificate-expiry header with it).
	Observe func(*http.Response)
	// AllowExpiredCA verifies the server as of the last minute the zone
	// CA was valid, once it has expired: the only way to reach a running
	// server to remint the CA at once (zman --allow-expired-ca). Names,
	// chain and signatures are still checked.
	AllowExpiredCA bool
	// ServerName, when set, is the name the server's certificate is
	// verified as instead of the host in BaseURL (zman reaching the local
	// server at a listen address its certificate does not name).
	ServerName string
	// EnvProxy sends requests through the proxy HTTPS_PROXY/HTTP_PROXY
	// name, except to hosts NO_PROXY lists (zac, on networks that reach
	// the zone only through a proxy). TLS runs end to end through the
	// proxy's CONNECT tunnel, still verified against the zone CA, so the
	// proxy sees only the host name.
	EnvProxy bool
	// ReachHint, when set, is added to the error when the server cannot
	// be reached: what was tried and how to name another server.
	ReachHint string
}

// Client talks to one zone server.
type Client struct {
	base    *url.URL
	ca      *x509.Certificate
	http    *http.Client
	stream  *http.Client // no whole-request timeout: backups run as long as they need
	auth    func(*http.Request)
	trace   io.Writer
	observe func(*http.Response)
	hint    string
}

// New builds a client. It does no I/O.
func New(o Options) (*Client, error) {
	if o.CA == nil {
		return nil, errkind.New(errkind.Usage, "no zone CA certificate: pass --cacert FILE")
	}
	u, err := ParseServerURL(o.BaseURL)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(o.CA)
	for _, c := range o.MoreCAs {
		pool.AddCert(c)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.AllowExpiredCA && time.Now().After(o.CA.NotAfter) {
		at := o.CA.NotAfter.Add(-time.Minute)
		host := u.Hostname()
		if o.ServerName != "" {
			host = o.ServerName
		}
		// The standard verification would refuse the expired root; this
		// one is the same, at an earlier clock.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: host, CurrentTime: at,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		}
	}
	if o.ClientCert != nil {
		tc.Certificates = []tls.Certificate{*o.ClientCert}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   false, // one-shot clients: HTTP/1.1 costs less than an HTTP/2 setup
		MaxIdleConnsPerHost: 4,
		Proxy:               nil, // the zone is reached directly unless EnvProxy
		// Backups and packages stream through these: the 4 KiB default
		// cut a restore's upload into twice as many TLS records and
		// system calls on both sides as 16 KiB records need.
		WriteBufferSize: 64 << 10,
		ReadBufferSize:  64 << 10,
		// Bodies of known length wait for the server's 100 Continue
		// (StreamLength); a server that never sends one gets the body
		// after this.
		ExpectContinueTimeout: 2 * time.Second,
	}
	if o.EnvProxy {
		tr.Proxy = http.ProxyFromEnvironment
	}
	return &Client{base: u, ca: o.CA, auth: o.Auth, trace: o.Trace, observe: o.Observe, hint: o.ReachHint,
		http: &http.Client{Transport: tr, Timeout: timeout}, stream: &http.Client{Transport: tr}}, nil
}

// ParseServerURL accepts https://host[:port] (port 443 by default).
func ParseServerURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, errkind.New(errkind.Usage, "server address %q: want https://host:port", s)
	}
	if u.Scheme != "https" {
		return nil, errkind.New(errkind.Usage, "server address %q: only https is supported", s)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "443")
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	return u, nil
}

// BaseURL returns the server's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Do sends in (if not nil) as JSON and decodes the response into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.auth != nil {
		c.auth(req)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	c.traceRequest(req, resp, err, time.Since(start).Round(time.Microsecond).String())
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("read response from %s: %w", c.base.Host, err))
	}
	if resp.StatusCode >= 300 {
		return AnswerError(resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("malformed response from %s: %w", c.base.Host, err)
		}
	}
	return nil
}

// AnswerError turns a zone server's error answer (status and body) into an
// error of the kind the server named, with its message.
func AnswerError(status int, data []byte) error {
	var e api.Error
	if json.Unmarshal(data, &e) != nil || e.Error.Message == "" {
		return fmt.Errorf("zone server answered %d %s", status, http.StatusText(status))
	}
	// A server's "usage" answer (400) refuses the request as it stands;
	// it is never a mistake on the client's command line, so it is not
	// a usage error here (exit 1, no "--help" hint).
	kinds := map[string]errkind.Kind{
		"auth": errkind.Auth, "not_found": errkind.NotFound, "exists": errkind.Exists,
		"usage": errkind.Refused, "refused": errkind.Refused, "unavailable": errkind.Unavailable, "invalid": errkind.Invalid,
	}
	k, ok := kinds[e.Error.Code]
	if !ok {
		k = errkind.Failure
	}
	return errkind.Wrap(k, &StatusError{Status: status, Message: e.Error.Message})
}

// StatusError is an answer from the zone server (as opposed to a failure to
// reach or trust it).
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// IsStatus reports whether err is the server answering with status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// explain turns transport errors into advice.
func (c *Client) explain(err error) error {
	host := c.base.Host
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	var tlsErr *tls.CertificateVerificationError
	switch {
	case (errors.As(err, &unknown) || errors.As(err, &invalid)) && time.Now().After(c.ca.NotAfter):
		// Go reports a chain to an expired root as an unknown authority,
		// or the server's certificate (which ends with the CA) as expired.
		return errkind.New(errkind.Auth, "refusing %s: the zone CA %q (SHA-256 %s) expired on %s, so nothing it issued is valid any more. "+
			"While the server runs, remint the CA at once: zman --allow-expired-ca certificate-authority-remint (the activation is immediate), then devices run 'zac retrust'; "+
			"or stop the server and run 'zconfigure -c SSL' (option 2)",
			host, c.ca.Subject.CommonName, pki.Fingerprint(c.ca, "sha256"), c.ca.NotAfter.UTC().Format(time.DateOnly))
	case errors.As(err, &unknown):
		return errkind.New(errkind.Auth, "refusing %s: its certificate is not issued by the zone CA (SHA-256 %s)", host, pki.Fingerprint(c.ca, "sha256"))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return errkind.New(errkind.Auth, "refusing %s: its certificate has expired or is not yet valid (%v); on the server run 'zconfigure -c SSL'", host, invalid.Detail)
	case errors.As(err, &hostErr):
		return errkind.New(errkind.Auth, "refusing %s: its certificate is for %s, not %s", host, strings.Join(hostErr.Certificate.DNSNames, ", "), hostErr.Host)
	case errors.As(err, &tlsErr):
		return errkind.New(errkind.Auth, "refusing %s: %v", host, tlsErr.Err)
	}
	hint := ""
	if c.hint != "" {
		hint = "; " + c.hint
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return errkind.New(errkind.Unavailable, "zone server %s did not answer in time%s", host, hint)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return errkind.New(errkind.Unavailable, "cannot reach zone server %s: %v%s", host, opErr.Err, hint)
	}
	return errkind.Wrap(errkind.Unavailable, fmt.Errorf("zone server %s: %w%s", host, err, hint))
}

// Stream sends body (if not nil) as contentType and returns the response
// for the caller to read as it arrives. The request is bounded by ctx only,
// not by the client's timeout; a non-2xx answer is returned as an error.
func (c *Client) Stream(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	return c.StreamLength(ctx, method, path, body, -1, contentType)
}

// StreamLength is Stream with a body of length bytes (-1: unknown). A known
// length goes out as is, without chunked encoding, and the request's
// headers are sent before the body is read.
func (c *Client) StreamLength(ctx context.Context, method, path string, body io.Reader, length int64, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, err
	}
	// The transport waits for a body blocked in Read even once ctx has
	// ended (a pipe whose writer is still deriving a key, say): a pipe is
	// closed with ctx so that the request ends with it.
	if p, ok := body.(interface{ CloseWithError(error) error }); ok {
		context.AfterFunc(ctx, func() { p.CloseWithError(ctx.Err()) })
	}
	if body != nil && length >= 0 {
		req.ContentLength = length
		// The headers go out at once instead of with the first 64 KiB
		// of body: the server starts on the request (a restore reads
		// the live configuration) while the body is still being made.
		req.Header.Set("Expect", "100-continue")
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := c.stream.Do(req)
	c.traceRequest(req, resp, err, "streaming")
	if err != nil {
		return nil, noAnswer{c.explain(err)}
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, AnswerError(resp.StatusCode, data)
	}
	return resp, nil
}

// traceRequest writes one --debug line about a request.
func (c *Client) traceRequest(req *http.Request, resp *http.Response, err error, note string) {
	if c.observe != nil && resp != nil {
		c.observe(resp)
	}
	if c.trace == nil {
		return
	}
	status := "error"
	if err == nil {
		status = resp.Status
	}
	fmt.Fprintf(c.trace, "debug: %s %s -> %s (%s)\n", req.Method, req.URL, status, note)
}

// Basic authorises with an administrator name and password.
func Basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// Bearer authorises with a stored credential token.
func Bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// Get is Do with GET.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// Post is Do with POST.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.Do(ctx, http.MethodPost, path, in, out)
}

// Delete is Do with DELETE.
func (c *Client) Delete(ctx context.Context, path string) error {
	return c.Do(ctx, http.MethodDelete, path, nil, nil)
}

// noAnswer marks an error after which the server sent no answer at all
// (connection refused, closed or timed out), as opposed to one it sent.
type noAnswer struct{ error }

func (e noAnswer) Unwrap() error { return e.error }

// NoAnswer reports whether err (from Stream) means the server sent no
// answer: it may have died while it handled the request.
func NoAnswer(err error) bool {
	var n noAnswer
	return errors.As(err, &n)
}
