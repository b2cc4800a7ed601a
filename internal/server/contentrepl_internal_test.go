package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/config"
	"zonekit/internal/content"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/server/contentrepl"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// replPeer is one zone server of a two-server test zone, served on an
// httptest TLS listener.
type replPeer struct {
	srv *Server
	db  *zone.DB
	hs  *httptest.Server
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o750)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func startPeer(t *testing.T, p config.Paths, id string) *replPeer {
	t.Helper()
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db := zone.New(st, nil)
	cfg, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerID = id
	s, err := New(Options{Paths: p, Config: cfg, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = s.TLSConfig()
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return &replPeer{srv: s, db: db, hs: hs}
}

// testPeers reaches the peers at the test's listeners.
type testPeers struct {
	contentrepl.Peers
	url func(zone.Server) string
}

func (p testPeers) URL(sv zone.Server) string { return p.url(sv) }

// newReplZone makes server A (a new zone) and server B, a second server
// of the same zone whose store starts as a copy of A's with its own
// server record, as joining will make it. B presents a server
// certificate of its own, issued by the zone CA.
func newReplZone(t *testing.T) (a, b *replPeer) {
	t.Helper()
	root := t.TempDir()
	pa := config.Paths{Home: filepath.Join(root, "a")}
	res, err := provision.NewZone(provision.NewZoneOptions{
		Paths: pa, ZoneName: "Acme", AdminName: "Administrator", AdminPassword: "admin-password",
		DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}, Port: 443, KeyType: pki.ECDSAP256, CAYears: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgA, err := config.LoadServer(pa)
	if err != nil {
		t.Fatal(err)
	}
	pb := config.Paths{Home: filepath.Join(root, "b")}
	copyTree(t, pa.Home, pb.Home)
	os.RemoveAll(pb.ContentRepo())
	// B's own certificate, for the name it is known by.
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := res.CA.IssueServer(pki.ServerRequest{CommonName: "localhost", PublicKey: key.Public()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKeyPEM(key)
	os.WriteFile(pb.ServerCert(), pki.EncodeCertPEM(cert), 0o644)
	os.WriteFile(pb.ServerKey(), keyPEM, 0o600)
	st, err := store.Open(pb.Store(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := zone.Server{ID: "server-b", Name: "b.example", Port: 443, CertPEM: string(pki.EncodeCertPEM(cert)), Created: time.Now()}
	err = st.Update(func(tx *bolt.Tx) error {
		data, _ := json.Marshal(rec)
		return tx.Bucket(store.BucketServers).Put([]byte(rec.ID), data)
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	a = startPeer(t, pa, cfgA.ServerID)
	b = startPeer(t, pb, rec.ID)
	b.srv.content.Peers = testPeers{b.srv.content.Peers, func(sv zone.Server) string {
		if sv.ID == cfgA.ServerID {
			return a.hs.URL
		}
		return "https://127.0.0.1:1"
	}}
	return a, b
}

func TestReplicationPullsPackagesAndImages(t *testing.T) {
	a, b := newReplZone(t)
	// A package built on A, recorded in both stores (as replication of
	// the store will do).
	spec := content.Spec{Name: "tools", OS: content.OSLinux, Priority: 5, Action: content.ActionStore, Path: "/opt/x", FragmentSize: 1024}
	var archive bytes.Buffer
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.bin"), bytes.Repeat([]byte("zonekit "), 1000), 0o644)
	if err := content.PackDir(dir, content.FormatTarGz, &archive); err != nil {
		t.Fatal(err)
	}
	m, err := a.srv.pkg.repo.Build("1800000100", spec, &archive, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	spec.Normalize()
	p := zone.Package{ID: m.ID, Spec: spec, Format: m.Format, Size: m.Size, Frags: len(m.Fragments), MD5: m.MD5, SHA256: m.SHA256, Created: m.Created}
	for _, db := range []*zone.DB{a.db, b.db} {
		if err := db.Exec("test", zone.CmdPackageCreate, p); err != nil {
			t.Fatal(err)
		}
	}
	// An image on A.
	img := bytes.Repeat([]byte("disk"), 5000)
	sum := sha256.Sum256(img)
	imgDir := a.srv.content.ImagesDir()
	os.MkdirAll(imgDir, 0o750)
	os.WriteFile(filepath.Join(imgDir, "win11.zmg"), img, 0o640)
	os.WriteFile(filepath.Join(imgDir, "win11.zmg.sha256"), []byte(hex.EncodeToString(sum[:])+"\n"), 0o640)

	if missing := b.srv.content.Pass(context.Background()); missing {
		t.Fatal("B's pass left content missing")
	}
	if !b.srv.pkg.repo.Has(p.ID, p.SHA256) {
		t.Fatal("B lacks the package")
	}
	for _, f := range append([]string{content.InfoFile, content.ManifestFile}, content.FragmentName(p.ID, 1)) {
		x, _ := os.ReadFile(filepath.Join(a.srv.pkg.repo.PackageDir(p.ID), f))
		y, _ := os.ReadFile(filepath.Join(b.srv.pkg.repo.PackageDir(p.ID), f))
		if !bytes.Equal(x, y) {
			t.Fatalf("%s differs", f)
		}
	}
	got, err := os.ReadFile(filepath.Join(b.srv.content.ImagesDir(), "win11.zmg"))
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("image not replicated: %v", err)
	}
	states, _ := b.db.ContentStates()
	seen := map[string]string{}
	for _, st := range states {
		if st.Server == "server-b" {
			seen[st.Package] = st.State
		}
	}
	if seen[p.ID] != zone.ContentPresent || seen[zone.ImagePrefix+"win11.zmg"] != zone.ContentPresent {
		t.Fatalf("B's records: %v", seen)
	}

	// Deleted in the zone: B removes its copy at the next pass.
	if err := b.db.Exec("test", zone.CmdPackageDelete, map[string]string{"name": p.ID}); err != nil {
		t.Fatal(err)
	}
	b.srv.content.Pass(context.Background())
	if b.srv.pkg.repo.Exists(p.ID) {
		t.Fatal("a deleted package stays on B")
	}
	if states, _ := b.db.ContentStates(); len(states) != 1 {
		t.Fatalf("records left: %+v", states)
	}
}

func TestPeerImagesNeedServerCertificate(t *testing.T) {
	a, _ := newReplZone(t)
	// A client trusting the zone CA but presenting nothing.
	c := a.srv.content.PeerClient()
	c.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &tls.Certificate{}, nil
	}
	resp, err := c.Get(a.hs.URL + "/api/v1/replication/images")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a certificate: %s", resp.Status)
	}
	// The server's own client: accepted.
	resp, err = a.srv.content.PeerClient().Get(a.hs.URL + "/api/v1/replication/images")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the server certificate: %s", resp.Status)
	}
}

func TestPeerClientTrustsOnlyTheZoneCA(t *testing.T) {
	a, _ := newReplZone(t)
	foreign := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer foreign.Close()
	foreign.Config.ErrorLog = log.New(io.Discard, "", 0)
	_, err := a.srv.content.PeerClient().Get(foreign.URL)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a peer with a foreign certificate: %v", err)
	}
}

func TestPrimaryLocationsAndServerOrder(t *testing.T) {
	a, b := newReplZone(t)
	s := b.srv
	idA := a.srv.self.ID
	p := zone.Package{ID: "1800000200", Spec: content.Spec{Name: "x", OS: content.OSLinux, Action: content.ActionExecute, Command: "true", FragmentSize: 1}}
	if err := b.db.Exec("test", zone.CmdPackageCreate, p); err != nil {
		t.Fatal(err)
	}
	act := zone.Activation{InfoLocation: "b.example:443/content", PackLocation: "b.example:80/content"}
	if err := b.db.Exec("test", zone.CmdPackageActivate, zone.PackageActivate{ID: p.ID, Activation: act}); err != nil {
		t.Fatal(err)
	}
	p.Activation = &act
	dev := zone.Device{ID: "d1"}
	if info, pack := s.primaryLocations(dev, p); info != nil || pack != nil {
		t.Fatalf("nobody holds it yet: %v %v", info, pack)
	}
	for _, id := range []string{idA, "server-b"} {
		if err := b.db.SetContentState(zone.ContentState{Server: id, Package: p.ID, State: zone.ContentPresent}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.db.SetContentPort(idA, 8080); err != nil {
		t.Fatal(err)
	}
	// Default: the activating server first.
	info, pack := s.primaryLocations(dev, p)
	if strings.Join(info, " ") != "b.example:443/content localhost:443/content" || strings.Join(pack, " ") != "localhost:8080/content" {
		t.Fatalf("default: %v %v", info, pack)
	}
	// The activation's fragment location is no Primary Server's content
	// port (a site's web server): the admin chose it, so it comes first.
	if _, pack := s.packLocations(dev, p); strings.Join(pack, " ") != "b.example:80/content localhost:8080/content" {
		t.Fatalf("activation's own fragment location: %v", pack)
	}
	if err := b.db.Exec("test", zone.CmdClosestServerRuleSet, zone.ClosestServerRule{Scope: zone.ScopeZone, Servers: []string{idA}}); err != nil {
		t.Fatal(err)
	}
	// The activation's info location is a Primary Server: the rule orders it.
	if info, _ := s.packLocations(dev, p); strings.Join(info, " ") != "localhost:443/content b.example:443/content" {
		t.Fatalf("zone rule, packLocations: %v", info)
	}
	info, _ = s.primaryLocations(dev, p)
	if strings.Join(info, " ") != "localhost:443/content b.example:443/content" {
		t.Fatalf("zone rule: %v", info)
	}
	if got := strings.Join(s.serverURLsFor(dev), " "); got != "https://localhost:443 https://b.example:443" {
		t.Fatalf("server list: %s", got)
	}
	// Without a rule the answering server comes first.
	if err := b.db.Exec("test", zone.CmdClosestServerRuleDrop, zone.ClosestServerRule{Scope: zone.ScopeZone}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.serverURLsFor(dev), " "); got != "https://b.example:443 https://localhost:443" {
		t.Fatalf("server list: %s", got)
	}
}

func TestReplicationRecordsInFlight(t *testing.T) {
	a, b := newReplZone(t)
	// A slow peer: fragment 2 waits until released.
	release := make(chan struct{})
	slow := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "-2") {
			<-release
		}
		a.srv.Handler().ServeHTTP(w, r)
	}))
	slow.TLS = a.srv.TLSConfig()
	slow.Config.ErrorLog = log.New(io.Discard, "", 0)
	slow.StartTLS()
	defer slow.Close()
	b.srv.content.Peers = testPeers{b.srv.content.Peers, func(zone.Server) string { return slow.URL }}
	b.srv.content.ProgressEvery = 20 * time.Millisecond

	spec := content.Spec{Name: "slow", OS: content.OSLinux, Priority: 5, Action: content.ActionStore, Path: "/opt/x", FragmentSize: 1000}
	var archive bytes.Buffer
	dir := t.TempDir()
	noise := make([]byte, 30000)
	rand.Read(noise) // incompressible: several fragments
	os.WriteFile(filepath.Join(dir, "a.bin"), noise, 0o644)
	if err := content.PackDir(dir, content.FormatTarGz, &archive); err != nil {
		t.Fatal(err)
	}
	m, err := a.srv.pkg.repo.Build("1800000300", spec, &archive, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	spec.Normalize()
	p := zone.Package{ID: m.ID, Spec: spec, Format: m.Format, Size: m.Size, Frags: len(m.Fragments), MD5: m.MD5, SHA256: m.SHA256, Created: m.Created}
	if err := b.db.Exec("test", zone.CmdPackageCreate, p); err != nil {
		t.Fatal(err)
	}
	if p.Frags < 3 {
		t.Fatalf("want several fragments, have %d", p.Frags)
	}
	done := make(chan bool)
	go func() { done <- b.srv.content.Pass(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	var seen zone.ContentState
	for time.Now().Before(deadline) {
		states, _ := b.db.ContentStates()
		for _, st := range states {
			if st.Package == p.ID {
				seen = st
			}
		}
		if seen.State == zone.ContentInFlight && seen.Bytes > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if seen.State != zone.ContentInFlight || seen.Bytes <= 0 || seen.Bytes >= p.Size || seen.Size != p.Size {
		t.Fatalf("while pulling: %+v", seen)
	}
	if missing := <-done; missing {
		t.Fatal("pass left the package missing")
	}
	states, _ := b.db.ContentStates()
	for _, st := range states {
		if st.Package == p.ID && st.State != zone.ContentPresent {
			t.Fatalf("after: %+v", st)
		}
	}
}
