// Package agent is the zac engine: the agent's home and state store, its
// trust in the zone CA, registration, refresh and unregistration.
package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/homedir"
	"zonekit/internal/pki"
)

// HomeEnv names the environment variable that sets the agent's home.
const HomeEnv = "ZAC_HOME"

// ResolveHome picks the agent home from a flag, then $ZAC_HOME, then
// /var/opt/zonekit-agent for root or ~/.local/share/zonekit-agent.
func ResolveHome(flag string) string {
	return homedir.Resolve(flag, HomeEnv, "/var/opt/zonekit-agent", "zonekit-agent")
}

// State is what the agent knows about its registration.
type State struct {
	DeviceID      string    `json:"device_id"`
	ZoneName      string    `json:"zone_name"`
	ZoneID        string    `json:"zone_id"`
	Servers       []string  `json:"servers"` // preferred first
	Registered    time.Time `json:"registered"`
	LastContact   time.Time `json:"last_contact,omitzero"`
	CAFingerprint string    `json:"ca_sha256_fingerprint"`
	CertNotAfter  time.Time `json:"cert_not_after"`

	// ContentSatellites are the zone's content satellites, closest first
	// (the zone orders them by the device's address).
	ContentSatellites []string `json:"content_satellites,omitempty"`
	// AuthSatellites are the zone's authentication satellites, closest
	// first; they lead Servers, which the agent tries in order.
	AuthSatellites []string `json:"auth_satellites,omitempty"`
}

// Agent is one agent home.
type Agent struct {
	Home string
	Now  func() time.Time
	// ReuseConnections keeps the device clients (and their TLS
	// connections) between calls until Close: zac refresh's contact and
	// package list then share one handshake. Off, every call connects
	// afresh (long-running users: an idle connection a server dropped
	// would fail a POST).
	ReuseConnections bool
	// FragmentCacheMax bounds the fragment cache (bytes): 0 is
	// DefaultFragmentCacheMax, negative turns the cache off.
	FragmentCacheMax int64
	clients          []*client.Client
	clientsFor       string
	// hook is called after each step of a registration's writes
	// (failpoint.Crash; tests pass their own to stop at a step).
	hook failpoint.Hook
	// identityChecked is set once this Agent has compared the key and
	// certificate files with the committed identity (see restoreIdentity).
	identityChecked atomic.Bool
}

// Close closes the connections ReuseConnections kept.
func (a *Agent) Close() {
	for _, c := range a.clients {
		c.Close()
	}
	a.clients, a.clientsFor = nil, ""
}

// New returns the agent at home.
func New(home string) *Agent { return &Agent{Home: home, Now: time.Now, hook: failpoint.Crash} }

// step reports the end of a step of a multi-step write to the hook.
func (a *Agent) step(name string) error {
	if a.hook == nil {
		return nil
	}
	return a.hook(name)
}

func (a *Agent) CACertPath() string { return filepath.Join(a.Home, "cacert.pem") }
func (a *Agent) certPath() string   { return filepath.Join(a.Home, "device.pem") }
func (a *Agent) keyPath() string    { return filepath.Join(a.Home, "security", "device.key") }
func (a *Agent) dbPath() string     { return filepath.Join(a.Home, "agent.db") }

var (
	bucketState = []byte("state")
	keyReg      = []byte("registration")
	// keyIdentity holds the device's key and certificate (identity), the
	// committed copy device.key and device.pem are written from.
	keyIdentity = []byte("identity")
)

// identity is the device's key and certificate as committed in agent.db.
// The files security/device.key and device.pem are copies of it for the
// tools that read them (curl, openssl, the TLS client): a registration
// commits the identity with the state in one transaction and writes the
// files without waiting for the disk, and an open that finds them missing,
// torn or different writes them again from here (restoreIdentity).
type identity struct {
	KeyPEM  string `json:"key_pem"`
	CertPEM string `json:"cert_pem"`
	// CAPEM is the zone CA the registration trusted, kept until the agent
	// next writes the trust store (synced): until then cacert.pem must
	// hold it, and is written from here when it does not (lost, torn, or
	// an older file back after a power loss).
	CAPEM string `json:"ca_pem,omitempty"`
}

// ErrNotRegistered is returned by operations that need a registration.
var ErrNotRegistered = errkind.New(errkind.NotFound, "this device is not registered in a zone (zac register https://SERVER:PORT)")

