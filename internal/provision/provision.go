// Package provision creates a zone on this machine: the home's layout, the
// internal zone CA, this Primary Server's identity and TLS certificate, the
// first administrator, the store and the server's configuration file.
package provision

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/password"
	"zonekit/internal/pki"
	"zonekit/internal/store"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

// NewZoneOptions are the answers NewZone needs.
type NewZoneOptions struct {
	Paths         config.Paths
	ZoneName      string
	AdminName     string
	AdminPassword string
	DNSNames      []string // the first is the server's FQDN
	IPs           []string
	Port          int
	KeyType       pki.KeyType
	CAYears       int
	Properties    []string // extra name=value configuration properties
	Now           func() time.Time
}

// Result describes the zone created.
type Result struct {
	ZoneID   string
	ServerID string
	CA       *pki.CA
	Server   zone.Server
}

// Validate checks the options without touching the disk.
func (o *NewZoneOptions) Validate() error {
	if err := checkZoneName(o.ZoneName); err != nil {
		return err
	}
	if o.AdminName == "" {
		return errkind.New(errkind.Usage, "the administrator needs a name")
	}
	if err := password.Check(o.AdminPassword); err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	if len(o.DNSNames) == 0 {
		return errkind.New(errkind.Usage, "the server needs at least one DNS name")
	}
	for _, n := range o.DNSNames {
		if strings.ContainsAny(n, " /:") || n == "" {
			return errkind.New(errkind.Usage, "DNS name %q is not a host name", n)
		}
	}
	for _, ip := range o.IPs {
		if net.ParseIP(ip) == nil {
			return errkind.New(errkind.Usage, "%q is not an IP address", ip)
		}
	}
	if o.Port < 1 || o.Port > 65535 {
		return errkind.New(errkind.Usage, "port %d is not between 1 and 65535", o.Port)
	}
	if o.CAYears < 1 || o.CAYears > 10 {
		return errkind.New(errkind.Usage, "CA validity must be 1 to 10 years, not %d", o.CAYears)
	}
	if _, err := pki.ParseKeyType(string(o.KeyType)); err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	for _, p := range o.Properties {
		if _, _, err := config.ParseAssignment(p); err != nil {
			return err
		}
	}
	return nil
}

func checkZoneName(n string) error {
	if n == "" || len(n) > 64 || strings.ContainsAny(n, "/\\\n\r\t") {
		return errkind.New(errkind.Usage, "zone name %q: use 1-64 characters, no slashes or control characters", n)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewZone creates the zone. On failure it removes what it wrote, so the
// command can simply be run again.
func NewZone(o NewZoneOptions) (res *Result, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	p := o.Paths
	if _, err := os.Stat(p.Store()); err == nil {
		return nil, errkind.New(errkind.Exists, "a zone already exists in %s", p.Home)
	}
	if err := p.Layout(); err != nil {
		return nil, err
	}
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				os.Remove(f)
			}
		}
	}()
	write := func(path string, data []byte, perm os.FileMode) error {
		if err := atomicfile.WriteFile(path, data, perm); err != nil {
			return err
		}
		written = append(written, path)
		return nil
	}

	ca, err := pki.NewCA(o.ZoneName, o.KeyType, o.CAYears, now())
	if err != nil {
		return nil, err
	}
	serverKey, err := pki.GenerateKey(o.KeyType)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, s := range o.IPs {
		ips = append(ips, net.ParseIP(s))
	}
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: o.DNSNames[0], DNSNames: o.DNSNames, IPs: ips, PublicKey: serverKey.Public()}, now())
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := pki.EncodeKeyPEM(ca.Key)
	if err != nil {
		return nil, err
	}
	serverKeyPEM, err := pki.EncodeKeyPEM(serverKey)
	if err != nil {
		return nil, err
	}
	hash, err := password.Hash(o.AdminPassword, password.DefaultParams())
	if err != nil {
		return nil, err
	}
	caPEM := pki.EncodeCertPEM(ca.Cert)
	chain := append(pki.EncodeCertPEM(cert), caPEM...)
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{p.CAKey(), caKeyPEM, 0o600},
		{p.CACert(), caPEM, 0o644},
		{p.ServerKey(), serverKeyPEM, 0o600},
		{p.ServerCert(), chain, 0o644},
	} {
		if err := write(f.path, f.data, f.perm); err != nil {
			return nil, err
		}
	}

	t := now().UTC()
	z := zone.Zone{ID: randomID(), Name: o.ZoneName, Created: t, CAInternal: true, CACertPEM: string(caPEM)}
	srv := zone.Server{ID: randomID(), Name: o.DNSNames[0], DNSNames: o.DNSNames, IPs: o.IPs, Port: o.Port,
		Roles:   []zone.Role{zone.RoleCertAuth, zone.RoleDatabase, zone.RoleMasterPrimary},
		Version: version.String(), CertPEM: string(pki.EncodeCertPEM(cert)), CertNotAfter: cert.NotAfter.UTC(), Created: t}
	admin := zone.Admin{Name: o.AdminName, PasswordHash: hash, Created: t, CreatedBy: "zconfigure"}

	written = append(written, p.Store())
	st, err := store.Open(p.Store(), store.Options{Create: true})
	if err != nil {
		return nil, err
	}
	if err := zone.New(st, now).Create(z, srv, admin); err != nil {
		st.Close()
		return nil, fmt.Errorf("record zone: %w", err)
	}
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("close store: %w", err)
	}

	props := map[string]string{"server.id": srv.ID, "server.port": strconv.Itoa(o.Port)}
	for _, a := range o.Properties {
		k, v, _ := config.ParseAssignment(a)
		props[k] = v
	}
	written = append(written, p.ConfigFile())
	if err := config.WriteProperties(p, props); err != nil {
		return nil, err
	}
	return &Result{ZoneID: z.ID, ServerID: srv.ID, CA: ca, Server: srv}, nil
}

// DefaultDNSNames are this host's name and localhost, so zman works on the
// server itself without extra flags.
func DefaultDNSNames() []string {
	names := []string{}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	return append(names, "localhost")
}

// DefaultIPs are loopback plus this host's global unicast addresses.
func DefaultIPs() []string {
	ips := []string{"127.0.0.1", "::1"}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ips
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			ips = append(ips, n.IP.String())
		}
	}
	return ips
}
