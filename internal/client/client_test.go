package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
)

func TestParseServerURL(t *testing.T) {
	tests := []struct {
		in, want string
		kind     errkind.Kind // for errors
		errSays  string
	}{
		{in: "https://zone1.acme.example:8443", want: "https://zone1.acme.example:8443"},
		{in: "https://zone1.acme.example", want: "https://zone1.acme.example:443"},
		{in: "zone1.acme.example", want: "https://zone1.acme.example:443"},
		{in: "zone1.acme.example:9443", want: "https://zone1.acme.example:9443"},
		{in: "10.0.0.5", want: "https://10.0.0.5:443"},
		{in: "https://[::1]:8443", want: "https://[::1]:8443"},
		{in: "https://[::1]", want: "https://[::1]:443"},
		{in: "https://zone1.acme.example:8443/api/v1?x=1#frag", want: "https://zone1.acme.example:8443"},
		{in: "http://zone1.acme.example", kind: errkind.Usage, errSays: "only https"},
		{in: "ftp://zone1.acme.example", kind: errkind.Usage, errSays: "only https"},
		{in: "https://", kind: errkind.Usage, errSays: "want https://host:port"},
		{in: "", kind: errkind.Usage, errSays: "want https://host:port"},
		{in: "https://zone1 .example", kind: errkind.Usage, errSays: "want https://host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := client.ParseServerURL(tt.in)
			if tt.errSays != "" {
				if err == nil {
					t.Fatalf("ParseServerURL(%q) = %s; want an error", tt.in, u)
				}
				if errkind.Of(err) != tt.kind || !strings.Contains(err.Error(), tt.errSays) {
					t.Errorf("error %q; want kind %d saying %q", err, tt.kind, tt.errSays)
				}
				return
			}
			if err != nil || u.String() != tt.want {
				t.Errorf("ParseServerURL(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
			}
		})
	}
}

func TestNewNeedsCA(t *testing.T) {
	_, err := client.New(client.Options{BaseURL: "https://localhost"})
	if errkind.Of(err) != errkind.Usage || !strings.Contains(err.Error(), "--cacert") {
		t.Errorf("New without a CA = %v; want a usage error naming --cacert", err)
	}
}

var zoneCAOnce = sync.OnceValues(func() (*pki.CA, error) { return pki.NewCA("Acme", pki.ECDSAP256, 1, time.Now()) })

func zoneCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := zoneCAOnce()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// zoneServer starts a TLS server whose certificate the zone CA issued for
// 127.0.0.1 (and whose validity ends at notAfter, if set).
func zoneServer(t *testing.T, h http.Handler, names []string, notBefore, notAfter time.Time) *httptest.Server {
	t.Helper()
	ca := zoneCA(t)
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if notBefore.IsZero() {
		notBefore = time.Now()
	}
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: names[0], DNSNames: names[1:],
		IPs: []net.IP{net.ParseIP("127.0.0.1")}, PublicKey: key.Public(), NotAfter: notAfter}, notBefore)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	srv.Config.ErrorLog = quiet
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, base string, ca *x509.Certificate, o client.Options) *client.Client {
	t.Helper()
	o.BaseURL, o.CA = base, ca
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// quiet drops the server's log of the handshakes these tests make fail.
var quiet = log.New(io.Discard, "", 0)

func ok(w http.ResponseWriter, _ *http.Request) {
	json.NewEncoder(w).Encode(api.Version{Zone: "Acme"})
}

func TestRefusesServerOfAnotherCA(t *testing.T) {
	// httptest's own certificate: valid for 127.0.0.1, but not from the zone CA.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	srv.Config.ErrorLog = quiet
	srv.StartTLS()
	defer srv.Close()
	ca := zoneCA(t)
	c := newClient(t, srv.URL, ca.Cert, client.Options{})
	err := c.Get(context.Background(), "/api/version", nil)
	if errkind.Of(err) != errkind.Auth {
		t.Fatalf("Get = %v (kind %d); want an Auth error", err, errkind.Of(err))
	}
	if !strings.Contains(err.Error(), "zone CA") || !strings.Contains(err.Error(), pki.Fingerprint(ca.Cert, "sha256")) {
		t.Errorf("error %q should say the server is not from the zone CA and give the CA's fingerprint", err)
	}
}

func TestTLSFailuresExplained(t *testing.T) {
	ca := zoneCA(t)
	tests := []struct {
		name      string
		names     []string
		notBefore time.Time
		notAfter  time.Time
		host      string
		says      string
	}{
		{name: "expired", names: []string{"localhost"}, notBefore: time.Now().Add(-72 * time.Hour), notAfter: time.Now().Add(-time.Hour), host: "127.0.0.1", says: "zconfigure -c SSL"},
		{name: "wrong host name", names: []string{"zone9.acme.example"}, host: "localhost", says: "zone9.acme.example, not localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := zoneServer(t, http.HandlerFunc(ok), tt.names, tt.notBefore, tt.notAfter)
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			c := newClient(t, "https://"+net.JoinHostPort(tt.host, port), ca.Cert, client.Options{})
			err := c.Get(context.Background(), "/api/version", nil)
			if errkind.Of(err) != errkind.Auth || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Get = %v; want an Auth error saying %q", err, tt.says)
			}
		})
	}
}

