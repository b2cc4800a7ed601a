package satellite

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"zonekit/internal/api"
	"zonekit/internal/content"
)

// The relay passes agents' calls to the first zone server that answers,
// names the agent, replaces what the agent said under the relay headers,
// and passes nothing of the administrators' API.
func TestRelayFailsOverAndNamesTheAgent(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := new(bytes.Buffer)
		body.ReadFrom(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" for="+r.Header.Get(api.HeaderRelayedFor)+
			" cert="+r.Header.Get(api.HeaderRelayedCert)+" body="+body.String())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	rl := &Relay{Upstreams: func() []string { return []string{"http://127.0.0.1:1", down.URL, up.URL} }, Client: up.Client()}
	sat := httptest.NewServer(rl)
	defer sat.Close()

	req, _ := http.NewRequest("POST", sat.URL+api.Prefix+"/registrations?x=1", strings.NewReader(`{"csr":"..."}`))
	req.Header.Set(api.HeaderRelayedFor, "10.6.6.6") // spoofed: replaced
	req.Header.Set(api.HeaderRelayedCert, "Zm9v")    // spoofed: dropped (no verified certificate)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("relayed answer %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if len(seen) != 1 || seen[0] != `POST /api/v1/registrations?x=1 for=127.0.0.1 cert= body={"csr":"..."}` {
		t.Errorf("upstream saw %q", seen)
	}
	for _, path := range []string{api.Prefix + "/devices", api.Prefix + "/packages", "/content/1/info", api.Prefix + "/deviceX"} {
		if st, _ := get(t, sat.URL+path); st != http.StatusNotFound {
			t.Errorf("GET %s through the relay: %d, want 404", path, st)
		}
	}
	if st, _ := get(t, sat.URL+api.Prefix+"/device/packages"); st != http.StatusCreated {
		t.Errorf("device route: %d", st)
	}
	// No zone server answers: 503, so that the agent tries its next server.
	rl.Upstreams = func() []string { return []string{down.URL} }
	if st, b := get(t, sat.URL+api.Prefix+"/device/zone"); st != http.StatusServiceUnavailable || !strings.Contains(string(b), "reaches no zone server") {
		t.Errorf("all down: %d %s", st, b)
	}
}

// Prefetch pulls every fragment of the packages named, once; the second
// round finds them here; the HTTPS side serves info and manifest, the
// info's last copy while the zone is down.
func TestPrefetchAndSecureHandler(t *testing.T) {
	o := newOrigin()
	o.add("300", fill(4000, 'x'), fill(4000, 'y'), fill(10, 'z'))
	o.add("301", fill(4000, 'x')) // shares a fragment with 300
	parent := httptest.NewServer(o)
	info := content.Info{ID: "300", Priority: 5, Action: "STORE", Path: "/tmp", Proto: "HTTP", Frags: 3, Digest: strings.Repeat("a", 32)}.Marshal()
	if _, err := content.ParseInfo(info); err != nil {
		t.Fatalf("test info file: %v", err)
	}
	zoneUp := true
	infos := func(ctx context.Context, id string) ([]byte, error) {
		if !zoneUp {
			return nil, errors.New("zone down")
		}
		if id != "300" {
			return nil, ErrNotFound
		}
		return info, nil
	}
	c := &Cache{Dir: t.TempDir(), Parents: []string{parent.URL + "/content"}, Manifests: o.source, Infos: infos}
	res, err := c.Prefetch(context.Background(), []string{"300", "301", "999"})
	if err == nil || res != (PrefetchResult{Packages: 2, Pulled: 3, Held: 1, Failed: 1}) {
		t.Errorf("first round %+v %v", res, err)
	}
	parent.Close()
	res, err = c.Prefetch(context.Background(), []string{"300", "301"})
	if err != nil || res != (PrefetchResult{Packages: 2, Held: 4}) {
		t.Errorf("second round, parent stopped: %+v %v", res, err)
	}
	sat := httptest.NewServer(c.SecureHandler())
	defer sat.Close()
	if st, b := get(t, sat.URL+"/content/300/info"); st != 200 || !bytes.Equal(b, info) {
		t.Errorf("info: %d %s", st, b)
	}
	zoneUp = false
	if st, b := get(t, sat.URL+"/content/300/info"); st != 200 || !bytes.Equal(b, info) {
		t.Errorf("info with the zone down: %d %s", st, b)
	}
	if st, _ := get(t, sat.URL+"/content/301/info"); st != http.StatusBadGateway {
		t.Errorf("an info never fetched with the zone down: %d", st)
	}
	if st, b := get(t, sat.URL+"/content/300/manifest.json"); st != 200 || !bytes.Contains(b, []byte(`"300-3"`)) {
		t.Errorf("manifest: %d %s", st, b)
	}
	if st, b := get(t, sat.URL+"/content/300/300-2"); st != 200 || !bytes.Equal(b, fill(4000, 'y')) {
		t.Errorf("fragment over the secure side: %d", st)
	}
	// The plain side serves no info files.
	plain := httptest.NewServer(c.Handler())
	defer plain.Close()
	if st, _ := get(t, plain.URL+"/content/300/info"); st != 404 {
		t.Errorf("info on the plain side: %d", st)
	}
	if entries, _ := os.ReadDir(c.Dir + "/cas"); len(entries) != 3 {
		t.Errorf("%d fragments kept, want 3 (one shared)", len(entries))
	}
}
