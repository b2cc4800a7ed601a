package certificates

import (
	"archive/zip"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// A certificate change (remint) runs in steps that every server repeats
// each second (Changes.Step), so that it needs no coordinator: a server
// whose future certificate is missing makes its key (remint-repo/key.der,
// never leaving the machine) and a CSR; the server holding the signing key
// signs pending CSRs; an administrator's certificates are picked up from
// remint-repo; and at the activation time the change is applied to the
// store and each server installs its future certificate and switches TLS
// without a restart.

const (
	futurePending = "Creating certificate"
	// SystemActor is who the audit names for what the servers do
	// themselves.
	SystemActor = "zone-server"
)

// ChangeZone is what the certificate change needs of the zone's state
// (*zone.DB).
type ChangeZone interface {
	Zone
	StartRemint(actor string, r zone.Remint) error
	SetRemintCross(actor, remintID, crossPEM string) error
	SetFuture(actor, remintID string, f zone.FutureCert) error
	CancelRemint(actor, remintID string) error
	ActivateRemint(actor, remintID string) error
	SetServerCert(actor, id, certPEM string) error
}

// TLS is the core's TLS state as the certificate change sees it.
type TLS interface {
	Trust
	// Leaf is this server's certificate as TLS serves it now.
	Leaf() *x509.Certificate
	// External says the zone CA is external (the zone holds no key of it).
	External() bool
	// DeviceCA is the device CA TLS accepts now (under an external zone
	// CA), or nil.
	DeviceCA() *x509.Certificate
	// Reload rereads the zone CA and this server's certificate and
	// switches TLS to them.
	Reload() error
}

// Changes runs the zone's certificate changes on this server: its Step
// is the daemon's certificate loop, its routes start, show, cancel and
// feed a change (CSRs, certificates an external CA signed), and
// FinishActivation is what the core does at start-up.
type Changes struct {
	Zone  ChangeZone
	TLS   TLS
	CA    CAHolder
	Self  zone.Server
	Paths config.Paths
	Now   func() time.Time
	Log   *slog.Logger

	mu        sync.Mutex // one certificate change step at a time on this server
	lastErr   atomic.Pointer[string]
	caExpired atomic.Bool // logged that the zone CA expired while running
}

// Register mounts the certificate change's routes.
func (c *Changes) Register(r httpapi.Routes) {
	r.Admin("POST "+api.Prefix+"/certificate-authority/remint", c.remintCA)
	r.Admin("POST "+api.Prefix+"/certificate-authority/change", c.changeCA)
	r.Admin("POST "+api.Prefix+"/server-certificates/remint", c.remintServerCerts)
	r.Admin("GET "+api.Prefix+"/certificate-changes/current", c.getChange)
	r.Admin("DELETE "+api.Prefix+"/certificate-changes/current", c.cancelChange)
	r.Admin("GET "+api.Prefix+"/certificate-changes/current/csrs.zip", c.getCSRZip)
	r.Admin("GET "+api.Prefix+"/server-certificates/{server}/csr", c.getCSR)
	r.Admin("POST "+api.Prefix+"/server-certificates/{server}/csr", c.regenerateCSR)
	r.Admin("POST "+api.Prefix+"/server-certificates/{server}/import", c.importFuture)
	r.Admin("POST "+api.Prefix+"/server-certificates/{server}/certificate", c.addServerCertificate)
}

func (c *Changes) futureKeyPath() string { return filepath.Join(c.Paths.RemintRepo(), "key.der") }
func (c *Changes) futureChainPath() string {
	return filepath.Join(c.Paths.RemintRepo(), "server.pem")
}
func (c *Changes) futureCAKeyPath() string {
	return filepath.Join(c.Paths.Security(), "zone-ca.future.key")
}

// Step does, once, whatever this server can do now for the change under
// way and notes an expired zone CA; the daemon's certificate loop calls it
// each second. Errors are logged when they change.
func (c *Changes) Step() {
	if err := c.Reconcile(); err != nil {
		msg := err.Error()
		if prev := c.lastErr.Swap(&msg); prev == nil || *prev != msg {
			c.Log.Error("certificate change", "err", err)
		}
	} else {
		c.lastErr.Store(nil)
	}
	c.noteExpiredCA()
}

// noteExpiredCA logs, once, that the zone CA expired while this server
// runs: from then on no agent, zman or peer can verify it, and the log is
// the only place left to say so and name the way out.
func (c *Changes) noteExpiredCA() {
	ca := c.TLS.ZoneCA()
	if ca == nil || !c.Now().After(ca.NotAfter) {
		c.caExpired.Store(false)
		return
	}
	if c.caExpired.Swap(true) {
		return
	}
	c.Log.Error("the zone CA has expired: nothing can connect to this server any more",
		"ca", ca.Subject.String(), "expired", ca.NotAfter.UTC().Format(time.RFC3339),
		"remedy", "remint it at once with 'zman --allow-expired-ca certificate-authority-remint' (then devices run 'zac retrust'), or stop the server and run 'zconfigure -c SSL' option 2")
}

// Reconcile does whatever step of the change under way this server can do now.
func (c *Changes) Reconcile() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconcileLocked()
}

func (c *Changes) reconcileLocked() error {
	r, err := c.Zone.Remint()
	if err != nil {
		return err
	}
	if r == nil {
		return c.followActivation()
	}
	if err := c.prepareOwn(r); err != nil {
		return err
	}
	if err := c.crossSignFuture(r); err != nil {
		return err
	}
	if r, err = c.Zone.Remint(); err != nil || r == nil {
		return err
	}
	if err := c.signPending(r); err != nil {
		return err
	}
	if r, err = c.Zone.Remint(); err != nil || r == nil {
		return err
	}
	if !r.Immediate && c.Now().Before(r.Activation) {
		return nil
	}
	for _, f := range r.Servers {
		if !f.Ready() {
			return fmt.Errorf("change %q is due but server %s has no future certificate (%s)", r.Name, f.Name, f.Status)
		}
	}
	if err := c.Zone.ActivateRemint(SystemActor, r.ID); err != nil {
		return fmt.Errorf("activate change %q: %w", r.Name, err)
	}
	c.Log.Info("certificate change activated", "change", r.Name, "kind", string(r.Kind))
	return c.installOwn(r)
}

