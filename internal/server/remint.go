package server

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/server/certificates"
	"zonekit/internal/zone"
)

// A certificate change (remint) runs in steps that every server repeats
// each second in remintLoop, so that it needs no coordinator: a server
// whose future certificate is missing makes its key (remint-repo/key.der,
// never leaving the machine) and a CSR; the server holding the signing key
// signs pending CSRs; an administrator's certificates are picked up from
// remint-repo; and at the activation time the change is applied to the
// store and each server installs its future certificate and switches TLS
// without a restart.

const (
	futurePending = "Creating certificate"
	loopEvery     = time.Second
	systemActor   = "zone-server"
)

func (s *Server) futureKeyPath() string { return filepath.Join(s.opts.Paths.RemintRepo(), "key.der") }
func (s *Server) futureChainPath() string {
	return filepath.Join(s.opts.Paths.RemintRepo(), "server.pem")
}
func (s *Server) futureCAKeyPath() string {
	return filepath.Join(s.opts.Paths.Security(), "zone-ca.future.key")
}

// remintLoop advances certificate changes until ctx ends.
func (s *Server) remintLoop(ctx context.Context) {
	t := time.NewTicker(loopEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.restored.Load() {
				return
			}
			if err := s.reconcile(); err != nil {
				msg := err.Error()
				if prev := s.remintErr.Swap(&msg); prev == nil || *prev != msg {
					s.log.Error("certificate change", "err", err)
				}
			} else {
				s.remintErr.Store(nil)
			}
			s.noteExpiredCA()
			if err := s.deviceCAStep(ctx); err != nil {
				msg := err.Error()
				if prev := s.deviceCAErr.Swap(&msg); prev == nil || *prev != msg {
					s.log.Error("device CA", "err", err)
				}
			} else {
				s.deviceCAErr.Store(nil)
			}
		}
	}
}

// noteExpiredCA logs, once, that the zone CA expired while this server
// runs: from then on no agent, zman or peer can verify it, and the log is
// the only place left to say so and name the way out.
func (s *Server) noteExpiredCA() {
	ca := s.zoneCA()
	if ca == nil || !s.now().After(ca.NotAfter) {
		s.caExpired.Store(false)
		return
	}
	if s.caExpired.Swap(true) {
		return
	}
	s.log.Error("the zone CA has expired: nothing can connect to this server any more",
		"ca", ca.Subject.String(), "expired", ca.NotAfter.UTC().Format(time.RFC3339),
		"remedy", "remint it at once with 'zman --allow-expired-ca certificate-authority-remint' (then devices run 'zac retrust'), or stop the server and run 'zconfigure -c SSL' option 2")
}

// reconcile does whatever step of the change under way this server can do now.
func (s *Server) reconcile() error {
	s.remintMu.Lock()
	defer s.remintMu.Unlock()
	return s.reconcileLocked()
}

func (s *Server) reconcileLocked() error {
	r, err := s.db.Remint()
	if err != nil {
		return err
	}
	if r == nil {
		return s.followActivation()
	}
	if err := s.prepareOwn(r); err != nil {
		return err
	}
	if err := s.crossSignFuture(r); err != nil {
		return err
	}
	if r, err = s.db.Remint(); err != nil || r == nil {
		return err
	}
	if err := s.signPending(r); err != nil {
		return err
	}
	if r, err = s.db.Remint(); err != nil || r == nil {
		return err
	}
	if !r.Immediate && s.now().Before(r.Activation) {
		return nil
	}
	for _, f := range r.Servers {
		if !f.Ready() {
			return fmt.Errorf("change %q is due but server %s has no future certificate (%s)", r.Name, f.Name, f.Status)
		}
	}
	if err := s.db.ActivateRemint(systemActor, r.ID); err != nil {
		return fmt.Errorf("activate change %q: %w", r.Name, err)
	}
	s.log.Info("certificate change activated", "change", r.Name, "kind", string(r.Kind))
	return s.installOwn(r)
}

