package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/pki"
)

// fakeZone answers registrations, refreshes and device deletions as a
// zone server does, with certificates from its own zone CA.
type fakeZone struct {
	*httptest.Server
	ca      *pki.CA
	caFile  string
	mu      sync.Mutex
	devices map[string]bool // device id -> still registered
	deletes int
	trusted []string // the CAs refreshes announce, PEM
}

func newFakeZone(t *testing.T) *fakeZone {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("Acme", pki.ECDSAP256, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	z := &fakeZone{ca: ca, devices: map[string]bool{}}
	z.Server = httptest.NewUnstartedServer(http.HandlerFunc(z.serve))
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: "zone1", IPs: []net.IP{net.ParseIP("127.0.0.1")}, PublicKey: key.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	z.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}, ClientAuth: tls.RequestClientCert}
	z.StartTLS()
	t.Cleanup(z.Close)
	z.caFile = filepath.Join(t.TempDir(), "zone-ca.pem")
	if err := os.WriteFile(z.caFile, pki.EncodeCertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return z
}

// device is the registered device presenting the request's client
// certificate, or "".
func (z *fakeZone) device(r *http.Request) string {
	if len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	pool := x509.NewCertPool()
	pool.AddCert(z.ca.Cert)
	c := r.TLS.PeerCertificates[0]
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return ""
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if !z.devices[c.Subject.CommonName] {
		return ""
	}
	return c.Subject.CommonName
}