// followActivation installs a change another server of the zone activated:
// the store then holds a zone CA or a certificate for this server that
// differ from the ones this server uses.
func (c *Changes) followActivation() error {
	z, err := c.Zone.Zone()
	if err != nil {
		return err
	}
	self, err := c.Zone.Server(c.Self.ID)
	if err != nil {
		return err
	}
	ca, errCA := pki.ParseCertPEM([]byte(z.CACertPEM))
	leaf, errLeaf := pki.ParseCertPEM([]byte(self.CertPEM))
	if (errCA != nil || ca.Equal(c.TLS.ZoneCA())) && (errLeaf != nil || leaf.Equal(c.TLS.Leaf())) {
		return nil
	}
	if err := c.FinishActivation(); err != nil {
		return err
	}
	if err := c.TLS.Reload(); err != nil {
		return err
	}
	c.Log.Info("certificate change activated elsewhere in the zone installed")
	return nil
}

// prepareOwn makes this server's key and CSR, or picks up an
// administrator's certificate from remint-repo.
func (c *Changes) prepareOwn(r *zone.Remint) error {
	f, ok := r.Future(c.Self.ID)
	if !ok || f.Ready() {
		return nil
	}
	if r.Manual {
		return c.pickUpManual(r, f)
	}
	if f.CSRPEM != "" {
		return nil
	}
	if f.NewKey {
		if err := os.Remove(c.futureKeyPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		f.NewKey = false
	}
	key, err := c.futureKey(r.KeyType)
	if err != nil {
		f.Status, f.Error = zone.FutureCSRFailed, err.Error()
		return c.Zone.SetFuture(SystemActor, r.ID, f)
	}
	subj := r.Subject
	subj.CommonName, subj.DNSNames = f.Name, f.DNSNames
	csr, err := pki.NewServerCSR(key, subj, c.Self.IPs)
	if err != nil {
		f.Status, f.Error = zone.FutureCSRFailed, err.Error()
	} else {
		f.CSRPEM, f.Error = string(csr), ""
		f.Status = futurePending
		if r.External {
			f.Status = zone.FutureCSR
		}
	}
	return c.Zone.SetFuture(SystemActor, r.ID, f)
}

// futureKey returns remint-repo/key.der, creating it when missing.
func (c *Changes) futureKey(kt pki.KeyType) (crypto.Signer, error) {
	if data, err := os.ReadFile(c.futureKeyPath()); err == nil {
		return pki.ParsePrivateKey(data)
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	return key, c.writeFutureKey(key)
}

func (c *Changes) writeFutureKey(key crypto.Signer) error {
	der, err := pki.EncodeKeyDER(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Paths.RemintRepo(), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(c.futureKeyPath(), der, 0o600)
}

// futureSigner returns the CA that signs this change's server
// certificates, if this server holds its key.
func (c *Changes) futureSigner(r *zone.Remint) (*pki.CA, error) {
	if r.External {
		return nil, nil
	}
	if r.Kind == zone.RemintServers {
		return c.CA.Load(), nil
	}
	if r.CAServer != c.Self.ID {
		return nil, nil
	}
	cert, err := pki.ParseCertPEM([]byte(r.FutureCA))
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(c.futureCAKeyPath())
	if err != nil {
		return nil, fmt.Errorf("the future CA's key: %w", err)
	}
	key, err := pki.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("the future CA's key %s: %w", c.futureCAKeyPath(), err)
	}
	return &pki.CA{Cert: cert, Key: key}, nil
}

func (c *Changes) signPending(r *zone.Remint) error {
	ca, err := c.futureSigner(r)
	if err != nil || ca == nil {
		return err
	}
	servers := map[string]zone.Server{}
	if list, err := c.Zone.Servers(); err == nil {
		for _, sv := range list {
			servers[sv.ID] = sv
		}
	}
	for _, f := range r.Servers {
		if f.Ready() || f.CSRPEM == "" {
			continue
		}
		cert, err := c.signFuture(ca, f, servers[f.Server])
		if err != nil {
			f.Status, f.Error = zone.FutureFailed, err.Error()
		} else {
			f.Status, f.Error, f.CertPEM = zone.FutureCreated, "", string(pki.EncodeCertPEM(cert))
		}
		if err := c.Zone.SetFuture(SystemActor, r.ID, f); err != nil {
			return err
		}
	}
	return nil
}

// crossSignFuture has the current CA certify the future one when this
// server holds the current CA's key and the change was started where it
// is not (cach --internal on the server that will hold the new CA): the
// cross certificate is what lets a device that missed the change follow
// with 'zac retrust' without a fingerprint.
func (c *Changes) crossSignFuture(r *zone.Remint) error {
	if r.CrossCert != "" || !r.Kind.ChangesCA() {
		return nil
	}
	ca := c.CA.Load()
	if ca == nil || !ca.Cert.Equal(c.TLS.ZoneCA()) {
		return nil
	}
	future, err := pki.ParseCertPEM([]byte(r.FutureCA))
	if err != nil {
		return fmt.Errorf("the change's future CA: %w", err)
	}
	cross, err := ca.CrossSign(future)
	if err != nil {
		return err
	}
	if err := c.Zone.SetRemintCross(SystemActor, r.ID, string(pki.EncodeCertPEM(cross))); err != nil {
		return err
	}
	c.Log.Info("the current CA certified the future one", "change", r.Name, "future", future.Subject.String())
	return nil
}

func (c *Changes) signFuture(ca *pki.CA, f zone.FutureCert, sv zone.Server) (*x509.Certificate, error) {
	csr, err := pki.ParseCSRPEM([]byte(f.CSRPEM))
	if err != nil {
		return nil, err
	}
	if err := pki.CheckPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, ip := range sv.IPs {
		if p := net.ParseIP(ip); p != nil {
			ips = append(ips, p)
		}
	}
	return ca.IssueServer(pki.ServerRequest{CommonName: f.Name, DNSNames: f.DNSNames, IPs: ips, PublicKey: csr.PublicKey}, c.Now())
}

// manualNames are the names an administrator may give the certificate
// placed in remint-repo, as the reference tool accepts them.
var manualNames = []string{"server.pem", "server.cer", "server.crt", "server.der", "server.cert", "server.p7b"}

func (c *Changes) pickUpManual(r *zone.Remint, f zone.FutureCert) error {
	keyData, err := os.ReadFile(c.futureKeyPath())
	if err != nil {
		return nil // nothing placed yet
	}
	var certData []byte
	for _, n := range manualNames {
		if certData, err = os.ReadFile(filepath.Join(c.Paths.RemintRepo(), n)); err == nil {
			break
		}
	}
	if certData == nil {
		return nil
	}
	chain, err := c.checkFuture(r, f, certData, func() (crypto.PublicKey, error) {
		key, err := pki.ParsePrivateKey(keyData)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.futureKeyPath(), err)
		}
		return key.Public(), nil
	})
	if err == nil {
		// No -f here: the administrator places a certificate that covers
		// every name in use (the error says which are missing).
		var sv zone.Server
		if sv, err = c.Zone.Server(f.Server); err == nil {
			_, err = checkNamesInUse(chain[0], sv, false, false)
		}
	}
	if err != nil {
		if f.Error != err.Error() {
			f.Error = err.Error()
			return c.Zone.SetFuture(SystemActor, r.ID, f)
		}
		return nil
	}
	f.Status, f.Error, f.CertPEM = zone.FutureUploaded, "", string(pki.EncodeChainPEM(chain...))
	return c.Zone.SetFuture(SystemActor, r.ID, f)
}

