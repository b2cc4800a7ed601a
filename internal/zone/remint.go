package zone

import (
	"encoding/json"
	"errors"
	"net"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/store"
)

// RemintKind names a certificate change.
type RemintKind string

const (
	RemintCA         RemintKind = "remint-ca"          // new key and certificate for the internal CA
	ChangeCAInternal RemintKind = "change-ca-internal" // a new internal CA with a new subject
	ChangeCAExternal RemintKind = "change-ca-external" // an external root becomes the zone CA
	RemintServers    RemintKind = "remint-servers"     // new certificates for some servers, same CA
)

// ChangesCA reports whether the kind replaces the zone CA.
func (k RemintKind) ChangesCA() bool { return k != RemintServers }

// Future-certificate statuses, as server-certificate-list shows them.
const (
	FutureCreated   = "New certificate created"
	FutureFailed    = "Creating certificate failed"
	FutureCSR       = "CSR generated"
	FutureCSRFailed = "CSR generation failed"
	FutureUploaded  = "New certificate uploaded"
	FutureManual    = "Waiting for certificate in remint-repo"
)

// CancelCutoff is how close to activation a change can no longer be cancelled.
const CancelCutoff = 10 * time.Minute

// Remint is a certificate change under way: at most one per zone. Until
// its activation the servers keep their certificates and agents learn the
// future CA; at activation every server switches.
type Remint struct {
	ID         string     `json:"id"`
	Kind       RemintKind `json:"kind"`
	Name       string     `json:"name"` // the update's name, for people
	Actor      string     `json:"actor"`
	Started    time.Time  `json:"started"`
	Activation time.Time  `json:"activation"`
	Immediate  bool       `json:"immediate,omitempty"` // the CA had expired: activate at once
	// CAServer is the server that will hold the future CA's key (internal kinds).
	CAServer    string `json:"ca_server,omitempty"`
	FutureCA    string `json:"future_ca_pem,omitempty"`
	FutureChain string `json:"future_chain_pem,omitempty"` // intermediates under an external root
	CrossCert   string `json:"cross_cert_pem,omitempty"`
	// External servers get CSRs (or certificates placed in remint-repo
	// when Manual) instead of certificates zonekit signs.
	External bool           `json:"external,omitempty"`
	Manual   bool           `json:"manual,omitempty"`
	Subject  pki.CSRSubject `json:"subject"` // common fields for every server's certificate
	KeyType  pki.KeyType    `json:"key_type"`
	Servers  []FutureCert   `json:"servers"`
}

// FutureCert is one server's part in a remint.
type FutureCert struct {
	Server   string   `json:"server"` // server ID
	Name     string   `json:"name"`   // its FQDN, the certificate's common name
	DNSNames []string `json:"dns_names,omitempty"`
	Status   string   `json:"status"`
	CertPEM  string   `json:"cert_pem,omitempty"` // leaf then intermediates
	CSRPEM   string   `json:"csr_pem,omitempty"`
	Error    string   `json:"error,omitempty"`
	// NewKey asks the server to replace its future key before it makes
	// the next CSR (a CSR regenerated with server-certificate-csr
	// --regenerate).
	NewKey bool `json:"new_key,omitempty"`
}

// Ready reports whether the server has a certificate to switch to.
func (f FutureCert) Ready() bool { return f.CertPEM != "" }

// Future returns the entry for server id, if the remint includes it.
func (r *Remint) Future(id string) (FutureCert, bool) {
	for _, f := range r.Servers {
		if f.Server == id {
			return f, true
		}
	}
	return FutureCert{}, false
}

// Command names of certificate changes.
const (
	CmdRemintStart     = "certificate.remint-start"
	CmdRemintServer    = "certificate.remint-server"
	CmdRemintCancel    = "certificate.remint-cancel"
	CmdRemintActivate  = "certificate.remint-activate"
	CmdRemintSetCross  = "certificate.remint-set-cross"
	CmdServerSetCert   = "server.set-certificate"
	CmdZoneReplaceCA   = "zone.replace-ca"
	CmdDeviceSetCert   = "device.set-certificate"
	remintKey          = "remint"
	errNoRemintMessage = "no certificate change is under way"
)

