// Package satellites serves the zone's satellites: administrators list
// them and give or take their roles (/api/v1/satellites), a satellite
// device reads its configuration, has its certificate issued and lists
// what it prefetches (/api/v1/device/satellite...). Its functions over
// the satellite records (Closest, Of, Auth, Content) are how the rest of
// the server picks satellites for devices and servers.
package satellites

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// Records is what the satellite functions read of the zone (*zone.DB).
type Records interface {
	SatelliteDevices() ([]zone.Device, error)
}

// Zone is what the routes need of the zone's state (*zone.DB).
type Zone interface {
	Records
	Exec(actor, name string, data any) error
	Now() time.Time
	ResolveDevice(ref string) (zone.Device, error)
	Servers() ([]zone.Server, error)
	Packages() ([]zone.Package, error)
}

// Issuer is the zone CA as this server holds it.
type Issuer interface {
	// Held fails (errkind.Unavailable) when this server cannot issue:
	// it does not hold the CertAuth role and its key.
	Held() error
	// IssueServer certifies a server key with the zone CA.
	IssueServer(req pki.ServerRequest, now time.Time) (*x509.Certificate, error)
	// Chain is what follows an issued certificate: the zone CA.
	Chain() []*x509.Certificate
}

// Handlers serve the satellite routes.
type Handlers struct {
	Zone   Zone
	Issuer Issuer
	Now    func() time.Time
}

// Register mounts the routes.
func (h *Handlers) Register(r httpapi.Routes) {
	r.Device("GET "+api.Prefix+"/device/satellite", h.deviceSatellite)
	r.Device("POST "+api.Prefix+"/device/satellite/certificate", h.deviceSatelliteCert)
	r.Device("GET "+api.Prefix+"/device/satellite/packages", h.deviceSatellitePackages)
	r.Admin("GET "+api.Prefix+"/satellites", h.listSatellites)
	r.Admin("POST "+api.Prefix+"/satellites/{ref}/roles", h.addSatelliteRole)
	r.Admin("DELETE "+api.Prefix+"/satellites/{ref}/roles/{role}", h.removeSatelliteRole)
}

func satellites(z Records) ([]zone.Device, error) {
	devs, err := z.SatelliteDevices()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(devs, func(i, j int) bool { return devs[i].Name < devs[j].Name })
	return devs, nil
}