// checkFuture verifies an administrator's certificate for f: its key,
// its chain to the CA the change activates, and its name.
func (c *Changes) checkFuture(r *zone.Remint, f zone.FutureCert, data []byte, pub func() (crypto.PublicKey, error)) ([]*x509.Certificate, error) {
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, errkind.Wrap(errkind.Invalid, err)
	}
	root := c.TLS.ZoneCA()
	// Under the current CA, the intermediates this server already chains
	// through are known; a change of CA brings its own.
	inter := c.intermediates()
	if r.Kind.ChangesCA() {
		inter = nil
		if root, err = pki.ParseCertPEM([]byte(r.FutureCA)); err != nil {
			return nil, err
		}
		if r.FutureChain != "" {
			inter, _ = pki.ParseCertsPEM([]byte(r.FutureChain))
		}
	}
	key, err := pub()
	if err != nil {
		return nil, errkind.Wrap(errkind.Invalid, err)
	}
	_, chain, err := pki.CheckServerCert(certs, pki.ServerCertCheck{Root: root, Intermediates: inter, PublicKey: key, Name: f.Name, At: r.Activation})
	if err != nil {
		return nil, errkind.Wrap(errkind.Invalid, err)
	}
	return chain, nil
}

// checkNamesInUse is the preflight of a new certificate for sv: one that
// drops a name or address in use would lock out whoever uses it at
// activation. It is refused, or with force accepted with a warning that
// lists what breaks.
func checkNamesInUse(leaf *x509.Certificate, sv zone.Server, force, canForce bool) (warning string, err error) {
	missing := pki.UncoveredNames(leaf, sv.NamesInUse())
	if len(missing) == 0 {
		return "", nil
	}
	what := fmt.Sprintf("the certificate for %s does not cover %s, which agents, zman or peer servers use to reach it: they would be refused at activation",
		sv.Name, strings.Join(missing, ", "))
	if !force {
		hint := ""
		if canForce {
			hint = ", or give -f to accept it anyway"
		}
		return "", errkind.New(errkind.Invalid, "%s. Have it issued for these names too%s", what, hint)
	}
	return "accepted with -f: " + what, nil
}

// intermediates are the CA certificates between this server's
// certificate and the zone CA (an external CA's issuing chain).
func (c *Changes) intermediates() []*x509.Certificate {
	var out []*x509.Certificate
	root := c.TLS.ZoneCA()
	for _, der := range c.TLS.Served()[1:] {
		if cert, err := x509.ParseCertificate(der); err == nil && cert.IsCA && !cert.Equal(root) {
			out = append(out, cert)
		}
	}
	return out
}

// installOwn puts this server's future certificate (and the new CA) in
// place after activation and switches TLS to them.
func (c *Changes) installOwn(r *zone.Remint) error {
	if f, ok := r.Future(c.Self.ID); ok {
		if err := atomicfile.WriteFile(c.futureChainPath(), []byte(f.CertPEM), 0o644); err != nil {
			return err
		}
	}
	if err := c.FinishActivation(); err != nil {
		return err
	}
	if err := c.TLS.Reload(); err != nil {
		return err
	}
	return nil
}

