package certificates

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/replica"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// PeerCaller calls another server of the zone over the peer link (the
// core's peerCall): errors that prove the request never left wrap
// replica.ErrNotDelivered.
type PeerCaller interface {
	Call(ctx context.Context, addr, method, path string, in, out any) error
}

// Signing signs device and joining servers' certificates: with the zone
// CA where this server holds it (CertAuth), under an external zone CA
// with the device CA (devices only), else by asking the CertAuth server
// over the peer link, whose route /api/v1/cluster/sign it also serves.
type Signing struct {
	Zone     interface{ Servers() ([]zone.Server, error) }
	TLS      TLS
	CA       CAHolder
	DeviceCA *DeviceCA
	Peers    PeerCaller
	Self     zone.Server
	ZoneName string
	Now      func() time.Time
	Log      *slog.Logger
}

// Register mounts the peers' signing route.
func (g *Signing) Register(r httpapi.Routes) {
	r.Peer("POST "+api.Prefix+"/cluster/sign", g.clusterSign)
}

// clusterSign signs a CSR with the zone CA for another server of the zone:
// only the CertAuth server holds the key.
func (g *Signing) clusterSign(w http.ResponseWriter, r *http.Request, peer zone.Server) error {
	var req api.ClusterSign
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	cert, err := g.signLocal(r.Context(), req)
	if err != nil {
		return err
	}
	g.Log.Info("certificate signed for a peer", "peer", peer.Name, "kind", req.Kind, "id", req.ID)
	httpapi.WriteJSON(w, http.StatusOK, api.ClusterSigned{CertPEM: string(pki.EncodeCertPEM(cert))})
	return nil
}

func (g *Signing) signLocal(ctx context.Context, req api.ClusterSign) (*x509.Certificate, error) {
	if g.TLS.External() {
		// The zone holds no key of an external CA: devices get their
		// certificates from the device CA, on any server; a server's
		// certificate must come from the external CA.
		if req.Kind != "device" {
			return nil, errkind.New(errkind.Unavailable, "the zone CA %s is external and its key is not in the zone, so no server can sign a certificate for a joining server: join servers while the zone CA is internal (change to the external CA afterwards)", g.TLS.ZoneCA().Subject)
		}
		dca, err := g.DeviceCA.Signer(ctx)
		if err != nil {
			return nil, err
		}
		cert, err := dca.SignDeviceCSR([]byte(req.CSR), req.ID, g.Now())
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("certificate request: %w", err))
		}
		return cert, nil
	}
	ca := g.CA.Load()
	if ca == nil {
		return nil, errkind.New(errkind.Unavailable, "server %s does not hold the CertAuth role", g.Self.Name)
	}
	switch req.Kind {
	case "device":
		cert, err := ca.SignDeviceCSR([]byte(req.CSR), req.ID, g.Now())
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, fmt.Errorf("certificate request: %w", err))
		}
		return cert, nil
	case "server":
		csr, err := pki.ParseCSRPEM([]byte(req.CSR))
		if err != nil {
			return nil, errkind.Wrap(errkind.Usage, err)
		}
		var ips []net.IP
		for _, ip := range req.IPs {
			if p := net.ParseIP(ip); p != nil {
				ips = append(ips, p)
			} else {
				return nil, errkind.New(errkind.Usage, "%q is not an IP address", ip)
			}
		}
		if len(req.DNSNames) == 0 {
			return nil, errkind.New(errkind.Usage, "a server certificate needs a DNS name")
		}
		return ca.IssueServer(pki.ServerRequest{CommonName: req.DNSNames[0], DNSNames: req.DNSNames, IPs: ips, PublicKey: csr.PublicKey}, g.Now())
	}
	return nil, errkind.New(errkind.Usage, "unknown certificate kind %q", req.Kind)
}

// Sign signs here when this server holds the CA, else asks the server
// that does: devices may register with any server of the zone. Under an
// external zone CA every server signs device certificates itself, with
// the device CA.
func (g *Signing) Sign(ctx context.Context, req api.ClusterSign) (*x509.Certificate, error) {
	if g.CA.Load() != nil || g.TLS.External() {
		return g.signLocal(ctx, req)
	}
	servers, err := g.Zone.Servers()
	if err != nil {
		return nil, err
	}
	for _, sv := range servers {
		if !sv.HasRole(zone.RoleCertAuth) || sv.ID == g.Self.ID {
			continue
		}
		addr := sv.PeerAddress()
		var out api.ClusterSigned
		if err := g.Peers.Call(ctx, addr, http.MethodPost, "/cluster/sign", req, &out); err != nil {
			if errors.Is(err, replica.ErrNotDelivered) {
				return nil, errkind.New(errkind.Unavailable, "the zone's CertAuth server %s cannot be reached to sign the certificate: try again later", sv.Name)
			}
			return nil, err
		}
		return pki.ParseCertPEM([]byte(out.CertPEM))
	}
	return nil, errkind.New(errkind.Unavailable, "no server of zone %s holds the CertAuth role: enable it where the CA key is (certificate-authority-role-enable)", g.ZoneName)
}
