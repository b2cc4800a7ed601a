package provision

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/store"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

// JoinZoneOptions are the answers JoinZone needs.
type JoinZoneOptions struct {
	Paths         config.Paths
	ServerURL     string // a running server of the zone, https://host:port
	Fingerprint   string // SHA-256 of the zone CA, as zman certificate-authority-info prints it
	AdminName     string
	AdminPassword string
	DNSNames      []string // the first is the new server's FQDN
	IPs           []string
	Port          int
	Advertise     string // host:port peers reach the new server at; empty for the default
	KeyType       pki.KeyType
	Properties    []string
}

// JoinResult describes the server added.
type JoinResult struct {
	ServerID string
	Zone     string
	CA       string // the CA's SHA-256 fingerprint
	Join     string
}

// NormalizeFingerprint lets people paste a fingerprint with or without
// colons, in either case.
func NormalizeFingerprint(s string) string {
	return strings.ToUpper(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(s)))
}

// ZoneCA fetches the zone CA a server presents, unverified (there is no
// trust yet), for its fingerprint to be compared by the caller.
func ZoneCA(ctx context.Context, serverURL string) (api.Trust, error) {
	u, err := client.ParseServerURL(serverURL)
	if err != nil {
		return api.Trust{}, err
	}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, // checked by fingerprint
		Proxy:           nil,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+api.Prefix+"/trust", nil)
	if err != nil {
		return api.Trust{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return api.Trust{}, errkind.Wrap(errkind.Unavailable, fmt.Errorf("zone server %s: %w", u.Host, err))
	}
	defer resp.Body.Close()
	var t api.Trust
	if resp.StatusCode != http.StatusOK {
		return api.Trust{}, errkind.New(errkind.Unavailable, "zone server %s answered %s", u.Host, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&t); err != nil {
		return api.Trust{}, fmt.Errorf("zone server %s: malformed trust answer: %w", u.Host, err)
	}
	return t, nil
}

// JoinZone makes this machine a Primary Server of an existing zone: a key
// made here, a server certificate from the zone CA, the zone's record of
// the server, a copy of the store and the configuration files. The server
// becomes a replication member when it first starts (cluster.join).
func JoinZone(ctx context.Context, o JoinZoneOptions) (res *JoinResult, err error) {
	if len(o.DNSNames) == 0 {
		return nil, errkind.New(errkind.Usage, "the server needs at least one DNS name (--dns)")
	}
	for _, ip := range o.IPs {
		if net.ParseIP(ip) == nil {
			return nil, errkind.New(errkind.Usage, "%q is not an IP address", ip)
		}
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, errkind.New(errkind.Usage, "port %d is not between 1 and 65535", o.Port)
	}
	if o.Fingerprint == "" {
		return nil, errkind.New(errkind.Usage, "--fingerprint is required: the zone CA's SHA-256 as 'zman certificate-authority-info' prints it")
	}
	for _, a := range o.Properties {
		if _, _, err := config.ParseAssignment(a); err != nil {
			return nil, err
		}
	}
	p := o.Paths
	if _, err := os.Stat(p.Store()); err == nil {
		return nil, errkind.New(errkind.Exists, "a zone already exists in %s", p.Home)
	}

	trust, err := ZoneCA(ctx, o.ServerURL)
	if err != nil {
		return nil, err
	}
	ca, err := pki.ParseCertPEM([]byte(trust.CAPEM))
	if err != nil {
		return nil, fmt.Errorf("zone CA from %s: %w", o.ServerURL, err)
	}
	if got := pki.Fingerprint(ca, "sha256"); NormalizeFingerprint(got) != NormalizeFingerprint(o.Fingerprint) {
		return nil, errkind.New(errkind.Auth, "the server's zone CA has SHA-256 %s, not the fingerprint given: refusing to join", got)
	}
	c, err := client.New(client.Options{BaseURL: o.ServerURL, CA: ca, Timeout: 60 * time.Second,
		Auth: client.Basic(o.AdminName, o.AdminPassword)})
	if err != nil {
		return nil, err
	}
	defer c.Close()

	key, err := pki.GenerateKey(o.KeyType)
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, o.DNSNames[0])
	if err != nil {
		return nil, err
	}
	advertise := o.Advertise
	if advertise == "" {
		advertise = net.JoinHostPort(o.DNSNames[0], strconv.Itoa(o.Port))
	}
	var joined api.ClusterJoined
	err = c.Post(ctx, api.Prefix+"/cluster/join", api.ClusterJoin{DNSNames: o.DNSNames, IPs: o.IPs, Port: o.Port,
		Advertise: advertise, CSR: string(csr), Version: version.String()}, &joined)
	if err != nil {
		return nil, err
	}
	undo := fmt.Sprintf("the zone now lists server %s: remove it with 'zman server-delete %s' before trying again", o.DNSNames[0], o.DNSNames[0])

	if err := p.Layout(); err != nil {
		return nil, err
	}
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				os.Remove(f)
			}
			err = fmt.Errorf("%w (%s)", err, undo)
		}
	}()
	written = append(written, p.Store())
	if err := copyStore(ctx, c, p.Store()); err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{p.CACert(), []byte(joined.CAPEM), 0o644},
		{p.ServerKey(), keyPEM, 0o600},
		{p.ServerCert(), []byte(joined.CertPEM), 0o644},
	} {
		if err := atomicfile.WriteFile(f.path, f.data, f.perm); err != nil {
			return nil, err
		}
		written = append(written, f.path)
	}
	props := map[string]string{"server.id": joined.ServerID, "server.port": strconv.Itoa(o.Port),
		"cluster.join": joined.Join}
	if o.Advertise != "" {
		props["cluster.advertise"] = o.Advertise
	}
	for _, a := range o.Properties {
		k, v, _ := config.ParseAssignment(a)
		props[k] = v
	}
	written = append(written, p.ConfigFile())
	if err := config.WriteProperties(p, props); err != nil {
		return nil, err
	}
	return &JoinResult{ServerID: joined.ServerID, Zone: joined.ZoneName, CA: pki.Fingerprint(ca, "sha256"), Join: joined.Join}, nil
}

// copyStore downloads a consistent copy of the zone store and checks that
// it opens and holds the zone before it takes the store's place.
func copyStore(ctx context.Context, c *client.Client, path string) error {
	resp, err := c.Stream(ctx, http.MethodGet, api.Prefix+"/cluster/store", nil, "")
	if err != nil {
		return fmt.Errorf("copy the zone store: %w", err)
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".join-*.db")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("copy the zone store: %w", err))
	}
	st, err := store.Open(tmp.Name(), store.Options{})
	if err != nil {
		return fmt.Errorf("copy of the zone store: %w", err)
	}
	_, zerr := zone.New(st, nil).Zone()
	st.Close()
	if zerr != nil {
		return fmt.Errorf("copy of the zone store: %w", zerr)
	}
	return os.Rename(tmp.Name(), path)
}