func TestDo(t *testing.T) {
	var gotAuth, gotType, gotBody string
	srv := zoneServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotType = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		gotBody = b.String()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(api.Group{Name: "lab", Members: []string{}})
	}), []string{"localhost"}, time.Time{}, time.Time{})
	var trace bytes.Buffer
	c := newClient(t, srv.URL, zoneCA(t).Cert, client.Options{Auth: client.Bearer("zk_tok"), Trace: &trace})
	var g api.Group
	if err := c.Post(context.Background(), api.Prefix+"/groups", api.GroupCreate{Name: "lab"}, &g); err != nil {
		t.Fatal(err)
	}
	if g.Name != "lab" {
		t.Errorf("decoded %+v", g)
	}
	if gotAuth != "Bearer zk_tok" || gotType != "application/json" || !strings.Contains(gotBody, `"name":"lab"`) {
		t.Errorf("server saw auth %q, type %q, body %q", gotAuth, gotType, gotBody)
	}
	if !strings.Contains(trace.String(), "POST "+srv.URL+api.Prefix+"/groups -> 201") {
		t.Errorf("trace = %q", trace.String())
	}

	c = newClient(t, srv.URL, zoneCA(t).Cert, client.Options{Auth: client.Basic("Administrator", "pw")})
	c.Get(context.Background(), "/", nil)
	if !strings.HasPrefix(gotAuth, "Basic ") {
		t.Errorf("Basic auth sent %q", gotAuth)
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		status int
		body   string
		kind   errkind.Kind
		says   string
	}{
		{401, `{"error":{"code":"auth","message":"authentication failed"}}`, errkind.Auth, "authentication failed"},
		{404, `{"error":{"code":"not_found","message":"device \"pc9\" not found"}}`, errkind.NotFound, `device "pc9" not found`},
		{409, `{"error":{"code":"exists","message":"group \"lab\" already exists"}}`, errkind.Exists, "already exists"},
		{400, `{"error":{"code":"usage","message":"malformed JSON request"}}`, errkind.Refused, "malformed JSON"},
		{409, `{"error":{"code":"refused","message":"server x holds the CertAuth role"}}`, errkind.Refused, "CertAuth"},
		{503, `{"error":{"code":"unavailable","message":"not the CertAuth server"}}`, errkind.Unavailable, "CertAuth"},
		{500, `{"error":{"code":"failure","message":"internal error"}}`, errkind.Failure, "internal error"},
		{418, `{"error":{"code":"teapot","message":"short and stout"}}`, errkind.Failure, "short and stout"},
		{502, `<html>Bad Gateway</html>`, errkind.Failure, "zone server answered 502 Bad Gateway"},
		{404, ``, errkind.Failure, "404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.says, func(t *testing.T) {
			srv := zoneServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}), []string{"localhost"}, time.Time{}, time.Time{})
			c := newClient(t, srv.URL, zoneCA(t).Cert, client.Options{})
			err := c.Delete(context.Background(), "/x")
			if err == nil {
				t.Fatal("Delete succeeded")
			}
			if errkind.Of(err) != tt.kind || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q (kind %d); want kind %d saying %q", err, errkind.Of(err), tt.kind, tt.says)
			}
			isJSON := strings.HasPrefix(tt.body, "{")
			if client.IsStatus(err, tt.status) != isJSON {
				t.Errorf("IsStatus(err, %d) = %v, want %v", tt.status, !isJSON, isJSON)
			}
			if client.IsStatus(err, tt.status+1) {
				t.Errorf("IsStatus matches status %d too", tt.status+1)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	ca := zoneCA(t)
	t.Run("nothing listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := newClient(t, "https://"+addr, ca.Cert, client.Options{})
		err = c.Get(context.Background(), "/", nil)
		if errkind.Of(err) != errkind.Unavailable || !strings.Contains(err.Error(), "cannot reach") {
			t.Errorf("Get = %v; want Unavailable saying cannot reach", err)
		}
	})
	t.Run("no answer in time", func(t *testing.T) {
		// A hung server: it answers nothing, not even when the client gives
		// up (returning on r.Context().Done() would race an empty 200 in).
		release := make(chan struct{})
		srv := zoneServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
		}), []string{"localhost"}, time.Time{}, time.Time{})
		defer close(release)
		c := newClient(t, srv.URL, ca.Cert, client.Options{Timeout: 200 * time.Millisecond})
		err := c.Get(context.Background(), "/", nil)
		if errkind.Of(err) != errkind.Unavailable || !strings.Contains(err.Error(), "in time") {
			t.Errorf("Get = %v; want Unavailable saying the server did not answer in time", err)
		}
	})
}