// deviceSatellite tells a satellite its own configuration.
func (h *Handlers) deviceSatellite(w http.ResponseWriter, r *http.Request, d zone.Device) error {
	if d.Satellite == nil {
		return errkind.New(errkind.NotFound, "device %s holds no satellite role (zman satellite-add-role)", d.Name)
	}
	out := satelliteOf(d)
	if slices.Contains(out.Roles, zone.SatelliteContent) {
		servers, err := h.Zone.Servers()
		if err != nil {
			return err
		}
		out.Parents = satelliteParents(out.Parent, servers)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// satelliteParents is the satellite's own parent, then every Primary
// Server's content port.
func satelliteParents(parent string, servers []zone.Server) []string {
	var out []string
	if parent != "" {
		out = append(out, parent)
	}
	for _, sv := range servers {
		if sv.ContentPort > 0 {
			if u := fmt.Sprintf("http://%s%s", net.JoinHostPort(sv.Name, strconv.Itoa(sv.ContentPort)), api.ContentPrefix); !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// Of lists the satellites whose parent is server sv (by any of
// its names or addresses): deleting sv leaves them to the other servers.
func Of(z Records, sv zone.Server) []string {
	devs, err := satellites(z)
	if err != nil {
		return nil
	}
	hosts := append(append([]string{sv.Name}, sv.DNSNames...), sv.IPs...)
	if h, _, err := net.SplitHostPort(sv.Address); err == nil {
		hosts = append(hosts, h)
	}
	var out []string
	for _, d := range devs {
		if d.Satellite == nil || d.Satellite.Parent == "" {
			continue
		}
		if u, err := url.Parse(d.Satellite.Parent); err == nil && slices.Contains(hosts, u.Hostname()) {
			out = append(out, d.Name)
		}
	}
	return out
}

func satelliteOf(d zone.Device) api.Satellite {
	out := api.Satellite{DeviceID: d.ID, DeviceName: d.Name, Address: d.Address, Roles: d.Satellite.Roles,
		ContentURL: d.Satellite.ContentURL, Parent: d.Satellite.Parent, AuthURL: d.Satellite.AuthURL, Added: d.Satellite.Added,
		CertNotAfter: d.Satellite.CertNotAfter}
	if d.Satellite.Prefetch > 0 {
		out.Prefetch = d.Satellite.Prefetch.String()
	}
	return out
}

func (h *Handlers) listSatellites(w http.ResponseWriter, r *http.Request, _ string) error {
	devs, err := satellites(h.Zone)
	if err != nil {
		return err
	}
	out := make([]api.Satellite, 0, len(devs))
	for _, d := range devs {
		out = append(out, satelliteOf(d))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// checkContentURL wants http(s)://HOST[:PORT]/content, what agents and
// satellites append ID/ID-n to.
func checkContentURL(flag, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimRight(u.Path, "/") != api.ContentPrefix || u.RawQuery != "" {
		return errkind.New(errkind.Usage, "%s %q: want http://HOST:PORT/content", flag, s)
	}
	return nil
}

func (h *Handlers) addSatelliteRole(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.SatelliteRoleAdd
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	dev, err := h.Zone.ResolveDevice(r.PathValue("ref"))
	if err != nil {
		return err
	}
	role, err := satelliteRoleName(req.Role)
	if err != nil {
		return err
	}
	change := zone.SatelliteRole{Role: role}
	switch role {
	case zone.SatelliteContent:
		if req.ContentURL == "" {
			return errkind.New(errkind.Usage, "the Content role needs the URL agents fetch from (content_url, http://HOST:PORT/content)")
		}
		if err := checkContentURL("content_url", req.ContentURL); err != nil {
			return err
		}
		if req.Parent != "" {
			if err := checkContentURL("parent", req.Parent); err != nil {
				return err
			}
		}
		if req.Prefetch != "" {
			d, err := time.ParseDuration(req.Prefetch)
			if err != nil || d < time.Minute {
				return errkind.New(errkind.Usage, "prefetch interval %q: want a duration of at least 1m, such as 30m or 6h", req.Prefetch)
			}
			change.Prefetch = d
		}
		change.ContentURL, change.Parent = req.ContentURL, req.Parent
	case zone.SatelliteAuthentication:
		if req.AuthURL == "" {
			return errkind.New(errkind.Usage, "the Authentication role needs the URL agents reach it at (auth_url, https://HOST:PORT)")
		}
		u, err := url.Parse(req.AuthURL)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return errkind.New(errkind.Usage, "auth_url %q: want https://HOST:PORT", req.AuthURL)
		}
		change.AuthURL = "https://" + u.Host
	}
	if err := h.Zone.Exec(actor, zone.CmdSatelliteAddRole, zone.SatelliteRoleChange(dev.ID, change, h.Zone.Now())); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) removeSatelliteRole(w http.ResponseWriter, r *http.Request, actor string) error {
	dev, err := h.Zone.ResolveDevice(r.PathValue("ref"))
	if err != nil {
		return err
	}
	role, err := satelliteRoleName(r.PathValue("role"))
	if err != nil {
		return err
	}
	if err := h.Zone.Exec(actor, zone.CmdSatelliteRemoveRole, zone.SatelliteRoleChange(dev.ID, zone.SatelliteRole{Role: role}, h.Zone.Now())); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Auth lists the HTTPS URLs of the authentication satellites
// closest to dev first, dev itself left out (a satellite relays to the
// zone servers, never to itself).
func Auth(z Records, dev zone.Device) []string {
	var out []string
	for _, d := range Closest(z, dev.Address, zone.SatelliteAuthentication) {
		if d.ID != dev.ID && d.Satellite.AuthURL != "" {
			out = append(out, d.Satellite.AuthURL)
		}
	}
	return out
}

// satelliteNames are the host names and addresses a satellite's
// certificate is for: those of its role URLs, the Authentication URL's
// first (its common name).
func satelliteNames(sat *zone.Satellite) (dns []string, ips []net.IP) {
	for _, raw := range []string{sat.AuthURL, sat.ContentURL} {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		h := u.Hostname()
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// deviceSatelliteCert has the zone CA certify the key of a satellite's
// CSR for the names of all its roles (zac asr -t all, zac rsc). The names
// come from the zone's record, whatever the CSR asks for.
func (h *Handlers) deviceSatelliteCert(w http.ResponseWriter, r *http.Request, d zone.Device) error {
	if d.Satellite == nil {
		return errkind.New(errkind.NotFound, "device %s holds no satellite role (zman satellite-add-role)", d.Name)
	}
	var req api.SatelliteCertRequest
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if err := h.Issuer.Held(); err != nil {
		return err
	}
	csr, err := pki.ParseCSRPEM([]byte(req.CSR))
	if err != nil {
		return errkind.Wrap(errkind.Usage, fmt.Errorf("certificate request: %w", err))
	}
	if err := pki.CheckPublicKey(csr.PublicKey); err != nil {
		return errkind.Wrap(errkind.Usage, fmt.Errorf("certificate request: %w", err))
	}
	dns, ips := satelliteNames(d.Satellite)
	cn := d.Name
	switch {
	case len(dns) > 0:
		cn = dns[0]
	case len(ips) > 0:
		cn = ips[0].String()
	}
	cert, err := h.Issuer.IssueServer(pki.ServerRequest{CommonName: cn, DNSNames: dns, IPs: ips, PublicKey: csr.PublicKey}, h.Now())
	if err != nil {
		return err
	}
	if err := h.Zone.Exec("device:"+d.ID, zone.CmdSatelliteCert, zone.SatelliteCertIssued(d.ID, pki.SerialHex(cert), cert.NotAfter.UTC())); err != nil {
		return err
	}
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	httpapi.WriteJSON(w, http.StatusOK, api.SatelliteCert{Certificate: string(pki.EncodeChainPEM(append([]*x509.Certificate{cert}, h.Issuer.Chain()...)...)), Names: names,
		NotAfter: cert.NotAfter.UTC()})
	return nil
}

// deviceSatellitePackages lists the active packages a content satellite
// prefetches.
func (h *Handlers) deviceSatellitePackages(w http.ResponseWriter, r *http.Request, d zone.Device) error {
	if d.Satellite == nil || !slices.Contains(d.Satellite.Roles, zone.SatelliteContent) {
		return errkind.New(errkind.NotFound, "device %s does not hold the Content satellite role (zman satellite-add-role)", d.Name)
	}
	pkgs, err := h.Zone.Packages()
	if err != nil {
		return err
	}
	out := []api.SatellitePackage{}
	for _, p := range pkgs {
		if p.Activation != nil {
			out = append(out, api.SatellitePackage{ID: p.ID, Fragments: p.Frags, Size: p.Size})
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// satelliteRoleName spells a role as the zone stores it, whatever its case;
// no role is the Content role.
func satelliteRoleName(role string) (string, error) {
	for _, r := range []string{zone.SatelliteContent, zone.SatelliteAuthentication} {
		if strings.EqualFold(role, r) {
			return r, nil
		}
	}
	if role == "" {
		return zone.SatelliteContent, nil
	}
	return "", errkind.New(errkind.Usage, "satellite role %q: only %s and %s are supported", role, zone.SatelliteContent, zone.SatelliteAuthentication)
}

// Closest lists the satellites holding role, closest first to a
// device at addr: the longest run of leading address bits shared with the
// satellite's last known address, then the name.
func Closest(z Records, addr, role string) []zone.Device {
	devs, err := satellites(z)
	if err != nil {
		return nil
	}
	type cand struct {
		dev    zone.Device
		common int
	}
	var list []cand
	for _, d := range devs {
		if slices.Contains(d.Satellite.Roles, role) {
			list = append(list, cand{d, commonBits(addr, d.Address)})
		}
	}
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].common != list[j].common {
			return list[i].common > list[j].common
		}
		return list[i].dev.Name < list[j].dev.Name
	})
	out := make([]zone.Device, 0, len(list))
	for _, c := range list {
		out = append(out, c.dev)
	}
	return out
}

// Content lists the content satellites' URLs for a device at
// addr, closest first.
func Content(z Records, addr string) []string {
	var out []string
	for _, d := range Closest(z, addr, zone.SatelliteContent) {
		if d.Satellite.ContentURL != "" {
			out = append(out, d.Satellite.ContentURL)
		}
	}
	return out
}

func commonBits(a, b string) int {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	if ia == nil || ib == nil {
		return 0
	}
	if ia.To4() != nil && ib.To4() != nil {
		ia, ib = ia.To4(), ib.To4()
	} else {
		ia, ib = ia.To16(), ib.To16()
	}
	if len(ia) != len(ib) {
		return 0
	}
	n := 0
	for i := range ia {
		x := ia[i] ^ ib[i]
		if x == 0 {
			n += 8
			continue
		}
		for x&0x80 == 0 {
			n++
			x <<= 1
		}
		break
	}
	return n
}