// FinishActivation brings conf/ in line with the store after a change has
// activated (also at start-up, for a change that activated while this
// server was down): the zone CA file, the CA key when this server holds
// the new CA, and this server's certificate and key from remint-repo.
func (c *Changes) FinishActivation() error {
	p := c.Paths
	z, err := c.Zone.Zone()
	if err != nil {
		return err
	}
	self, err := c.Zone.Server(c.Self.ID)
	if err != nil {
		return err
	}
	caPEM, _ := os.ReadFile(p.CACert())
	if !bytes.Equal(caPEM, []byte(z.CACertPEM)) {
		ca, err := pki.ParseCertPEM([]byte(z.CACertPEM))
		if err != nil {
			return err
		}
		if keyData, err := os.ReadFile(c.futureCAKeyPath()); err == nil {
			if key, err := pki.ParseKeyPEM(keyData); err == nil && pki.SameKey(ca.PublicKey, key) {
				// The old CA key is kept beside the new one, 0600, for
				// an administrator who needs to sign with it once more.
				if fileExists(p.CAKey()) {
					if err := os.Rename(p.CAKey(), filepath.Join(p.Security(), "zone-ca.previous.key")); err != nil {
						return err
					}
				}
				if err := os.Rename(c.futureCAKeyPath(), p.CAKey()); err != nil {
					return err
				}
			}
		}
		// The key of the replaced CA never stays where the zone CA's key
		// belongs (an external CA, or the role moved to another server):
		// it is kept aside like the one above.
		if keyData, err := os.ReadFile(p.CAKey()); err == nil {
			if k, err := pki.ParseKeyPEM(keyData); err != nil || !pki.SameKey(ca.PublicKey, k) {
				if err := os.Rename(p.CAKey(), filepath.Join(p.Security(), "zone-ca.previous.key")); err != nil {
					return err
				}
				c.Log.Info("the replaced CA's key was moved aside", "file", filepath.Join(p.Security(), "zone-ca.previous.key"))
			}
		}
		if err := atomicfile.WriteFile(p.CACert(), []byte(z.CACertPEM), 0o644); err != nil {
			return err
		}
		if key, err := os.ReadFile(p.CAKey()); err == nil && self.HasRole(zone.RoleCertAuth) {
			if k, err := pki.ParseKeyPEM(key); err == nil && pki.SameKey(ca.PublicKey, k) {
				c.CA.Store(&pki.CA{Cert: ca, Key: k})
			}
		} else if !self.HasRole(zone.RoleCertAuth) {
			c.CA.Store(nil)
		}
		c.Log.Info("zone CA replaced", "subject", ca.Subject.String(), "sha256", pki.Fingerprint(ca, "sha256"))
	}
	want, err := pki.ParseCertPEM([]byte(self.CertPEM))
	if err != nil {
		return fmt.Errorf("this server's certificate in the store: %w", err)
	}
	have, err := pki.ReadCertFile(p.ServerCert())
	if err == nil && have.Equal(want) {
		return nil
	}
	chainPEM, err := os.ReadFile(c.futureChainPath())
	if errors.Is(err, fs.ErrNotExist) && fileExists(c.futureKeyPath()) {
		// Another server of the zone activated the change before this one
		// fetched its certificate: the store's copy is the one (issued by
		// the zone CA itself, so there is no intermediate to add).
		chainPEM, err = pki.EncodeCertPEM(want), nil
	}
	if err != nil {
		return fmt.Errorf("the store holds a new certificate for this server (SHA-256 %s) but %s is missing: %w",
			pki.Fingerprint(want, "sha256"), c.futureChainPath(), err)
	}
	chain, err := pki.ParseCertsPEM(chainPEM)
	if err != nil || !chain[0].Equal(want) {
		return fmt.Errorf("%s does not hold the certificate the store names for this server", c.futureChainPath())
	}
	keyData, err := os.ReadFile(c.futureKeyPath())
	if err != nil {
		// sacert may have certified the key this server already has.
		keyData, err = os.ReadFile(p.ServerKey())
		if err != nil {
			return err
		}
	}
	key, err := pki.ParsePrivateKey(keyData)
	if err != nil {
		return err
	}
	if !pki.SameKey(want.PublicKey, key) {
		return fmt.Errorf("no key for this server's new certificate (SHA-256 %s) in %s", pki.Fingerprint(want, "sha256"), c.futureKeyPath())
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p.ServerKey(), keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p.ServerCert(), append(chainPEM, []byte(z.CACertPEM)...), 0o644); err != nil {
		return err
	}
	c.cleanRemintRepo()
	c.Log.Info("server certificate installed", "sha256", pki.Fingerprint(want, "sha256"), "not_after", want.NotAfter.UTC())
	return nil
}

// cleanRemintRepo removes what a finished or cancelled change left in remint-repo.
func (c *Changes) cleanRemintRepo() {
	for _, n := range append([]string{"key.der"}, manualNames...) {
		os.Remove(filepath.Join(c.Paths.RemintRepo(), n))
	}
}

// ---- HTTP handlers ----

func (c *Changes) remintCA(w http.ResponseWriter, r *http.Request, actor string) error {
	return c.startChange(w, r, actor, zone.RemintCA)
}

func (c *Changes) changeCA(w http.ResponseWriter, r *http.Request, actor string) error {
	return c.startChange(w, r, actor, "")
}

func (c *Changes) remintServerCerts(w http.ResponseWriter, r *http.Request, actor string) error {
	return c.startChange(w, r, actor, zone.RemintServers)
}

