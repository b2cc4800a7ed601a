// Package certificates serves the zone's certificates to devices and
// administrators: device certificates (a device's renewal, an
// administrator's re-certification of a device that lost the zone's
// trust), the zone's CAs as anyone may ask for them (/api/v1/trust), the
// zone CA and server certificates as administrators see them, the CA's
// export and import and this server's CertAuth role, and the preflight
// of a certificate change (/api/v1/certificate-changes/check). Changes
// (changes.go) is the certificate change itself: its loop step and its
// routes; DeviceCA (deviceca.go) the device CA that issues under an
// external zone CA; Loop the daemon's certificate loop over both. The
// core gives them its TLS state through TLS.
package certificates

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// Zone is what the routes need of the zone's state (*zone.DB).
type Zone interface {
	Exec(actor, name string, data any) error
	Zone() (zone.Zone, error)
	Device(id string) (zone.Device, error)
	Servers() ([]zone.Server, error)
	Remint() (*zone.Remint, error)
	Server(id string) (zone.Server, error)
	SetRoles(actor, id string, roles []zone.Role) error
}

// CAHolder is the zone CA with its key as this server holds it (nil
// unless it holds the CertAuth role and the key): the core's
// atomic.Pointer, read by everything that signs.
type CAHolder interface {
	Load() *pki.CA
	Store(*pki.CA)
}

// Signer signs a device's certificate with the CA that issues them, here
// or on the server that holds it.
type Signer interface {
	Sign(ctx context.Context, req api.ClusterSign) (*x509.Certificate, error)
}

// Trust is this server's TLS trust as it stands now.
type Trust interface {
	// ZoneCA is the zone CA certificate.
	ZoneCA() *x509.Certificate
	// TrustedCAs are the PEMs agents should trust now.
	TrustedCAs() []string
	// Served is the certificate chain this server serves (DER).
	Served() [][]byte
}

// Handlers serve the certificate routes.
type Handlers struct {
	Zone     Zone
	Signer   Signer
	Trust    Trust
	CA       CAHolder
	Self     zone.Server  // this server
	Paths    config.Paths // where this server keeps the CA's certificate and key
	ZoneName string
	Now      func() time.Time
	Log      *slog.Logger
	roleMu   sync.Mutex // one change of the CertAuth role at a time on this server
}

// Register mounts the routes.
func (h *Handlers) Register(r httpapi.Routes) {
	r.Admin("GET "+api.Prefix+"/certificate-authority", h.getCertificateAuthority)
	r.Admin("GET "+api.Prefix+"/server-certificates", h.listServerCertificates)
	r.Admin("POST "+api.Prefix+"/certificate-authority/export", h.exportCA)
	r.Admin("POST "+api.Prefix+"/certificate-authority/import", h.importCA)
	r.Admin("POST "+api.Prefix+"/certificate-authority/role-enable", h.enableCARole)
	r.Admin("POST "+api.Prefix+"/certificate-authority/role-disable", h.disableCARole)
	r.Admin("GET "+api.Prefix+"/certificate-changes/check", h.checkChange)
	r.Admin("POST "+api.Prefix+"/device/retrust", h.deviceRetrust)
	r.Open("GET "+api.Prefix+"/trust", func(w http.ResponseWriter, r *http.Request, _ string) error { return h.getTrust(w, r) })
	r.Device("POST "+api.Prefix+"/device/certificate", h.deviceCertificate)
}

func (h *Handlers) issueDeviceCert(actor, id string, csrPEM string) (api.DeviceCertificate, error) {
	cert, err := h.Signer.Sign(context.Background(), api.ClusterSign{Kind: "device", ID: id, CSR: csrPEM})
	if err != nil {
		return api.DeviceCertificate{}, err
	}
	if err := h.Zone.Exec(actor, zone.CmdDeviceSetCert, zone.DeviceCert{ID: id, Serial: pki.SerialHex(cert), NotAfter: cert.NotAfter.UTC()}); err != nil {
		return api.DeviceCertificate{}, err
	}
	return api.DeviceCertificate{Certificate: string(pki.EncodeCertPEM(cert)), TrustedCAs: h.Trust.TrustedCAs()}, nil
}

func (h *Handlers) deviceCertificate(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	var req api.DeviceCertificateRequest
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	out, err := h.issueDeviceCert("device:"+dev.ID, dev.ID, req.CSR)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// deviceRetrust re-certifies a device whose trust in the zone is broken
// (it missed a change of CA), on an administrator's authority.
func (h *Handlers) deviceRetrust(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.DeviceCertificateRequest
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	dev, err := h.Zone.Device(req.DeviceID)
	if err != nil {
		return errkind.New(errkind.NotFound, "device %q is not registered in zone %s: register it again (zac register)", req.DeviceID, h.ZoneName)
	}
	out, err := h.issueDeviceCert(actor, dev.ID, req.CSR)
	if err != nil {
		return err
	}
	h.Log.Info("device trust re-established", "actor", actor, "device", dev.ID)
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// getTrust tells anyone what the zone's CAs are. It is public by nature
// (every TLS handshake shows as much); agents decide with cross
// certificates or a fingerprint whether to believe it.
func (h *Handlers) getTrust(w http.ResponseWriter, r *http.Request) error {
	z, err := h.Zone.Zone()
	if err != nil {
		return err
	}
	t := api.Trust{Zone: z.Name, CAPEM: z.CACertPEM, CrossPEMs: z.CrossCerts}
	if rm, err := h.Zone.Remint(); err == nil && rm != nil {
		t.FuturePEM = rm.FutureCA
		if rm.CrossCert != "" {
			t.CrossPEMs = append(append([]string(nil), t.CrossPEMs...), rm.CrossCert)
		}
	}
	for _, der := range h.Trust.Served() {
		if c, err := x509.ParseCertificate(der); err == nil {
			t.ServerPEM += string(pki.EncodeCertPEM(c))
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, t)
	return nil
}