// Once the zone CA has expired, a running server is refused with what
// happened and the way out; --allow-expired-ca reaches it (to remint the
// CA at once), still checking chain and name.
func TestExpiredZoneCA(t *testing.T) {
	start := time.Now().Add(-3 * 365 * 24 * time.Hour)
	ca, err := pki.NewCA("Old", pki.ECDSAP256, 1, start)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: "localhost", IPs: []net.IP{net.ParseIP("127.0.0.1")}, PublicKey: key.Public()}, start)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	srv.Config.ErrorLog = quiet
	srv.StartTLS()
	t.Cleanup(srv.Close)

	err = newClient(t, srv.URL, ca.Cert, client.Options{}).Get(context.Background(), "/api/version", nil)
	if errkind.Of(err) != errkind.Auth || !strings.Contains(err.Error(), "the zone CA \"zonekit zone CA Old\"") ||
		!strings.Contains(err.Error(), "zman --allow-expired-ca certificate-authority-remint") {
		t.Fatalf("Get = %v; want an Auth error saying the CA expired and how to remint it", err)
	}
	var v api.Version
	if err := newClient(t, srv.URL, ca.Cert, client.Options{AllowExpiredCA: true}).Get(context.Background(), "/api/version", &v); err != nil || v.Zone != "Acme" {
		t.Fatalf("with AllowExpiredCA: %v %+v", err, v)
	}
	// It is no way around the CA: a server of another CA is still refused.
	other := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	other.Config.ErrorLog = quiet
	other.StartTLS()
	t.Cleanup(other.Close)
	if err := newClient(t, other.URL, ca.Cert, client.Options{AllowExpiredCA: true}).Get(context.Background(), "/api/version", nil); err == nil {
		t.Fatal("AllowExpiredCA accepted a server of another CA")
	}
}