func (z *fakeZone) serve(w http.ResponseWriter, r *http.Request) {
	switch r.Method + " " + r.URL.Path {
	case "POST " + api.Prefix + "/registrations":
		var req api.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		z.mu.Lock()
		id := fmt.Sprintf("dev%d", len(z.devices)+1)
		z.devices[id] = true
		z.mu.Unlock()
		cert, err := z.ca.SignDeviceCSR([]byte(req.CSR), id, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(api.Registration{DeviceID: id, Certificate: string(pki.EncodeCertPEM(cert)),
			ZoneName: "Acme", ZoneID: "z1", Servers: []string{z.URL}})
	case "POST " + api.Prefix + "/device/refresh":
		id := z.device(r)
		if id == "" {
			http.Error(w, "unknown device", http.StatusUnauthorized)
			return
		}
		z.mu.Lock()
		trusted := z.trusted
		z.mu.Unlock()
		json.NewEncoder(w).Encode(api.Refresh{Registration: api.Registration{DeviceID: id, ZoneName: "Acme", ZoneID: "z1", Servers: []string{z.URL}},
			TrustedCAs: trusted})
	case "DELETE " + api.Prefix + "/device":
		id := z.device(r)
		if id == "" {
			http.Error(w, "unknown device", http.StatusUnauthorized)
			return
		}
		z.mu.Lock()
		z.devices[id] = false
		z.deletes++
		z.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (z *fakeZone) register(t *testing.T, a *Agent) (State, error) {
	t.Helper()
	ca, err := a.LoadCA(z.caFile)
	if err != nil {
		t.Fatal(err)
	}
	return a.Register(context.Background(), RegisterOptions{ServerURL: z.URL, CA: ca, Hostname: "pc1"})
}

// registerSteps are the failpoints of a registration, in order; the
// identity files are written without a sync after register-committed.
var registerSteps = []string{"register-accepted", "register-committed", "register-cacert-written",
	"register-key-written", "register-cert-written"}

var errCrash = errors.New("crash")

// checkRegistered checks that the agent at home is registered and
// consistent: its key matches its certificate, the certificate is from
// the zone CA in cacert.pem, and the zone takes it (a refresh).
func checkRegistered(t *testing.T, z *fakeZone, home string) {
	t.Helper()
	a := New(home)
	if _, err := a.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(a.certPath(), a.keyPath())
	if err != nil {
		t.Fatalf("key and certificate: %v", err)
	}
	cas, err := a.TrustedCAs()
	if err != nil || !cas[0].Equal(z.ca.Cert) {
		t.Fatalf("trust store: %v %v", cas, err)
	}
	if err := checkDeviceCert(pair.Leaf, cas, pair.PrivateKey.(crypto.Signer).Public()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(a.keyPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("device.key: %v %v", fi.Mode(), err)
	}
}

// checkAfterCrash checks what a crash at step left: registered and
// consistent from register-committed on, else not registered and able to
// register again.
func checkAfterCrash(t *testing.T, z *fakeZone, home, step string) {
	t.Helper()
	committed := step != "register-accepted"
	_, err := New(home).State()
	switch {
	case committed && err != nil:
		t.Fatalf("crash at %s: not registered: %v", step, err)
	case !committed && !errors.Is(err, ErrNotRegistered):
		t.Fatalf("crash at %s: state %v, want not registered", step, err)
	case !committed:
		if _, err := z.register(t, New(home)); err != nil {
			t.Fatalf("crash at %s: registering again: %v", step, err)
		}
	}
	checkRegistered(t, z, home)
}

// A registration stopped at each of its steps, with the files it wrote
// without a sync then kept, lost or torn (as a power loss may leave them),
// ends registered and consistent or not registered, and a new
// registration then works. No crash runs the clean-up that deletes the
// device from the zone.
func TestRegisterCrashAtEveryStep(t *testing.T) {
	z := newFakeZone(t)
	other, err := pki.NewCA("Other", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := pki.EncodeCertPEM(other.Cert)
	losses := map[string]func(path string){
		"kept": func(string) {},
		"lost": func(p string) { os.Remove(p) },
		"torn": func(p string) {
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)/2], 0o600)
		},
		"empty": func(p string) { os.Truncate(p, 0) },
		// an older file back, as a power loss may bring back what an
		// unsynced rename replaced
		"older": func(p string) { os.WriteFile(p, otherPEM, 0o600) },
	}
	for _, step := range registerSteps {
		for name, loss := range losses {
			t.Run(step+"/"+name, func(t *testing.T) {
				home := t.TempDir()
				a := New(home)
				a.hook = func(s string) error {
					if s == step {
						return errCrash
					}
					return nil
				}
				before := z.deletes
				if _, err := z.register(t, a); !errors.Is(err, errCrash) {
					t.Fatalf("register: %v, want the crash", err)
				}
				if z.deletes != before {
					t.Fatal("a crash ran the clean-up")
				}
				for _, p := range []string{a.CACertPath(), a.keyPath(), a.certPath()} {
					if _, err := os.Stat(p); err == nil {
						loss(p)
					}
				}
				checkAfterCrash(t, z, home, step)
			})
		}
	}
}

// The same with a real kill: a child process registers and is SIGKILLed
// at each failpoint.
func TestRegisterKilledProcess(t *testing.T) {
	if home := os.Getenv("REGISTER_CHILD_HOME"); home != "" {
		ca, err := pki.ReadCertFile(os.Getenv("REGISTER_CHILD_CA"))
		if err != nil {
			t.Fatal(err)
		}
		New(home).Register(context.Background(), RegisterOptions{ServerURL: os.Getenv("REGISTER_CHILD_URL"), CA: ca, Hostname: "pc1"})
		os.Exit(3) // not reached: the failpoint kills the process
	}
	z := newFakeZone(t)
	for _, step := range registerSteps {
		home := filepath.Join(t.TempDir(), "agent")
		cmd := exec.Command(os.Args[0], "-test.run=^TestRegisterKilledProcess$")
		cmd.Env = append(os.Environ(), "REGISTER_CHILD_HOME="+home, "REGISTER_CHILD_CA="+z.caFile,
			"REGISTER_CHILD_URL="+z.URL, failpoint.Env+"="+step)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 3 || ee.ExitCode() == 0 {
			t.Fatalf("child at %s: %v\n%s", step, err, out)
		}
		checkAfterCrash(t, z, home, step)
	}
}

// A registered agent refuses a second registration; after unregister
// (which forgets the identity too) it registers again, and a lost key
// file of a registered home is written back from agent.db.
func TestRegisterUnregisterRegister(t *testing.T) {
	z := newFakeZone(t)
	home := t.TempDir()
	if _, err := z.register(t, New(home)); err != nil {
		t.Fatal(err)
	}
	if _, err := z.register(t, New(home)); !errkind.Is(err, errkind.Exists) {
		t.Fatalf("second registration: %v", err)
	}
	a := New(home)
	os.Remove(a.keyPath())
	checkRegistered(t, z, home)
	if _, err := New(home).Unregister(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.keyPath()); !os.IsNotExist(err) {
		t.Fatalf("device.key after unregister: %v", err)
	}
	// Nothing is written back once the registration is forgotten.
	if _, err := New(home).State(); !errors.Is(err, ErrNotRegistered) {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.keyPath()); !os.IsNotExist(err) {
		t.Fatalf("device.key came back: %v", err)
	}
	if _, err := z.register(t, New(home)); err != nil {
		t.Fatal(err)
	}
	checkRegistered(t, z, home)
}

// Once a refresh has written the zone's trust store, the registration's
// CA is no longer put back into it: a zone that moved to a new CA is not
// undone by the next command.
func TestTrustChangeDropsRegistrationCA(t *testing.T) {
	z := newFakeZone(t)
	home := t.TempDir()
	if _, err := z.register(t, New(home)); err != nil {
		t.Fatal(err)
	}
	next, err := pki.NewCA("Acme next", pki.ECDSAP256, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	z.trusted = []string{string(pki.EncodeCertPEM(next.Cert))}
	if _, err := New(home).Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := New(home)
	if _, err := a.State(); err != nil {
		t.Fatal(err)
	}
	cas, err := a.TrustedCAs()
	if err != nil || len(cas) != 1 || !cas[0].Equal(next.Cert) {
		t.Fatalf("trust store after the change: %v %v", cas, err)
	}
}