func (c *Changes) startChange(w http.ResponseWriter, r *http.Request, actor string, kind zone.RemintKind) error {
	var req api.RemintRequest
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if kind == "" {
		kind = zone.ChangeCAInternal
		if req.External {
			kind = zone.ChangeCAExternal
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rm, cleanup, err := c.planChange(actor, kind, req)
	if err != nil {
		return err
	}
	if err := c.Zone.StartRemint(actor, *rm); err != nil {
		cleanup()
		return err
	}
	c.Log.Info("certificate change started", "actor", actor, "kind", string(kind), "name", rm.Name, "activation", rm.Activation)
	var warnings []string
	if kind.ChangesCA() && rm.CrossCert == "" {
		if holder, err := CertAuthServer(c.Zone); err == nil && holder == "" {
			warnings = append(warnings, "no server holds the CertAuth role with the current CA's key, so nothing certifies the new CA: "+
				"a device that misses the change must be given its fingerprint (zac retrust --fingerprint, from certificate-authority-info)")
		}
	}
	// The first steps run now, so the answer shows certificates or CSRs.
	if err := c.reconcileLocked(); err != nil {
		c.Log.Error("certificate change", "err", err)
	}
	if cur, err := c.Zone.Remint(); err == nil && cur == nil {
		// Already done: activation now (or an expired CA) took effect.
		httpapi.WriteJSON(w, http.StatusCreated, api.CertificateChange{Kind: "activated", ID: rm.ID, Name: rm.Name, Servers: []api.FutureServer{},
			Activated: string(rm.Kind), Retrust: rm.Kind != zone.RemintServers, CAExpired: rm.Immediate})
		return nil
	}
	return c.writeChangeWarnings(w, http.StatusCreated, warnings)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// planChange checks a request and prepares the change record; cleanup
// undoes what it wrote to disk if the change is not recorded.
func (c *Changes) planChange(actor string, kind zone.RemintKind, req api.RemintRequest) (*zone.Remint, func(), error) {
	noop := func() {}
	if cur, err := c.Zone.Remint(); err != nil {
		return nil, noop, err
	} else if cur != nil {
		return nil, noop, errkind.New(errkind.Exists, "a certificate change (%s %q, started %s by %s) is already under way: cancel it (certificate-change-cancel) or wait for its activation",
			cur.Kind, cur.Name, cur.Started.UTC().Format(time.RFC3339), cur.Actor)
	}
	z, err := c.Zone.Zone()
	if err != nil {
		return nil, noop, err
	}
	cur := c.TLS.ZoneCA()
	now := c.Now()
	rm := &zone.Remint{ID: randomHex(16), Kind: kind, Name: req.Name, Actor: actor, Started: now.UTC(), Activation: req.Activation.UTC(),
		Subject: pki.CSRSubject{Organization: req.Organization, OrganizationalUnit: req.OrganizationalUnit,
			Locality: req.Locality, State: req.State, Country: req.Country}}
	if now.After(cur.NotAfter) {
		rm.Immediate, rm.Activation = true, now.UTC()
	} else {
		if req.Activation.IsZero() {
			return nil, noop, errkind.New(errkind.Usage, "an activation date is needed (before the zone CA expires on %s)", cur.NotAfter.UTC().Format(time.RFC3339))
		}
		if !req.Activation.Before(cur.NotAfter) {
			return nil, noop, errkind.New(errkind.Usage, "activation %s is after the zone CA expires (%s): choose an earlier date",
				req.Activation.UTC().Format(time.RFC3339), cur.NotAfter.UTC().Format(time.RFC3339))
		}
		if req.Activation.Before(now.Add(-time.Minute)) {
			return nil, noop, errkind.New(errkind.Usage, "activation %s is in the past", req.Activation.UTC().Format(time.RFC3339))
		}
	}
	kt := pki.KeyType(req.KeyType)
	if kt == "" {
		kt = pki.KeyTypeOf(cur.PublicKey)
	} else if kt, err = pki.ParseKeyType(req.KeyType); err != nil {
		return nil, noop, errkind.Wrap(errkind.Usage, err)
	}
	rm.KeyType = kt
	servers, err := c.Zone.Servers()
	if err != nil {
		return nil, noop, err
	}
	selected := servers
	if kind == zone.RemintServers && len(req.Servers) > 0 {
		selected = nil
		for _, ref := range req.Servers {
			sv, ok := findServer(servers, ref)
			if !ok {
				return nil, noop, errkind.New(errkind.NotFound, "server %q not found", ref)
			}
			selected = append(selected, sv)
		}
	}
	if req.CommonName != "" && kind == zone.RemintServers && len(selected) != 1 {
		return nil, noop, errkind.New(errkind.Usage, "a common name can be given only when one server is reminted")
	}
	if n := len(req.CommonName); n > pki.MaxCommonName {
		return nil, noop, errkind.New(errkind.Usage, "the common name is %d characters long; RFC 5280 allows at most %d", n, pki.MaxCommonName)
	}
	if !rm.Immediate {
		// Each selected server must still have a valid certificate when
		// the new one activates: one that expires first leaves the server
		// unreachable in between.
		for _, sv := range selected {
			if !sv.CertNotAfter.IsZero() && now.Before(sv.CertNotAfter) && !rm.Activation.Before(sv.CertNotAfter) {
				return nil, noop, errkind.New(errkind.Usage, "activation %s is after the certificate of %s expires (%s): choose an earlier date",
					rm.Activation.Format(time.RFC3339), sv.Name, sv.CertNotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
	for _, sv := range selected {
		name := sv.Name
		if kind == zone.RemintServers && req.CommonName != "" {
			name = req.CommonName
		}
		rm.Servers = append(rm.Servers, zone.FutureCert{Server: sv.ID, Name: name, DNSNames: mergeNames(sv.DNSNames, req.DNSNames), Status: futurePending})
	}
	if rm.Name == "" {
		rm.Name = fmt.Sprintf("%s %s", kind, now.UTC().Format("2006-01-02 15:04"))
	}
	oldCA := c.CA.Load()
	switch kind {
	case zone.RemintServers:
		rm.External = !z.CAInternal
		rm.Manual = rm.External && req.Manual
		if req.Manual && !rm.External {
			return nil, noop, errkind.New(errkind.Usage, "manual signing is for an external CA; the internal CA signs the new certificates itself")
		}
		markManual(rm)
		if !rm.External && oldCA == nil {
			return nil, noop, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role: run this against the server that does", c.Self.Name)
		}
		return rm, noop, nil

	case zone.RemintCA, zone.ChangeCAInternal:
		if kind == zone.RemintCA && !z.CAInternal {
			return nil, noop, errkind.New(errkind.Usage, "the zone CA is external: change it with certificate-authority-change, an external CA is reminted by its owner")
		}
		if kind == zone.RemintCA && oldCA == nil {
			return nil, noop, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role and the CA key: run this against the server that does", c.Self.Name)
		}
		if req.CAServer != "" {
			sv, ok := findServer(servers, req.CAServer)
			if !ok {
				return nil, noop, errkind.New(errkind.NotFound, "server %q not found", req.CAServer)
			}
			if sv.ID != c.Self.ID {
				return nil, noop, errkind.New(errkind.Usage, "the new CA's key is made on the server that will hold it: send this request to %s", sv.Name)
			}
		}
		rm.CAServer = c.Self.ID
		cn, org := req.CommonName, z.Name
		if kind == zone.RemintCA {
			// A remint keeps the CA's subject: a new name is a change of CA.
			if cn != "" && cn != cur.Subject.CommonName {
				return nil, noop, errkind.New(errkind.Usage, "a CA remint keeps the subject %q; a CA named %q is a change to a new internal CA, not a remint", cur.Subject.CommonName, cn)
			}
			cn = cur.Subject.CommonName
			if len(cur.Subject.Organization) > 0 {
				org = cur.Subject.Organization[0]
			}
		}
		if cn == "" {
			cn = z.Name
			if kind == zone.ChangeCAInternal {
				cn = fmt.Sprintf("%s CA %s", z.Name, now.UTC().Format("2006-01-02"))
			}
		}
		if kind == zone.ChangeCAInternal && cn == cur.Subject.CommonName {
			return nil, noop, errkind.New(errkind.Usage, "a change of CA needs a new subject: %q is the current CA's (use certificate-authority-remint to keep it)", cn)
		}
		years := req.Years
		if years == 0 {
			years = 10
		}
		if years < 1 || years > 10 {
			return nil, noop, errkind.New(errkind.Usage, "CA validity must be 1 to 10 years, not %d", years)
		}
		// The new CA's key and this server's future key are made at once,
		// on two cores: with RSA 4096 that halves the wait.
		keys, err := pki.GenerateKeys(kt, 2)
		if err != nil {
			return nil, noop, err
		}
		next, err := pki.NewCAWith(pki.CAOptions{CommonName: cn, Organization: org, KeyType: kt, Years: years, Now: now, Key: keys[0]})
		if err != nil {
			return nil, noop, err
		}
		if !fileExists(c.futureKeyPath()) {
			if err := c.writeFutureKey(keys[1]); err != nil {
				return nil, noop, err
			}
		}
		if !req.Activation.IsZero() && !rm.Immediate && next.Cert.NotAfter.Before(req.Activation) {
			return nil, noop, errkind.New(errkind.Usage, "the new CA would expire before its activation")
		}
		keyPEM, err := pki.EncodeKeyPEM(next.Key)
		if err != nil {
			return nil, noop, err
		}
		if err := atomicfile.WriteFile(c.futureCAKeyPath(), keyPEM, 0o600); err != nil {
			return nil, noop, err
		}
		rm.FutureCA = string(pki.EncodeCertPEM(next.Cert))
		if oldCA != nil {
			cross, err := oldCA.CrossSign(next.Cert)
			if err != nil {
				os.Remove(c.futureCAKeyPath())
				return nil, noop, err
			}
			rm.CrossCert = string(pki.EncodeCertPEM(cross))
		}
		return rm, func() { os.Remove(c.futureCAKeyPath()) }, nil

	case zone.ChangeCAExternal:
		if req.ChainPEM == "" {
			return nil, noop, errkind.New(errkind.Usage, "an external CA needs its root certificate or chain")
		}
		certs, err := pki.ParseCertificates([]byte(req.ChainPEM))
		if err != nil {
			return nil, noop, errkind.Wrap(errkind.Invalid, err)
		}
		root, inter, err := pki.RootOfChain(certs)
		if err != nil {
			return nil, noop, errkind.Wrap(errkind.Invalid, err)
		}
		if root.Equal(cur) {
			return nil, noop, errkind.New(errkind.Usage, "%s is already the zone CA", root.Subject)
		}
		if now.After(root.NotAfter) || (!rm.Immediate && root.NotAfter.Before(rm.Activation)) {
			return nil, noop, errkind.New(errkind.Invalid, "the external CA %s expires on %s, before the activation", root.Subject, root.NotAfter.UTC().Format(time.RFC3339))
		}
		rm.External, rm.Manual = true, req.Manual
		rm.FutureCA = string(pki.EncodeCertPEM(root))
		rm.FutureChain = string(pki.EncodeChainPEM(inter...))
		if oldCA != nil {
			if cross, err := oldCA.CrossSign(root); err == nil {
				rm.CrossCert = string(pki.EncodeCertPEM(cross))
			}
		}
		markManual(rm)
		return rm, noop, nil
	}
	return nil, noop, fmt.Errorf("unknown certificate change %q", kind)
}

func markManual(rm *zone.Remint) {
	if rm.Manual {
		for i := range rm.Servers {
			rm.Servers[i].Status = zone.FutureManual
		}
	}
}

func findServer(servers []zone.Server, ref string) (zone.Server, bool) {
	for _, sv := range servers {
		if sv.ID == ref || strings.EqualFold(sv.Name, ref) {
			return sv, true
		}
	}
	return zone.Server{}, false
}

func mergeNames(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, n := range b {
		if n != "" && !pkiContains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func pkiContains(ss []string, s string) bool {
	for _, x := range ss {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (c *Changes) changeInfo(r *zone.Remint) api.CertificateChange {
	out := api.CertificateChange{ID: r.ID, Kind: string(r.Kind), Name: r.Name, Actor: r.Actor, Started: r.Started, Activation: r.Activation,
		Immediate: r.Immediate, Cancelable: r.Cancelable(c.Now()), Stalled: r.Stalled(c.Now())}
	if c, err := pki.ParseCertPEM([]byte(r.FutureCA)); err == nil {
		out.FutureCA = Summary(c, true)
	}
	names := map[string]string{}
	if list, err := c.Zone.Servers(); err == nil {
		for _, sv := range list {
			names[sv.ID] = sv.Name
		}
	}
	for _, f := range r.Servers {
		fs := api.FutureServer{Server: names[f.Server], Status: f.Status, Error: f.Error, HasCSR: f.CSRPEM != ""}
		if fs.Server == "" {
			fs.Server = f.Name
		}
		if c, err := pki.ParseCertPEM([]byte(f.CertPEM)); err == nil {
			fs.Cert = Summary(c, false)
		}
		out.Servers = append(out.Servers, fs)
	}
	if e := c.lastErr.Load(); e != nil {
		out.LastError = *e
	}
	return out
}

func (c *Changes) writeChange(w http.ResponseWriter, status int) error {
	return c.writeChangeWarnings(w, status, nil)
}

// writeChangeWarnings answers with the change under way and the
// request's warnings.
func (c *Changes) writeChangeWarnings(w http.ResponseWriter, status int, warnings []string) error {
	r, err := c.Zone.Remint()
	if err != nil {
		return err
	}
	if r == nil {
		// Activated at once (an expired CA): nothing left under way.
		httpapi.WriteJSON(w, status, api.CertificateChange{Kind: "activated", Servers: []api.FutureServer{}})
		return nil
	}
	out := c.changeInfo(r)
	out.Warnings = warnings
	httpapi.WriteJSON(w, status, out)
	return nil
}

func (c *Changes) getChange(w http.ResponseWriter, r *http.Request, _ string) error {
	rm, err := c.Zone.Remint()
	if err != nil {
		return err
	}
	if rm == nil {
		return errkind.New(errkind.NotFound, "no certificate change is under way")
	}
	httpapi.WriteJSON(w, http.StatusOK, c.changeInfo(rm))
	return nil
}

func (c *Changes) cancelChange(w http.ResponseWriter, r *http.Request, actor string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rm, err := c.Zone.Remint()
	if err != nil {
		return err
	}
	if rm == nil {
		return errkind.New(errkind.NotFound, "no certificate change is under way")
	}
	if err := c.Zone.CancelRemint(actor, rm.ID); err != nil {
		return err
	}
	os.Remove(c.futureCAKeyPath())
	c.cleanRemintRepo()
	c.Log.Info("certificate change cancelled", "actor", actor, "change", rm.Name)
	info := c.changeInfo(rm)
	httpapi.WriteJSON(w, http.StatusOK, info)
	return nil
}

func (c *Changes) futureOf(ref string) (*zone.Remint, zone.FutureCert, error) {
	rm, err := c.Zone.Remint()
	if err != nil {
		return nil, zone.FutureCert{}, err
	}
	if rm == nil {
		return nil, zone.FutureCert{}, errkind.New(errkind.NotFound, "no certificate change is under way")
	}
	servers, err := c.Zone.Servers()
	if err != nil {
		return nil, zone.FutureCert{}, err
	}
	sv, ok := findServer(servers, ref)
	if !ok {
		return nil, zone.FutureCert{}, errkind.New(errkind.NotFound, "server %q not found", ref)
	}
	f, ok := rm.Future(sv.ID)
	if !ok {
		return nil, zone.FutureCert{}, errkind.New(errkind.NotFound, "server %s is not part of certificate change %q", sv.Name, rm.Name)
	}
	return rm, f, nil
}

func (c *Changes) getCSR(w http.ResponseWriter, r *http.Request, _ string) error {
	_, f, err := c.futureOf(r.PathValue("server"))
	if err != nil {
		return err
	}
	if f.CSRPEM == "" {
		return errkind.New(errkind.NotFound, "no CSR for server %s (%s)", f.Name, f.Status)
	}
	w.Header().Set("Content-Type", "application/pkcs10")
	w.Write([]byte(f.CSRPEM))
	return nil
}

// regenerateCSR discards a server's CSR (and any certificate imported for
// it) in the change under way; that server makes a new key and CSR, with
// names added if asked, at its next step. For a CSR the external CA
// refused, or that lacks a name.
func (c *Changes) regenerateCSR(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CSRRegenerate
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rm, f, err := c.futureOf(r.PathValue("server"))
	if err != nil {
		return err
	}
	if !rm.External || rm.Manual {
		return errkind.New(errkind.Usage, "change %q has no CSRs to regenerate: only a change under an external CA without manual signing has them", rm.Name)
	}
	f.CSRPEM, f.CertPEM, f.Error, f.NewKey = "", "", "", true
	f.Status = futurePending
	f.DNSNames = mergeNames(f.DNSNames, req.DNSNames)
	if err := c.Zone.SetFuture(actor, rm.ID, f); err != nil {
		return err
	}
	c.Log.Info("CSR regenerated", "actor", actor, "server", f.Name, "dns_names", f.DNSNames)
	if f.Server == c.Self.ID {
		if err := c.reconcileLocked(); err != nil {
			c.Log.Error("certificate change", "err", err)
		}
	}
	return c.writeChange(w, http.StatusOK)
}

func (c *Changes) getCSRZip(w http.ResponseWriter, r *http.Request, _ string) error {
	rm, err := c.Zone.Remint()
	if err != nil {
		return err
	}
	if rm == nil {
		return errkind.New(errkind.NotFound, "no certificate change is under way")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	n := 0
	for _, f := range rm.Servers {
		if f.CSRPEM == "" {
			continue
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: safeFileName(f.Name) + ".csr", Method: zip.Deflate, Modified: c.Now()})
		if err != nil {
			return err
		}
		fw.Write([]byte(f.CSRPEM))
		n++
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if n == 0 {
		return errkind.New(errkind.NotFound, "certificate change %q has no CSRs", rm.Name)
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Write(buf.Bytes())
	return nil
}

// safeFileName keeps a server name usable as a zip entry on any system.
func safeFileName(n string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < ' ' {
			return '_'
		}
		return r
	}, n)
}

func (c *Changes) importFuture(w http.ResponseWriter, r *http.Request, actor string) error {
	var up api.CertificateUpload
	if err := httpapi.ReadJSON(w, r, &up); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rm, f, err := c.futureOf(r.PathValue("server"))
	if err != nil {
		return err
	}
	if f.CSRPEM == "" {
		return errkind.New(errkind.Usage, "server %s has no CSR in change %q (%s): its certificate is not imported this way", f.Name, rm.Name, f.Status)
	}
	chain, err := c.checkFuture(rm, f, up.Data, func() (crypto.PublicKey, error) {
		csr, err := pki.ParseCSRPEM([]byte(f.CSRPEM))
		if err != nil {
			return nil, err
		}
		return csr.PublicKey, nil
	})
	if err != nil {
		return err
	}
	sv, err := c.Zone.Server(f.Server)
	if err != nil {
		return err
	}
	warning, err := checkNamesInUse(chain[0], sv, up.Force, true)
	if err != nil {
		return err
	}
	f.Status, f.Error, f.CertPEM = zone.FutureUploaded, "", string(pki.EncodeChainPEM(chain...))
	if err := c.Zone.SetFuture(actor, rm.ID, f); err != nil {
		return err
	}
	c.Log.Info("future certificate imported", "actor", actor, "server", f.Name, "sha256", pki.Fingerprint(chain[0], "sha256"))
	if warning != "" {
		c.Log.Warn("future certificate drops names in use", "actor", actor, "server", f.Name, "warning", warning)
		return c.writeChangeWarnings(w, http.StatusOK, []string{warning})
	}
	return c.writeChange(w, http.StatusOK)
}

// addServerCertificate (sacert) replaces a server's certificate now. It
// must certify the server's key (current, or remint-repo/key.der on this
// server) and chain to the zone CA; its names must include the server's
// unless forced (a changed DNS name), and a change must not be under way.
func (c *Changes) addServerCertificate(w http.ResponseWriter, r *http.Request, actor string) error {
	var up api.CertificateUpload
	if err := httpapi.ReadJSON(w, r, &up); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	servers, err := c.Zone.Servers()
	if err != nil {
		return err
	}
	sv, ok := findServer(servers, r.PathValue("server"))
	if !ok {
		return errkind.New(errkind.NotFound, "server %q not found", r.PathValue("server"))
	}
	if rm, err := c.Zone.Remint(); err != nil {
		return err
	} else if rm != nil {
		return errkind.New(errkind.Exists, "certificate change %q is under way: cancel it first or let it activate", rm.Name)
	}
	certs, err := pki.ParseCertificates(up.Data)
	if err != nil {
		return errkind.Wrap(errkind.Invalid, err)
	}
	cur, err := pki.ParseCertPEM([]byte(sv.CertPEM))
	if err != nil {
		return err
	}
	// The names in use are checked below (with a list of what breaks);
	// -f also lets a certificate without the server's FQDN through.
	name := sv.Name
	if up.Force {
		name = ""
	}
	check := func(pub crypto.PublicKey) ([]*x509.Certificate, error) {
		_, chain, err := pki.CheckServerCert(certs, pki.ServerCertCheck{Root: c.TLS.ZoneCA(), Intermediates: c.intermediates(), PublicKey: pub, Name: name, At: c.Now()})
		return chain, err
	}
	chain, err := check(cur.PublicKey)
	newKey := false
	if err != nil && sv.ID == c.Self.ID {
		if data, rerr := os.ReadFile(c.futureKeyPath()); rerr == nil {
			if key, perr := pki.ParsePrivateKey(data); perr == nil {
				if c, err2 := check(key.Public()); err2 == nil {
					chain, err, newKey = c, nil, true
				}
			}
		}
	}
	if err != nil {
		return errkind.Wrap(errkind.Invalid, err)
	}
	warning, err := checkNamesInUse(chain[0], sv, up.Force, true)
	if err != nil {
		return err
	}
	if sv.ID == c.Self.ID {
		if err := atomicfile.WriteFile(c.futureChainPath(), pki.EncodeChainPEM(chain...), 0o644); err != nil {
			return err
		}
		if !newKey {
			os.Remove(c.futureKeyPath())
		}
	}
	if err := c.Zone.SetServerCert(actor, sv.ID, string(pki.EncodeChainPEM(chain...))); err != nil {
		return err
	}
	if sv.ID == c.Self.ID {
		if err := c.FinishActivation(); err != nil {
			return err
		}
		if err := c.TLS.Reload(); err != nil {
			return err
		}
	}
	c.Log.Info("server certificate replaced", "actor", actor, "server", sv.Name, "sha256", pki.Fingerprint(chain[0], "sha256"))
	out := Summary(chain[0], false)
	if warning != "" {
		c.Log.Warn("server certificate drops names in use", "actor", actor, "server", sv.Name, "warning", warning)
		out.Warnings = []string{warning}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