// followActivation installs a change another server of the zone activated:
// the store then holds a zone CA or a certificate for this server that
// differ from the ones this server uses.
func (s *Server) followActivation() error {
	z, err := s.db.Zone()
	if err != nil {
		return err
	}
	self, err := s.db.Server(s.self.ID)
	if err != nil {
		return err
	}
	st := s.trust.Load()
	ca, errCA := pki.ParseCertPEM([]byte(z.CACertPEM))
	leaf, errLeaf := pki.ParseCertPEM([]byte(self.CertPEM))
	if (errCA != nil || ca.Equal(st.ca)) && (errLeaf != nil || leaf.Equal(st.leaf)) {
		return nil
	}
	if err := s.finishActivation(); err != nil {
		return err
	}
	if err := s.loadTrust(); err != nil {
		return err
	}
	s.log.Info("certificate change activated elsewhere in the zone installed")
	return nil
}

// prepareOwn makes this server's key and CSR, or picks up an
// administrator's certificate from remint-repo.
func (s *Server) prepareOwn(r *zone.Remint) error {
	f, ok := r.Future(s.self.ID)
	if !ok || f.Ready() {
		return nil
	}
	if r.Manual {
		return s.pickUpManual(r, f)
	}
	if f.CSRPEM != "" {
		return nil
	}
	if f.NewKey {
		if err := os.Remove(s.futureKeyPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		f.NewKey = false
	}
	key, err := s.futureKey(r.KeyType)
	if err != nil {
		f.Status, f.Error = zone.FutureCSRFailed, err.Error()
		return s.db.SetFuture(systemActor, r.ID, f)
	}
	subj := r.Subject
	subj.CommonName, subj.DNSNames = f.Name, f.DNSNames
	csr, err := pki.NewServerCSR(key, subj, s.self.IPs)
	if err != nil {
		f.Status, f.Error = zone.FutureCSRFailed, err.Error()
	} else {
		f.CSRPEM, f.Error = string(csr), ""
		f.Status = futurePending
		if r.External {
			f.Status = zone.FutureCSR
		}
	}
	return s.db.SetFuture(systemActor, r.ID, f)
}

// futureKey returns remint-repo/key.der, creating it when missing.
func (s *Server) futureKey(kt pki.KeyType) (crypto.Signer, error) {
	if data, err := os.ReadFile(s.futureKeyPath()); err == nil {
		return pki.ParsePrivateKey(data)
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	return key, s.writeFutureKey(key)
}

func (s *Server) writeFutureKey(key crypto.Signer) error {
	der, err := pki.EncodeKeyDER(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.opts.Paths.RemintRepo(), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(s.futureKeyPath(), der, 0o600)
}

// futureSigner returns the CA that signs this change's server
// certificates, if this server holds its key.
func (s *Server) futureSigner(r *zone.Remint) (*pki.CA, error) {
	if r.External {
		return nil, nil
	}
	if r.Kind == zone.RemintServers {
		return s.ca.Load(), nil
	}
	if r.CAServer != s.self.ID {
		return nil, nil
	}
	cert, err := pki.ParseCertPEM([]byte(r.FutureCA))
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.futureCAKeyPath())
	if err != nil {
		return nil, fmt.Errorf("the future CA's key: %w", err)
	}
	key, err := pki.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("the future CA's key %s: %w", s.futureCAKeyPath(), err)
	}
	return &pki.CA{Cert: cert, Key: key}, nil
}

func (s *Server) signPending(r *zone.Remint) error {
	ca, err := s.futureSigner(r)
	if err != nil || ca == nil {
		return err
	}
	servers := map[string]zone.Server{}
	if list, err := s.db.Servers(); err == nil {
		for _, sv := range list {
			servers[sv.ID] = sv
		}
	}
	for _, f := range r.Servers {
		if f.Ready() || f.CSRPEM == "" {
			continue
		}
		cert, err := s.signFuture(ca, f, servers[f.Server])
		if err != nil {
			f.Status, f.Error = zone.FutureFailed, err.Error()
		} else {
			f.Status, f.Error, f.CertPEM = zone.FutureCreated, "", string(pki.EncodeCertPEM(cert))
		}
		if err := s.db.SetFuture(systemActor, r.ID, f); err != nil {
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
func (s *Server) crossSignFuture(r *zone.Remint) error {
	if r.CrossCert != "" || !r.Kind.ChangesCA() {
		return nil
	}
	ca := s.ca.Load()
	if ca == nil || !ca.Cert.Equal(s.zoneCA()) {
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
	if err := s.db.SetRemintCross(systemActor, r.ID, string(pki.EncodeCertPEM(cross))); err != nil {
		return err
	}
	s.log.Info("the current CA certified the future one", "change", r.Name, "future", future.Subject.String())
	return nil
}

func (s *Server) signFuture(ca *pki.CA, f zone.FutureCert, sv zone.Server) (*x509.Certificate, error) {
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
	return ca.IssueServer(pki.ServerRequest{CommonName: f.Name, DNSNames: f.DNSNames, IPs: ips, PublicKey: csr.PublicKey}, s.now())
}

// manualNames are the names an administrator may give the certificate
// placed in remint-repo, as the reference tool accepts them.
var manualNames = []string{"server.pem", "server.cer", "server.crt", "server.der", "server.cert", "server.p7b"}

func (s *Server) pickUpManual(r *zone.Remint, f zone.FutureCert) error {
	keyData, err := os.ReadFile(s.futureKeyPath())
	if err != nil {
		return nil // nothing placed yet
	}
	var certData []byte
	for _, n := range manualNames {
		if certData, err = os.ReadFile(filepath.Join(s.opts.Paths.RemintRepo(), n)); err == nil {
			break
		}
	}
	if certData == nil {
		return nil
	}
	chain, err := s.checkFuture(r, f, certData, func() (crypto.PublicKey, error) {
		key, err := pki.ParsePrivateKey(keyData)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.futureKeyPath(), err)
		}
		return key.Public(), nil
	})
	if err == nil {
		// No -f here: the administrator places a certificate that covers
		// every name in use (the error says which are missing).
		var sv zone.Server
		if sv, err = s.db.Server(f.Server); err == nil {
			_, err = checkNamesInUse(chain[0], sv, false, false)
		}
	}
	if err != nil {
		if f.Error != err.Error() {
			f.Error = err.Error()
			return s.db.SetFuture(systemActor, r.ID, f)
		}
		return nil
	}
	f.Status, f.Error, f.CertPEM = zone.FutureUploaded, "", string(pki.EncodeChainPEM(chain...))
	return s.db.SetFuture(systemActor, r.ID, f)
}

// checkFuture verifies an administrator's certificate for f: its key,
// its chain to the CA the change activates, and its name.
func (s *Server) checkFuture(r *zone.Remint, f zone.FutureCert, data []byte, pub func() (crypto.PublicKey, error)) ([]*x509.Certificate, error) {
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, errkind.Wrap(errkind.Invalid, err)
	}
	root := s.zoneCA()
	// Under the current CA, the intermediates this server already chains
	// through are known; a change of CA brings its own.
	inter := s.intermediates()
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
func (s *Server) intermediates() []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range s.trust.Load().cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil && c.IsCA && !c.Equal(s.zoneCA()) {
			out = append(out, c)
		}
	}
	return out
}

// installOwn puts this server's future certificate (and the new CA) in
// place after activation and switches TLS to them.
func (s *Server) installOwn(r *zone.Remint) error {
	if f, ok := r.Future(s.self.ID); ok {
		if err := atomicfile.WriteFile(s.futureChainPath(), []byte(f.CertPEM), 0o644); err != nil {
			return err
		}
	}
	if err := s.finishActivation(); err != nil {
		return err
	}
	if err := s.loadTrust(); err != nil {
		return err
	}
	return nil
}

// finishActivation brings conf/ in line with the store after a change has
// activated (also at start-up, for a change that activated while this
// server was down): the zone CA file, the CA key when this server holds
// the new CA, and this server's certificate and key from remint-repo.
func (s *Server) finishActivation() error {
	p := s.opts.Paths
	z, err := s.db.Zone()
	if err != nil {
		return err
	}
	self, err := s.db.Server(s.self.ID)
	if err != nil {
		return err
	}
	caPEM, _ := os.ReadFile(p.CACert())
	if !bytes.Equal(caPEM, []byte(z.CACertPEM)) {
		ca, err := pki.ParseCertPEM([]byte(z.CACertPEM))
		if err != nil {
			return err
		}
		if keyData, err := os.ReadFile(s.futureCAKeyPath()); err == nil {
			if key, err := pki.ParseKeyPEM(keyData); err == nil && pki.SameKey(ca.PublicKey, key) {
				// The old CA key is kept beside the new one, 0600, for
				// an administrator who needs to sign with it once more.
				if fileExists(p.CAKey()) {
					if err := os.Rename(p.CAKey(), filepath.Join(p.Security(), "zone-ca.previous.key")); err != nil {
						return err
					}
				}
				if err := os.Rename(s.futureCAKeyPath(), p.CAKey()); err != nil {
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
				s.log.Info("the replaced CA's key was moved aside", "file", filepath.Join(p.Security(), "zone-ca.previous.key"))
			}
		}
		if err := atomicfile.WriteFile(p.CACert(), []byte(z.CACertPEM), 0o644); err != nil {
			return err
		}
		if key, err := os.ReadFile(p.CAKey()); err == nil && self.HasRole(zone.RoleCertAuth) {
			if k, err := pki.ParseKeyPEM(key); err == nil && pki.SameKey(ca.PublicKey, k) {
				s.ca.Store(&pki.CA{Cert: ca, Key: k})
			}
		} else if !self.HasRole(zone.RoleCertAuth) {
			s.ca.Store(nil)
		}
		s.log.Info("zone CA replaced", "subject", ca.Subject.String(), "sha256", pki.Fingerprint(ca, "sha256"))
	}
	want, err := pki.ParseCertPEM([]byte(self.CertPEM))
	if err != nil {
		return fmt.Errorf("this server's certificate in the store: %w", err)
	}
	have, err := pki.ReadCertFile(p.ServerCert())
	if err == nil && have.Equal(want) {
		return nil
	}
	chainPEM, err := os.ReadFile(s.futureChainPath())
	if errors.Is(err, fs.ErrNotExist) && fileExists(s.futureKeyPath()) {
		// Another server of the zone activated the change before this one
		// fetched its certificate: the store's copy is the one (issued by
		// the zone CA itself, so there is no intermediate to add).
		chainPEM, err = pki.EncodeCertPEM(want), nil
	}
	if err != nil {
		return fmt.Errorf("the store holds a new certificate for this server (SHA-256 %s) but %s is missing: %w",
			pki.Fingerprint(want, "sha256"), s.futureChainPath(), err)
	}
	chain, err := pki.ParseCertsPEM(chainPEM)
	if err != nil || !chain[0].Equal(want) {
		return fmt.Errorf("%s does not hold the certificate the store names for this server", s.futureChainPath())
	}
	keyData, err := os.ReadFile(s.futureKeyPath())
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
		return fmt.Errorf("no key for this server's new certificate (SHA-256 %s) in %s", pki.Fingerprint(want, "sha256"), s.futureKeyPath())
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
	s.cleanRemintRepo()
	s.log.Info("server certificate installed", "sha256", pki.Fingerprint(want, "sha256"), "not_after", want.NotAfter.UTC())
	return nil
}

// cleanRemintRepo removes what a finished or cancelled change left in remint-repo.
func (s *Server) cleanRemintRepo() {
	for _, n := range append([]string{"key.der"}, manualNames...) {
		os.Remove(filepath.Join(s.opts.Paths.RemintRepo(), n))
	}
}

// ---- HTTP handlers ----

func (s *Server) remintCA(w http.ResponseWriter, r *http.Request, actor string) error {
	return s.startChange(w, r, actor, zone.RemintCA)
}

func (s *Server) changeCA(w http.ResponseWriter, r *http.Request, actor string) error {
	return s.startChange(w, r, actor, "")
}

func (s *Server) remintServerCerts(w http.ResponseWriter, r *http.Request, actor string) error {
	return s.startChange(w, r, actor, zone.RemintServers)
}

func (s *Server) startChange(w http.ResponseWriter, r *http.Request, actor string, kind zone.RemintKind) error {
	var req api.RemintRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if kind == "" {
		kind = zone.ChangeCAInternal
		if req.External {
			kind = zone.ChangeCAExternal
		}
	}
	s.remintMu.Lock()
	defer s.remintMu.Unlock()
	rm, cleanup, err := s.planChange(actor, kind, req)
	if err != nil {
		return err
	}
	if err := s.db.StartRemint(actor, *rm); err != nil {
		cleanup()
		return err
	}
	s.log.Info("certificate change started", "actor", actor, "kind", string(kind), "name", rm.Name, "activation", rm.Activation)
	var warnings []string
	if kind.ChangesCA() && rm.CrossCert == "" {
		if holder, err := certificates.CertAuthServer(s.db); err == nil && holder == "" {
			warnings = append(warnings, "no server holds the CertAuth role with the current CA's key, so nothing certifies the new CA: "+
				"a device that misses the change must be given its fingerprint (zac retrust --fingerprint, from certificate-authority-info)")
		}
	}
	// The first steps run now, so the answer shows certificates or CSRs.
	if err := s.reconcileLocked(); err != nil {
		s.log.Error("certificate change", "err", err)
	}
	if cur, err := s.db.Remint(); err == nil && cur == nil {
		// Already done: activation now (or an expired CA) took effect.
		writeJSON(w, http.StatusCreated, api.CertificateChange{Kind: "activated", ID: rm.ID, Name: rm.Name, Servers: []api.FutureServer{},
			Activated: string(rm.Kind), Retrust: rm.Kind != zone.RemintServers, CAExpired: rm.Immediate})
		return nil
	}
	return s.writeChangeWarnings(w, http.StatusCreated, warnings)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// planChange checks a request and prepares the change record; cleanup
// undoes what it wrote to disk if the change is not recorded.
func (s *Server) planChange(actor string, kind zone.RemintKind, req api.RemintRequest) (*zone.Remint, func(), error) {
	noop := func() {}
	if cur, err := s.db.Remint(); err != nil {
		return nil, noop, err
	} else if cur != nil {
		return nil, noop, errkind.New(errkind.Exists, "a certificate change (%s %q, started %s by %s) is already under way: cancel it (certificate-change-cancel) or wait for its activation",
			cur.Kind, cur.Name, cur.Started.UTC().Format(time.RFC3339), cur.Actor)
	}
	z, err := s.db.Zone()
	if err != nil {
		return nil, noop, err
	}
	cur := s.zoneCA()
	now := s.now()
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
	servers, err := s.db.Servers()
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
	oldCA := s.ca.Load()
	switch kind {
	case zone.RemintServers:
		rm.External = !z.CAInternal
		rm.Manual = rm.External && req.Manual
		if req.Manual && !rm.External {
			return nil, noop, errkind.New(errkind.Usage, "manual signing is for an external CA; the internal CA signs the new certificates itself")
		}
		markManual(rm)
		if !rm.External && oldCA == nil {
			return nil, noop, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role: run this against the server that does", s.self.Name)
		}
		return rm, noop, nil

	case zone.RemintCA, zone.ChangeCAInternal:
		if kind == zone.RemintCA && !z.CAInternal {
			return nil, noop, errkind.New(errkind.Usage, "the zone CA is external: change it with certificate-authority-change, an external CA is reminted by its owner")
		}
		if kind == zone.RemintCA && oldCA == nil {
			return nil, noop, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role and the CA key: run this against the server that does", s.self.Name)
		}
		if req.CAServer != "" {
			sv, ok := findServer(servers, req.CAServer)
			if !ok {
				return nil, noop, errkind.New(errkind.NotFound, "server %q not found", req.CAServer)
			}
			if sv.ID != s.self.ID {
				return nil, noop, errkind.New(errkind.Usage, "the new CA's key is made on the server that will hold it: send this request to %s", sv.Name)
			}
		}
		rm.CAServer = s.self.ID
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
		if !fileExists(s.futureKeyPath()) {
			if err := s.writeFutureKey(keys[1]); err != nil {
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
		if err := atomicfile.WriteFile(s.futureCAKeyPath(), keyPEM, 0o600); err != nil {
			return nil, noop, err
		}
		rm.FutureCA = string(pki.EncodeCertPEM(next.Cert))
		if oldCA != nil {
			cross, err := oldCA.CrossSign(next.Cert)
			if err != nil {
				os.Remove(s.futureCAKeyPath())
				return nil, noop, err
			}
			rm.CrossCert = string(pki.EncodeCertPEM(cross))
		}
		return rm, func() { os.Remove(s.futureCAKeyPath()) }, nil

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

func (s *Server) changeInfo(r *zone.Remint) api.CertificateChange {
	out := api.CertificateChange{ID: r.ID, Kind: string(r.Kind), Name: r.Name, Actor: r.Actor, Started: r.Started, Activation: r.Activation,
		Immediate: r.Immediate, Cancelable: r.Cancelable(s.now()), Stalled: r.Stalled(s.now())}
	if c, err := pki.ParseCertPEM([]byte(r.FutureCA)); err == nil {
		out.FutureCA = certificates.Summary(c, true)
	}
	names := map[string]string{}
	if list, err := s.db.Servers(); err == nil {
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
			fs.Cert = certificates.Summary(c, false)
		}
		out.Servers = append(out.Servers, fs)
	}
	if e := s.remintErr.Load(); e != nil {
		out.LastError = *e
	}
	return out
}

func (s *Server) writeChange(w http.ResponseWriter, status int) error {
	return s.writeChangeWarnings(w, status, nil)
}

// writeChangeWarnings answers with the change under way and the
// request's warnings.
func (s *Server) writeChangeWarnings(w http.ResponseWriter, status int, warnings []string) error {
	r, err := s.db.Remint()
	if err != nil {
		return err
	}
	if r == nil {
		// Activated at once (an expired CA): nothing left under way.
		writeJSON(w, status, api.CertificateChange{Kind: "activated", Servers: []api.FutureServer{}})
		return nil
	}
	out := s.changeInfo(r)
	out.Warnings = warnings
	writeJSON(w, status, out)
	return nil
}

func (s *Server) getChange(w http.ResponseWriter, r *http.Request, _ string) error {
	rm, err := s.db.Remint()
	if err != nil {
		return err
	}
	if rm == nil {
		return errkind.New(errkind.NotFound, "no certificate change is under way")
	}
	writeJSON(w, http.StatusOK, s.changeInfo(rm))
	return nil
}

func (s *Server) cancelChange(w http.ResponseWriter, r *http.Request, actor string) error {
	s.remintMu.Lock()
	defer s.remintMu.Unlock()
	rm, err := s.db.Remint()
	if err != nil {
		return err
	}
	if rm == nil {
		return errkind.New(errkind.NotFound, "no certificate change is under way")
	}
	if err := s.db.CancelRemint(actor, rm.ID); err != nil {
		return err
	}
	os.Remove(s.futureCAKeyPath())
	s.cleanRemintRepo()
	s.log.Info("certificate change cancelled", "actor", actor, "change", rm.Name)
	info := s.changeInfo(rm)
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) futureOf(ref string) (*zone.Remint, zone.FutureCert, error) {
	rm, err := s.db.Remint()
	if err != nil {
		return nil, zone.FutureCert{}, err
	}
	if rm == nil {
		return nil, zone.FutureCert{}, errkind.New(errkind.NotFound, "no certificate change is under way")
	}
	servers, err := s.db.Servers()
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

func (s *Server) getCSR(w http.ResponseWriter, r *http.Request, _ string) error {
	_, f, err := s.futureOf(r.PathValue("server"))
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
func (s *Server) regenerateCSR(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CSRRegenerate
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	s.remintMu.Lock()
	defer s.remintMu.Unlock()
	rm, f, err := s.futureOf(r.PathValue("server"))
	if err != nil {
		return err
	}
	if !rm.External || rm.Manual {
		return errkind.New(errkind.Usage, "change %q has no CSRs to regenerate: only a change under an external CA without manual signing has them", rm.Name)
	}
	f.CSRPEM, f.CertPEM, f.Error, f.NewKey = "", "", "", true
	f.Status = futurePending
	f.DNSNames = mergeNames(f.DNSNames, req.DNSNames)
	if err := s.db.SetFuture(actor, rm.ID, f); err != nil {
		return err
	}
	s.log.Info("CSR regenerated", "actor", actor, "server", f.Name, "dns_names", f.DNSNames)
	if f.Server == s.self.ID {
		if err := s.reconcileLocked(); err != nil {
			s.log.Error("certificate change", "err", err)
		}
	}
	return s.writeChange(w, http.StatusOK)
}

func (s *Server) getCSRZip(w http.ResponseWriter, r *http.Request, _ string) error {
	rm, err := s.db.Remint()
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
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: safeFileName(f.Name) + ".csr", Method: zip.Deflate, Modified: s.now()})
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

func (s *Server) importFuture(w http.ResponseWriter, r *http.Request, actor string) error {
	var up api.CertificateUpload
	if err := readJSON(w, r, &up); err != nil {
		return err
	}
	s.remintMu.Lock()
	defer s.remintMu.Unlock()
	rm, f, err := s.futureOf(r.PathValue("server"))
	if err != nil {
		return err
	}
	if f.CSRPEM == "" {
		return errkind.New(errkind.Usage, "server %s has no CSR in change %q (%s): its certificate is not imported this way", f.Name, rm.Name, f.Status)
	}
	chain, err := s.checkFuture(rm, f, up.Data, func() (crypto.PublicKey, error) {
		csr, err := pki.ParseCSRPEM([]byte(f.CSRPEM))
		if err != nil {
			return nil, err
		}
		return csr.PublicKey, nil
	})
	if err != nil {
		return err
	}
	sv, err := s.db.Server(f.Server)
	if err != nil {
		return err
	}
	warning, err := checkNamesInUse(chain[0], sv, up.Force, true)
	if err != nil {
		return err
	}
	f.Status, f.Error, f.CertPEM = zone.FutureUploaded, "", string(pki.EncodeChainPEM(chain...))
	if err := s.db.SetFuture(actor, rm.ID, f); err != nil {
		return err
	}
	s.log.Info("future certificate imported", "actor", actor, "server", f.Name, "sha256", pki.Fingerprint(chain[0], "sha256"))
	if warning != "" {
		s.log.Warn("future certificate drops names in use", "actor", actor, "server", f.Name, "warning", warning)
		return s.writeChangeWarnings(w, http.StatusOK, []string{warning})
	}
	return s.writeChange(w, http.StatusOK)
}

// addServerCertificate (sacert) replaces a server's certificate now. It
// must certify the server's key (current, or remint-repo/key.der on this
// server) and chain to the zone CA; its names must include the server's
// unless forced (a changed DNS name), and a change must not be under way.
func (s *Server) addServerCertificate(w http.ResponseWriter, r *http.Request, actor string) error {
	var up api.CertificateUpload
	if err := readJSON(w, r, &up); err != nil {
		return err
	}
	s.remintMu.Lock()
	defer s.remintMu.Unlock()
	servers, err := s.db.Servers()
	if err != nil {
		return err
	}
	sv, ok := findServer(servers, r.PathValue("server"))
	if !ok {
		return errkind.New(errkind.NotFound, "server %q not found", r.PathValue("server"))
	}
	if rm, err := s.db.Remint(); err != nil {
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
		_, chain, err := pki.CheckServerCert(certs, pki.ServerCertCheck{Root: s.zoneCA(), Intermediates: s.intermediates(), PublicKey: pub, Name: name, At: s.now()})
		return chain, err
	}
	chain, err := check(cur.PublicKey)
	newKey := false
	if err != nil && sv.ID == s.self.ID {
		if data, rerr := os.ReadFile(s.futureKeyPath()); rerr == nil {
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
	if sv.ID == s.self.ID {
		if err := atomicfile.WriteFile(s.futureChainPath(), pki.EncodeChainPEM(chain...), 0o644); err != nil {
			return err
		}
		if !newKey {
			os.Remove(s.futureKeyPath())
		}
	}
	if err := s.db.SetServerCert(actor, sv.ID, string(pki.EncodeChainPEM(chain...))); err != nil {
		return err
	}
	if sv.ID == s.self.ID {
		if err := s.finishActivation(); err != nil {
			return err
		}
		if err := s.loadTrust(); err != nil {
			return err
		}
	}
	s.log.Info("server certificate replaced", "actor", actor, "server", sv.Name, "sha256", pki.Fingerprint(chain[0], "sha256"))
	out := certificates.Summary(chain[0], false)
	if warning != "" {
		s.log.Warn("server certificate drops names in use", "actor", actor, "server", sv.Name, "warning", warning)
		out.Warnings = []string{warning}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ---- agents ----

// trustedCAs are the PEMs agents should trust now: the zone CA, while
// a change of CA is under way the future one, and under an external CA
// the device CA (last: agents take the first as the zone CA), which
// signs satellites' certificates and CPKs there.
func (s *Server) trustedCAs() []string {
	st := s.trust.Load()
	out := []string{string(pki.EncodeCertPEM(st.ca))}
	if rm, err := s.db.Remint(); err == nil && rm != nil && rm.FutureCA != "" {
		out = append(out, rm.FutureCA)
	}
	if st.external && st.deviceCA != nil {
		out = append(out, string(pki.EncodeCertPEM(st.deviceCA)))
	}
	return out
}

// needsRenewal says whether a device certificate should be replaced: it
// comes from another CA than the one issuing device certificates now (a
// replaced CA, the internal CA before a change to an external one), or it
// expires within 30 days. Only a server that can issue the new one asks.
func (s *Server) needsRenewal(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false
	}
	issuer := s.deviceIssuer()
	if issuer == nil || (!s.trust.Load().external && s.ca.Load() == nil) {
		return false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	return leaf.CheckSignatureFrom(issuer) != nil || leaf.NotAfter.Sub(s.now()) < 30*24*time.Hour
}
