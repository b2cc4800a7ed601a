package certificates

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"time"
	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
	"zonekit/internal/password"
	"zonekit/internal/pki"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// CertAuthServer names the server that holds the CertAuth role, "" when none does.
func CertAuthServer(z interface {
	Servers() ([]zone.Server, error)
}) (string, error) {
	servers, err := z.Servers()
	if err != nil {
		return "", err
	}
	for _, sv := range servers {
		if sv.HasRole(zone.RoleCertAuth) {
			return sv.Name, nil
		}
	}
	return "", nil
}

func (h *Handlers) getCertificateAuthority(w http.ResponseWriter, r *http.Request, _ string) error {
	holder, err := CertAuthServer(h.Zone)
	if err != nil {
		return err
	}
	z, err := h.Zone.Zone()
	if err != nil {
		return err
	}
	// The store is the truth: during an activation this server's TLS
	// state follows it a moment later, and the answer must not mix the
	// old CA with the new CA's type.
	c := h.Trust.ZoneCA()
	if stored, err := pki.ParseCertPEM([]byte(z.CACertPEM)); err == nil {
		c = stored
	}
	out := api.CertificateAuthority{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		Key: pki.KeyDescription(c.PublicKey),
		MD5: pki.Fingerprint(c, "md5"), SHA1: pki.Fingerprint(c, "sha1"), SHA256: pki.Fingerprint(c, "sha256"),
		Status: pki.Status(c, h.Now()), Internal: z.CAInternal, CertAuthServer: holder, PEM: string(pki.EncodeCertPEM(c)),
	}
	if z.CAInternal {
		out.DeviceCA, out.DeviceCAIsZoneCA = Summary(c, false), true
	} else if dca, err := pki.ParseCertPEM([]byte(z.DeviceCA)); err == nil {
		out.DeviceCA = Summary(dca, true)
	}
	if rm, err := h.Zone.Remint(); err == nil && rm != nil {
		out.Change = fmt.Sprintf("%s %q, activation %s", rm.Kind, rm.Name, rm.Activation.UTC().Format(time.RFC3339))
		if f, err := pki.ParseCertPEM([]byte(rm.FutureCA)); err == nil {
			out.FutureCA = Summary(f, true)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handlers) listServerCertificates(w http.ResponseWriter, r *http.Request, _ string) error {
	servers, err := h.Zone.Servers()
	if err != nil {
		return err
	}
	rm, err := h.Zone.Remint()
	if err != nil {
		return err
	}
	out := make([]api.ServerCertificate, 0, len(servers))
	for _, sv := range servers {
		future, update := "", ""
		if rm != nil {
			if f, ok := rm.Future(sv.ID); ok {
				future = f.Status
				if f.Error != "" {
					future += ": " + f.Error
				}
				update = "activation " + rm.Activation.UTC().Format(time.RFC3339)
				if rm.Immediate {
					update = "Immediate"
				}
			}
		}
		c, err := pki.ParseCertPEM([]byte(sv.CertPEM))
		if err != nil {
			h.Log.Error("server certificate unreadable", "server", sv.Name, "err", err)
			out = append(out, api.ServerCertificate{Server: sv.Name, Status: "unreadable", Version: sv.Version})
			continue
		}
		out = append(out, api.ServerCertificate{
			Server: sv.Name, IssuedTo: c.Subject.CommonName, Subject: c.Subject.String(), IssuedBy: c.Issuer.String(),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
			MD5: pki.Fingerprint(c, "md5"), SHA1: pki.Fingerprint(c, "sha1"), SHA256: pki.Fingerprint(c, "sha256"),
			Status: pki.Status(c, h.Now()), Version: sv.Version, FutureStatus: future, UpdateStatus: update,
		})
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// withRoleLock serialises changes of the CertAuth role on this server.
func (h *Handlers) withRoleLock(fn func() error) error {
	h.roleMu.Lock()
	defer h.roleMu.Unlock()
	return fn()
}

func (h *Handlers) exportCA(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CAExport
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if err := password.CheckPassphrase(req.Passphrase); err != nil {
		return err
	}
	ca := h.CA.Load()
	if ca == nil {
		return errkind.New(errkind.NotFound, "server %s does not hold the CertAuth role and its key", h.Self.Name)
	}
	data, err := ca.ExportPKCS12(req.Passphrase, req.Legacy)
	if err != nil {
		return err
	}
	h.Log.Info("CA exported", "actor", actor, "legacy", req.Legacy)
	w.Header().Set("Content-Type", "application/x-pkcs12")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

// setCertAuth adds or removes the CertAuth role of this server in the store.
func (h *Handlers) setCertAuth(actor string, on bool) error {
	self, err := h.Zone.Server(h.Self.ID)
	if err != nil {
		return err
	}
	roles := []zone.Role{}
	for _, r := range self.Roles {
		if r != zone.RoleCertAuth {
			roles = append(roles, r)
		}
	}
	if on {
		roles = append([]zone.Role{zone.RoleCertAuth}, roles...)
	}
	return h.Zone.SetRoles(actor, self.ID, roles)
}

func (h *Handlers) importCA(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CAImport
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	ca, err := pki.ImportPKCS12(req.PKCS12, req.Passphrase)
	if err != nil {
		return err
	}
	if !ca.Cert.Equal(h.Trust.ZoneCA()) {
		return errkind.New(errkind.Invalid, "the PKCS#12 file holds %s (SHA-256 %s), not this zone's CA (SHA-256 %s)",
			ca.Cert.Subject, pki.Fingerprint(ca.Cert, "sha256"), pki.Fingerprint(h.Trust.ZoneCA(), "sha256"))
	}
	return h.withRoleLock(func() error {
		keyPEM, err := pki.EncodeKeyPEM(ca.Key)
		if err != nil {
			return err
		}
		// The role first: when the zone refuses it (another server holds
		// it) nothing is written, so no key lies where the role is not.
		self, err := h.Zone.Server(h.Self.ID)
		if err != nil {
			return err
		}
		hadRole := self.HasRole(zone.RoleCertAuth)
		if err := h.setCertAuth(actor, true); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(h.Paths.CAKey(), keyPEM, 0o600); err != nil {
			if !hadRole {
				if rerr := h.setCertAuth(actor, false); rerr != nil {
					h.Log.Error("CA import: key not written and the CertAuth role not taken back", "err", rerr)
				}
			}
			return fmt.Errorf("write the CA key: %w", err)
		}
		h.CA.Store(ca)
		h.Log.Info("CA imported; this server holds the CertAuth role", "actor", actor)
		httpapi.WriteJSON(w, http.StatusOK, api.CARole{Server: h.Self.Name, CertAuth: true, KeyKept: true})
		return nil
	})
}

func (h *Handlers) enableCARole(w http.ResponseWriter, r *http.Request, actor string) error {
	return h.withRoleLock(func() error {
		ca, err := pki.LoadCA(h.Paths.CACert(), h.Paths.CAKey())
		if err != nil {
			return errkind.New(errkind.NotFound, "this server has no usable CA key (%v): import it with certificate-authority-import", err)
		}
		if err := h.setCertAuth(actor, true); err != nil {
			return err
		}
		h.CA.Store(ca)
		h.Log.Info("CertAuth role enabled", "actor", actor)
		httpapi.WriteJSON(w, http.StatusOK, api.CARole{Server: h.Self.Name, CertAuth: true, KeyKept: true})
		return nil
	})
}

func (h *Handlers) disableCARole(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CARoleDisable
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	return h.withRoleLock(func() error {
		if err := h.setCertAuth(actor, false); err != nil {
			return err
		}
		h.CA.Store(nil)
		if req.DeleteKey {
			if err := os.Remove(h.Paths.CAKey()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("delete the CA key: %w", err)
			}
		}
		h.Log.Info("CertAuth role disabled", "actor", actor, "key_deleted", req.DeleteKey)
		httpapi.WriteJSON(w, http.StatusOK, api.CARole{Server: h.Self.Name, CertAuth: false, KeyKept: !req.DeleteKey})
		return nil
	})
}

// Summary describes c for the API; withPEM adds the certificate itself.
func Summary(c *x509.Certificate, withPEM bool) *api.CertSummary {
	if c == nil {
		return nil
	}
	out := &api.CertSummary{Subject: c.Subject.String(), Issuer: c.Issuer.String(), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		Key: pki.KeyDescription(c.PublicKey), SHA256: pki.Fingerprint(c, "sha256")}
	if withPEM {
		out.PEM = string(pki.EncodeCertPEM(c))
	}
	return out
}