type remintRef struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

type remintCross struct {
	ID        string `json:"id"`
	CrossCert string `json:"cross_cert_pem"`
}

type remintServer struct {
	ID     string     `json:"id"`
	Future FutureCert `json:"future"`
}

type serverSetCert struct {
	ID      string `json:"id"`
	CertPEM string `json:"cert_pem"`
}

// DeviceCert records a device's renewed certificate.
type DeviceCert struct {
	ID       string    `json:"id"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

type zoneReplaceCA struct {
	CACertPEM string `json:"ca_cert_pem"`
	CrossCert string `json:"cross_cert_pem,omitempty"`
	Internal  bool   `json:"internal"`
}

var errNoRemint = errkind.New(errkind.NotFound, errNoRemintMessage)

func currentRemint(tx *bolt.Tx) (*Remint, error) {
	v := tx.Bucket(store.BucketZone).Get([]byte(remintKey))
	if v == nil {
		return nil, nil
	}
	var r Remint
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func activeRemint(tx *bolt.Tx, id string) (*Remint, error) {
	r, err := currentRemint(tx)
	if err != nil {
		return nil, err
	}
	if r == nil || r.ID != id {
		return nil, errNoRemint
	}
	return r, nil
}

// certificateCommands are the certificate changes' commands.
func certificateCommands(t *commandTable) {
	t.add(CmdRemintStart, applyRemintStart)
	t.add(CmdRemintSetCross, applyRemintSetCross)
	t.add(CmdRemintServer, applyRemintServer)
	t.add(CmdRemintCancel, applyRemintCancel)
	t.add(CmdRemintActivate, applyRemintActivate)
	t.add(CmdServerSetCert, applyServerSetCert)
	t.add(CmdDeviceSetCert, applyDeviceSetCert)
	t.add(CmdZoneReplaceCA, applyZoneReplaceCA)
}

func applyRemintStart(tx *bolt.Tx, c Command) (string, error) {
	var r Remint
	if err := decode(c, &r); err != nil {
		return "", err
	}
	cur, err := currentRemint(tx)
	if err != nil {
		return "", err
	}
	if cur != nil {
		return "", errkind.New(errkind.Exists, "a certificate change (%s %q, started %s by %s) is already under way: cancel it or wait for its activation",
			cur.Kind, cur.Name, cur.Started.UTC().Format(time.RFC3339), cur.Actor)
	}
	for _, f := range r.Servers {
		if !exists(tx, store.BucketServers, f.Server) {
			return "", errkind.New(errkind.NotFound, "server %s not found", f.Server)
		}
	}
	return r.Name, put(tx, store.BucketZone, remintKey, r)
}

func applyRemintSetCross(tx *bolt.Tx, c Command) (string, error) {
	var d remintCross
	if err := decode(c, &d); err != nil {
		return "", err
	}
	r, err := activeRemint(tx, d.ID)
	if err != nil {
		return "", err
	}
	if r.CrossCert != "" {
		return r.Name, nil // the first signature stands
	}
	r.CrossCert = d.CrossCert
	return r.Name, put(tx, store.BucketZone, remintKey, r)
}

func applyRemintServer(tx *bolt.Tx, c Command) (string, error) {
	var d remintServer
	if err := decode(c, &d); err != nil {
		return "", err
	}
	r, err := activeRemint(tx, d.ID)
	if err != nil {
		return "", err
	}
	found := false
	for i := range r.Servers {
		if r.Servers[i].Server == d.Future.Server {
			r.Servers[i], found = d.Future, true
		}
	}
	if !found {
		return "", errkind.New(errkind.NotFound, "server %s is not part of certificate change %q", d.Future.Name, r.Name)
	}
	return d.Future.Name, put(tx, store.BucketZone, remintKey, r)
}

func applyRemintCancel(tx *bolt.Tx, c Command) (string, error) {
	var d remintRef
	if err := decode(c, &d); err != nil {
		return "", err
	}
	r, err := activeRemint(tx, d.ID)
	if err != nil {
		return "", err
	}
	if !r.Cancelable(d.Time) {
		return "", errkind.New(errkind.Failure, "certificate change %q activates at %s: it can no longer be cancelled (only until %s before activation, or once it is due and still waits for certificates)",
			r.Name, r.Activation.UTC().Format(time.RFC3339), CancelCutoff)
	}
	return r.Name, tx.Bucket(store.BucketZone).Delete([]byte(remintKey))
}

func applyRemintActivate(tx *bolt.Tx, c Command) (string, error) {
	var d remintRef
	if err := decode(c, &d); err != nil {
		return "", err
	}
	r, err := activeRemint(tx, d.ID)
	if err != nil {
		return "", err
	}
	return r.Name, activate(tx, r)
}

func applyServerSetCert(tx *bolt.Tx, c Command) (string, error) {
	var d serverSetCert
	if err := decode(c, &d); err != nil {
		return "", err
	}
	name, err := setServerCert(tx, d.ID, d.CertPEM)
	return name, err
}

func applyDeviceSetCert(tx *bolt.Tx, c Command) (string, error) {
	var d DeviceCert
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var dev Device
	if err := get(tx, store.BucketDevices, d.ID, &dev, "device"); err != nil {
		return "", err
	}
	dev.CertSerial, dev.CertNotAfter = d.Serial, d.NotAfter
	return dev.ID, put(tx, store.BucketDevices, dev.ID, dev)
}

func applyZoneReplaceCA(tx *bolt.Tx, c Command) (string, error) {
	var d zoneReplaceCA
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var z Zone
	if err := get(tx, store.BucketZone, string(keyZone), &z, "zone"); err != nil {
		return "", err
	}
	replaceCA(&z, d.CACertPEM, d.CrossCert, d.Internal)
	return z.Name, put(tx, store.BucketZone, string(keyZone), z)
}

func replaceCA(z *Zone, caPEM, cross string, internal bool) {
	if z.CACertPEM != caPEM {
		z.PreviousCAs = append([]string{z.CACertPEM}, z.PreviousCAs...)
	}
	z.CACertPEM, z.CAInternal = caPEM, internal
	if internal {
		retireDeviceCA(z)
	}
	if cross != "" {
		z.CrossCerts = append(z.CrossCerts, cross)
	}
}

func setServerCert(tx *bolt.Tx, id, certPEM string) (string, error) {
	var s Server
	if err := get(tx, store.BucketServers, id, &s, "server"); err != nil {
		return "", err
	}
	leaf, err := pki.ParseCertPEM([]byte(certPEM))
	if err != nil {
		return "", errkind.Wrap(errkind.Invalid, err)
	}
	s.CertPEM, s.CertNotAfter = string(pki.EncodeCertPEM(leaf)), leaf.NotAfter.UTC()
	return s.Name, put(tx, store.BucketServers, s.ID, s)
}

func activate(tx *bolt.Tx, r *Remint) error {
	for _, f := range r.Servers {
		if !f.Ready() {
			return errkind.New(errkind.Failure, "server %s has no future certificate yet (%s)", f.Name, f.Status)
		}
	}
	for _, f := range r.Servers {
		if _, err := setServerCert(tx, f.Server, f.CertPEM); err != nil {
			return err
		}
	}
	if r.Kind.ChangesCA() {
		var z Zone
		if err := get(tx, store.BucketZone, string(keyZone), &z, "zone"); err != nil {
			return err
		}
		replaceCA(&z, r.FutureCA, r.CrossCert, !r.External)
		if err := put(tx, store.BucketZone, string(keyZone), z); err != nil {
			return err
		}
		// The CertAuth role follows the key: to the server holding the new
		// internal CA's key, or nowhere when the CA is external.
		err := tx.Bucket(store.BucketServers).ForEach(func(k, v []byte) error {
			var s Server
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			want := !r.External && s.ID == r.CAServer
			if s.HasRole(RoleCertAuth) == want {
				return nil
			}
			roles := []Role{}
			for _, role := range s.Roles {
				if role != RoleCertAuth {
					roles = append(roles, role)
				}
			}
			if want {
				roles = append([]Role{RoleCertAuth}, roles...)
			}
			s.Roles = roles
			return put(tx, store.BucketServers, s.ID, s)
		})
		if err != nil {
			return err
		}
	}
	return tx.Bucket(store.BucketZone).Delete([]byte(remintKey))
}

// Remint returns the certificate change under way, or nil.
func (d *DB) Remint() (*Remint, error) {
	var r *Remint
	err := d.st.View(func(tx *bolt.Tx) error {
		var err error
		r, err = currentRemint(tx)
		return err
	})
	return r, err
}

// StartRemint records a new certificate change; it fails if one is under way.
func (d *DB) StartRemint(actor string, r Remint) error {
	return d.Exec(actor, CmdRemintStart, r)
}

// SetFuture records one server's future certificate, CSR or failure.
// SetRemintCross records the current CA's certification of the change's
// future CA, made by the server that holds the current CA's key when the
// change was started elsewhere. A cross certificate already recorded stays.
func (d *DB) SetRemintCross(actor, remintID, crossPEM string) error {
	return d.Exec(actor, CmdRemintSetCross, remintCross{ID: remintID, CrossCert: crossPEM})
}

func (d *DB) SetFuture(actor, remintID string, f FutureCert) error {
	return d.Exec(actor, CmdRemintServer, remintServer{ID: remintID, Future: f})
}

// CancelRemint abandons the change, unless its activation is too close.
func (d *DB) CancelRemint(actor, remintID string) error {
	return d.Exec(actor, CmdRemintCancel, remintRef{ID: remintID, Time: d.Now()})
}

// ActivateRemint makes the future certificates (and CA) current.
func (d *DB) ActivateRemint(actor, remintID string) error {
	return d.Exec(actor, CmdRemintActivate, remintRef{ID: remintID, Time: d.Now()})
}

// SetServerCert replaces a server's certificate (sacert, offline repair).
func (d *DB) SetServerCert(actor, id, certPEM string) error {
	return d.Exec(actor, CmdServerSetCert, serverSetCert{ID: id, CertPEM: certPEM})
}

// ReplaceCA makes caPEM the zone CA at once (offline repair).
func (d *DB) ReplaceCA(actor, caPEM, crossPEM string, internal bool) error {
	return d.Exec(actor, CmdZoneReplaceCA, zoneReplaceCA{CACertPEM: caPEM, CrossCert: crossPEM, Internal: internal})
}

// IsNoRemint reports whether err says that no change is under way.
func IsNoRemint(err error) bool {
	return errors.Is(err, errNoRemint) || (err != nil && err.Error() == errNoRemintMessage)
}

// NamesInUse are the names and addresses by which agents, zman and peer
// servers reach s: its record's names and addresses, the host peers dial
// and every name its current certificate covers (an agent may have been
// given any of them). A new certificate for s must cover them all.
func (s Server) NamesInUse() []string {
	names := append([]string{s.Name}, s.DNSNames...)
	names = append(names, s.IPs...)
	if host, _, err := net.SplitHostPort(s.Address); err == nil && host != "" {
		names = append(names, host)
	}
	if cur, err := pki.ParseCertPEM([]byte(s.CertPEM)); err == nil {
		names = append(names, pki.NamesOf(cur)...)
	}
	return names
}

// Stalled reports whether r is due (its activation has passed, or it is
// Immediate) but cannot activate because a server still has no future
// certificate: typically one waiting for an external CA that never comes.
// Nothing has switched yet, so it may be cancelled.
func (r *Remint) Stalled(now time.Time) bool {
	if !r.Immediate && now.Before(r.Activation) {
		return false
	}
	for _, f := range r.Servers {
		if !f.Ready() {
			return true
		}
	}
	return false
}

// Cancelable reports whether r may be cancelled at now: until CancelCutoff
// before its activation, and again once it is stalled. In between, and
// once every server is ready past activation, the servers may be
// switching.
func (r *Remint) Cancelable(now time.Time) bool {
	return r.Activation.After(now.Add(CancelCutoff)) || r.Stalled(now)
}