func (a *Agent) open(readOnly bool) (*bolt.DB, error) {
	if readOnly {
		if _, err := os.Stat(a.dbPath()); errors.Is(err, os.ErrNotExist) {
			return nil, ErrNotRegistered
		}
	} else if err := os.MkdirAll(a.Home, 0o755); err != nil {
		return nil, fmt.Errorf("agent home: %w", err)
	}
	db, err := bolt.Open(a.dbPath(), 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: readOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, errkind.New(errkind.Unavailable, "agent state %s is locked by another zac; try again", a.dbPath())
	}
	if err != nil {
		return nil, fmt.Errorf("open agent state %s: %w", a.dbPath(), err)
	}
	if a.identityChecked.CompareAndSwap(false, true) {
		if err := a.restoreIdentity(db); err != nil && !readOnly {
			a.identityChecked.Store(false) // the next open tries again
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

func readIdentity(db *bolt.DB) (identity, bool, error) {
	var id identity
	found := false
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b == nil || b.Get(keyIdentity) == nil {
			return nil
		}
		found = true
		return json.Unmarshal(b.Get(keyIdentity), &id)
	})
	return id, found, err
}

func putIdentity(tx *bolt.Tx, id *identity) error {
	b, err := tx.CreateBucketIfNotExists(bucketState)
	if err != nil {
		return err
	}
	if id == nil {
		return b.Delete(keyIdentity)
	}
	data, err := json.Marshal(id)
	if err != nil {
		return err
	}
	return b.Put(keyIdentity, data)
}

// restoreIdentity makes device.key and device.pem what the committed
// identity says, when they differ: after a crash or power loss that lost
// or tore the copies a registration wrote without a sync, or one between
// a renewal's commit and its files. The files it writes are synced.
// Homes registered before the identity was kept in agent.db have none,
// and their files are left as they are.
func (a *Agent) restoreIdentity(db *bolt.DB) error {
	id, ok, err := readIdentity(db)
	if err != nil {
		return fmt.Errorf("agent state %s: identity: %w", a.dbPath(), err)
	}
	if !ok {
		return nil
	}
	for _, f := range []struct {
		path string
		data string
		perm os.FileMode
	}{{a.keyPath(), id.KeyPEM, 0o600}, {a.certPath(), id.CertPEM, 0o644}, {a.CACertPath(), id.CAPEM, 0o644}} {
		if f.data == "" {
			continue
		}
		have, err := os.ReadFile(f.path)
		if err == nil && string(have) == f.data {
			continue
		}
		// The trust store may hold more than the registration's CA
		// (cert-info adds roots): whole and holding it is enough.
		if err == nil && f.path == a.CACertPath() && bytes.Contains(have, []byte(f.data)) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return fmt.Errorf("restore %s: %w", f.path, err)
		}
		if err := atomicfile.WriteFile(f.path, []byte(f.data), f.perm); err != nil {
			return fmt.Errorf("restore the device identity: %w", err)
		}
	}
	return nil
}

// State reads the registration, or ErrNotRegistered.
func (a *Agent) State() (State, error) {
	db, err := a.open(true)
	if err != nil {
		return State{}, err
	}
	defer db.Close()
	return readState(db)
}

func readState(db *bolt.DB) (State, error) {
	var st State
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b == nil || b.Get(keyReg) == nil {
			return ErrNotRegistered
		}
		return json.Unmarshal(b.Get(keyReg), &st)
	})
	return st, err
}

func writeState(db *bolt.DB, st *State) error {
	return db.Update(func(tx *bolt.Tx) error { return putState(tx, st) })
}

// putState records st; nil forgets the registration and the identity.
func putState(tx *bolt.Tx, st *State) error {
	b, err := tx.CreateBucketIfNotExists(bucketState)
	if err != nil {
		return err
	}
	if st == nil {
		if err := b.Delete(keyIdentity); err != nil {
			return err
		}
		return b.Delete(keyReg)
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return b.Put(keyReg, data)
}

// LoadCA reads the zone CA the agent trusts: path if given, else the
// home's cacert.pem.
func (a *Agent) LoadCA(path string) (*x509.Certificate, error) {
	if path == "" {
		path = a.CACertPath()
	}
	c, err := pki.ReadCertFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errkind.New(errkind.Usage, "no zone CA certificate at %s: pass --cacert FILE (the zone's zone-ca.pem)", path)
		}
		return nil, errkind.Wrap(errkind.Usage, err)
	}
	if !c.IsCA {
		return nil, errkind.New(errkind.Usage, "%s is not a CA certificate", path)
	}
	return c, nil
}

