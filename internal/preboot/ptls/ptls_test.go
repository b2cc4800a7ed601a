package ptls

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"zonekit/internal/pki"
)

func material(t *testing.T, zone string) *Material {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(zone, pki.ECDSAP256, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: "srv." + zone, IPs: []net.IP{net.IPv4(192, 0, 2, 1)}, PublicKey: key.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	return &Material{CA: ca.Cert, Cert: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
}

// TestClientConfig: the zone's server is trusted at an address its
// certificate does not name; another zone's is not.
func TestClientConfig(t *testing.T) {
	ours, theirs := material(t, "ours"), material(t, "theirs")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = ours.ServerConfig()
	srv.StartTLS()
	defer srv.Close()
	get := func(cfg *tls.Config) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(srv.URL) // 127.0.0.1: not in the certificate
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(ClientConfig(ours.CA, nil)); err != nil {
		t.Fatalf("our zone's server: %v", err)
	}
	if err := get(ClientConfig(theirs.CA, nil)); err == nil {
		t.Fatal("trusted a server of another zone")
	}
	if !IsServerCert(ours.Cert.Leaf) {
		t.Fatal("a server certificate not recognised")
	}
}
