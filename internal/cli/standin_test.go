package cli_test

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// standIn starts a TLS server answering with h in place of a zone server,
// points ZONEKIT_HOME and ZMAN_CONFIG_DIR at a fresh directory and returns
// it with the zman flags that reach the server as an administrator.
func standIn(t *testing.T, h http.Handler) (dir string, global []string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	dir = t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	t.Setenv("ZONEKIT_HOME", dir)
	t.Setenv("ZMAN_CONFIG_DIR", dir)
	return dir, []string{"--host", u.Hostname(), "--port", u.Port(), "--cacert", ca, "-U", "admin", "-P", "pw"}
}