// RegisterOptions are the inputs of Register.
type RegisterOptions struct {
	ServerURL string
	Key       string
	CA        *x509.Certificate
	Hostname  string
}

// Register makes a device key, has the zone CA certify it, and records the
// registration. The CA is the only trust: a server it did not certify is refused.
func (a *Agent) Register(ctx context.Context, o RegisterOptions) (State, error) {
	db, err := a.open(false)
	if err != nil {
		return State{}, err
	}
	defer db.Close()
	if st, err := readState(db); err == nil {
		return State{}, errkind.New(errkind.Exists, "already registered in zone %s as device %s: run 'zac unregister' first", st.ZoneName, st.DeviceID)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return State{}, err
	}
	csr, err := pki.NewCSR(key, o.Hostname)
	if err != nil {
		return State{}, err
	}
	c, err := client.New(client.Options{BaseURL: o.ServerURL, CA: o.CA, EnvProxy: true})
	if err != nil {
		return State{}, err
	}
	defer c.Close()
	var reg api.Registration
	req := api.RegisterRequest{Key: o.Key, CSR: string(csr), Hostname: o.Hostname, OS: runtime.GOOS}
	if err := c.Post(ctx, api.Prefix+"/registrations", req, &reg); err != nil {
		return State{}, fmt.Errorf("register with %s: %w", c.BaseURL(), err)
	}
	cert, err := pki.ParseCertPEM([]byte(reg.Certificate))
	if err != nil {
		return State{}, fmt.Errorf("certificate from %s: %w", c.BaseURL(), err)
	}
	// Under an external zone CA the zone's device CA issued it: the
	// server names it, over the TLS verified against the zone CA.
	issuers := []*x509.Certificate{o.CA}
	if reg.IssuerPEM != "" {
		issuer, err := pki.ParseCertPEM([]byte(reg.IssuerPEM))
		if err != nil {
			return State{}, fmt.Errorf("the issuer of the certificate from %s: %w", c.BaseURL(), err)
		}
		issuers = append(issuers, issuer)
	}
	if err := checkDeviceCert(cert, issuers, key.Public()); err != nil {
		return State{}, err
	}
	if err := a.step("register-accepted"); err != nil {
		return State{}, err
	}
	st, committed, err := a.saveRegistration(db, key, cert, o.CA, reg, c.BaseURL())
	if committed || errors.Is(err, errStopped) {
		return st, err
	}
	if err != nil {
		// The zone knows a device this machine could not record: take it back
		// out so a retry does not leave a ghost behind.
		if dc, cerr := client.New(client.Options{BaseURL: c.BaseURL(), CA: o.CA, Timeout: 10 * time.Second, EnvProxy: true,
			ClientCert: &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}); cerr == nil {
			dc.Delete(ctx, api.Prefix+"/device")
			dc.Close()
		}
		return State{}, err
	}
	return st, nil
}

// errStopped wraps a hook's error: the operation stopped at a failpoint
// as if the process had died there, so no cleanup may run.
var errStopped = errors.New("stopped at a failpoint")

// saveRegistration records a registration in as few synced writes as it
// can, for a zac process registering is mostly waiting for the disk:
//
//  1. one agent.db transaction with the state and the identity (key,
//     certificate and zone CA): the registration's commit point;
//  2. cacert.pem (unless it already holds the CA: install packs place it
//     before registering), security/device.key and device.pem from the
//     identity, each renamed into place but not synced: a crash or power
//     loss that loses or tears them is repaired from the identity by the
//     next zac command (restoreIdentity).
//
// A crash before 1 leaves the device unregistered (a retry registers it
// anew); from 1 on it is registered and its files come out whole.
//
// committed says whether the registration stands (step 2 done), whatever
// the error.
func (a *Agent) saveRegistration(db *bolt.DB, key crypto.Signer, cert, ca *x509.Certificate, reg api.Registration, via string) (st State, committed bool, err error) {
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return State{}, false, err
	}
	certPEM := pki.EncodeCertPEM(cert)
	caPEM := pki.EncodeCertPEM(ca)
	// The server we registered through stays first among the servers: it is
	// known to be reachable. Authentication satellites, closest first, come
	// before them.
	servers := serverOrder(reg.AuthSatellites, reg.Servers, via)
	now := a.Now().UTC()
	st = State{DeviceID: reg.DeviceID, ZoneName: reg.ZoneName, ZoneID: reg.ZoneID, Servers: servers,
		Registered: now, LastContact: now, CAFingerprint: pki.Fingerprint(ca, "sha256"), CertNotAfter: cert.NotAfter.UTC(),
		ContentSatellites: reg.ContentSatellites, AuthSatellites: reg.AuthSatellites}
	id := identity{KeyPEM: string(keyPEM), CertPEM: string(certPEM), CAPEM: string(caPEM)}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := putState(tx, &st); err != nil {
			return err
		}
		return putIdentity(tx, &id)
	})
	if err != nil {
		return State{}, false, fmt.Errorf("record registration: %w", err)
	}
	if err := a.step("register-committed"); err != nil {
		return st, true, fmt.Errorf("%w: %w", errStopped, err)
	}
	// From here the registration stands: a file that cannot be written
	// now is written from the identity by the next command.
	if err := a.writeIdentityFiles(id); err != nil {
		return st, true, fmt.Errorf("registered as device %s, but %w (the next zac command writes it again)", st.DeviceID, err)
	}
	return st, true, nil
}

// writeIdentityFiles puts the identity's key and certificate in their
// files without syncing them (see saveRegistration).
func (a *Agent) writeIdentityFiles(id identity) error {
	if err := os.MkdirAll(filepath.Dir(a.keyPath()), 0o700); err != nil {
		return fmt.Errorf("agent security directory: %w", err)
	}
	for _, f := range []struct {
		path, data, step string
		perm             os.FileMode
	}{{a.CACertPath(), id.CAPEM, "register-cacert-written", 0o644}, {a.keyPath(), id.KeyPEM, "register-key-written", 0o600},
		{a.certPath(), id.CertPEM, "register-cert-written", 0o644}} {
		if have, err := os.ReadFile(f.path); err == nil && string(have) == f.data {
			if err := a.step(f.step); err != nil {
				return fmt.Errorf("%w: %w", errStopped, err)
			}
			continue
		}
		w, err := atomicfile.New(f.path, f.perm)
		if err != nil {
			return err
		}
		if _, err := w.WriteString(f.data); err != nil {
			w.Abort()
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if err := w.CommitUnsynced(); err != nil {
			return err
		}
		if err := a.step(f.step); err != nil {
			return fmt.Errorf("%w: %w", errStopped, err)
		}
	}
	return nil
}

// serverOrder is the order the agent tries the zone in: the
// authentication satellites as the zone ordered them (closest first), then
// the servers with via (the one that just answered) first, unless via is a
// satellite.
func serverOrder(sats, servers []string, via string) []string {
	out := append([]string(nil), sats...)
	if !slices.Contains(sats, via) {
		servers = preferFirst(servers, via)
	}
	for _, s := range servers {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func preferFirst(list []string, first string) []string {
	out := []string{first}
	for _, s := range list {
		if s != first {
			out = append(out, s)
		}
	}
	return out
}

// checkDeviceCert checks a device certificate the zone issued: from one
// of the CAs given (the zone CA, or the zone's device CA under an
// external zone CA), for client authentication, for this device's key.
func checkDeviceCert(cert *x509.Certificate, cas []*x509.Certificate, pub any) error {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the device certificate received does not verify against the zone's CAs: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if k, ok := cert.PublicKey.(equaler); !ok || !k.Equal(pub) {
		return errors.New("the device certificate received is not for this device's key")
	}
	return nil
}

// deviceClients returns a client per known server, device certificate attached.
func (a *Agent) deviceClients(st State) ([]*client.Client, error) {
	key := strings.Join(st.Servers, "\n")
	if a.ReuseConnections && a.clients != nil && a.clientsFor == key {
		return a.clients, nil
	}
	a.Close()
	cas, err := a.TrustedCAs()
	if err != nil {
		return nil, err
	}
	ca := cas[0]
	cert, err := tls.LoadX509KeyPair(a.certPath(), a.keyPath())
	if err != nil {
		return nil, fmt.Errorf("device certificate: %w", err)
	}
	var out []*client.Client
	for _, s := range st.Servers {
		c, err := client.New(client.Options{BaseURL: s, CA: ca, MoreCAs: cas[1:], ClientCert: &cert, Timeout: 20 * time.Second, EnvProxy: true})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if a.ReuseConnections {
		a.clients, a.clientsFor = out, key
	}
	return out, nil
}

// firstAnswer calls fn with each known server in order until one answers.
// A 401 is an answer too: every server of the zone would say the same.
// Otherwise the most telling failure is returned (a refused server before
// an unreachable one).
func (a *Agent) firstAnswer(st State, fn func(*client.Client) error) error {
	clients, err := a.deviceClients(st)
	if err != nil {
		return err
	}
	var errs []error
	for i, c := range clients {
		err := fn(c)
		if !a.ReuseConnections {
			c.Close()
		}
		if err == nil || client.IsStatus(err, http.StatusUnauthorized) {
			if !a.ReuseConnections {
				for _, rest := range clients[i+1:] {
					rest.Close()
				}
			}
			return err
		}
		errs = append(errs, err)
	}
	for _, e := range errs {
		if errkind.Is(e, errkind.Auth) {
			return e
		}
	}
	if len(errs) == 0 {
		return errkind.New(errkind.Unavailable, "no zone server known")
	}
	return errs[0]
}

// Refresh contacts the zone (servers in order until one answers), records
// the contact and learns the current server list.
func (a *Agent) Refresh(ctx context.Context) (State, error) {
	db, err := a.open(false)
	if err != nil {
		return State{}, err
	}
	defer db.Close()
	st, err := readState(db)
	if err != nil {
		return State{}, err
	}
	var r api.Refresh
	var via string
	err = a.firstAnswer(st, func(c *client.Client) error {
		via = c.BaseURL()
		if err := c.Post(ctx, api.Prefix+"/device/refresh", nil, &r); err != nil {
			return err
		}
		// Trust first: a renewed certificate may come from the new CA.
		changed, err := a.adoptTrust(r.TrustedCAs)
		if err != nil {
			return err
		}
		if changed {
			// The trust store on disk is now the zone's, synced: the
			// registration's CA no longer has to be in it.
			if err := dropIdentityCA(db); err != nil {
				return err
			}
		}
		if r.RenewCertificate {
			return a.renewCertificate(ctx, db, c, &st)
		}
		if changed {
			// Kept clients trust the old CAs: the next call connects afresh.
			defer a.Close()
		}
		return nil
	})
	if r.RenewCertificate {
		a.Close() // kept clients present the old certificate
	}
	if err != nil {
		return State{}, fmt.Errorf("refresh: %w", err)
	}
	st.LastContact = a.Now().UTC()
	if len(r.Servers) > 0 {
		st.Servers = serverOrder(r.AuthSatellites, r.Servers, via)
	}
	st.ZoneName = r.ZoneName
	st.ContentSatellites, st.AuthSatellites = r.ContentSatellites, r.AuthSatellites
	return st, writeState(db, &st)
}

// dropIdentityCA forgets the zone CA the registration trusted (see
// identity.CAPEM), once the agent has written the trust store itself.
func dropIdentityCA(db *bolt.DB) error {
	id, ok, err := readIdentity(db)
	if err != nil || !ok || id.CAPEM == "" {
		return err
	}
	id.CAPEM = ""
	if err := db.Update(func(tx *bolt.Tx) error { return putIdentity(tx, &id) }); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	return nil
}

// Unregister removes the device from the zone and forgets the registration.
// With force, the local registration goes even if no server can be told.
func (a *Agent) Unregister(ctx context.Context, force bool) (State, error) {
	db, err := a.open(false)
	if err != nil {
		return State{}, err
	}
	defer db.Close()
	st, err := readState(db)
	if err != nil {
		return State{}, err
	}
	err = a.firstAnswer(st, func(c *client.Client) error { return c.Delete(ctx, api.Prefix+"/device") })
	// A 401 means the zone no longer knows this device: nothing left to undo there.
	told := err == nil || client.IsStatus(err, http.StatusUnauthorized)
	if !told && !force {
		return State{}, fmt.Errorf("unregister: %w (use -f to remove the registration from this device anyway)", err)
	}
	// Forgotten first: the files are copies of the identity, and a crash
	// before they go leaves a device that is simply not registered.
	if err := writeState(db, nil); err != nil {
		return State{}, fmt.Errorf("unregister: %w", err)
	}
	for _, p := range []string{a.certPath(), a.keyPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return State{}, fmt.Errorf("unregister: %w", err)
		}
	}
	return st, nil
}
