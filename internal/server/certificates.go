package server

import (
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
	"zonekit/internal/zone"
)

func (s *Server) certAuthServer() (string, error) {
	servers, err := s.db.Servers()
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

func (s *Server) getCertificateAuthority(w http.ResponseWriter, r *http.Request, _ string) error {
	holder, err := s.certAuthServer()
	if err != nil {
		return err
	}
	z, err := s.db.Zone()
	if err != nil {
		return err
	}
	// The store is the truth: during an activation this server's TLS
	// state follows it a moment later, and the answer must not mix the
	// old CA with the new CA's type.
	c := s.zoneCA()
	if stored, err := pki.ParseCertPEM([]byte(z.CACertPEM)); err == nil {
		c = stored
	}
	out := api.CertificateAuthority{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		Key: pki.KeyDescription(c.PublicKey),
		MD5: pki.Fingerprint(c, "md5"), SHA1: pki.Fingerprint(c, "sha1"), SHA256: pki.Fingerprint(c, "sha256"),
		Status: pki.Status(c, s.now()), Internal: z.CAInternal, CertAuthServer: holder, PEM: string(pki.EncodeCertPEM(c)),
	}
	if z.CAInternal {
		out.DeviceCA, out.DeviceCAIsZoneCA = summary(c, false), true
	} else if dca, err := pki.ParseCertPEM([]byte(z.DeviceCA)); err == nil {
		out.DeviceCA = summary(dca, true)
	}
	if rm, err := s.db.Remint(); err == nil && rm != nil {
		out.Change = fmt.Sprintf("%s %q, activation %s", rm.Kind, rm.Name, rm.Activation.UTC().Format(time.RFC3339))
		if f, err := pki.ParseCertPEM([]byte(rm.FutureCA)); err == nil {
			out.FutureCA = summary(f, true)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listServerCertificates(w http.ResponseWriter, r *http.Request, _ string) error {
	servers, err := s.db.Servers()
	if err != nil {
		return err
	}
	rm, err := s.db.Remint()
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
			s.log.Error("server certificate unreadable", "server", sv.Name, "err", err)
			out = append(out, api.ServerCertificate{Server: sv.Name, Status: "unreadable", Version: sv.Version})
			continue
		}
		out = append(out, api.ServerCertificate{
			Server: sv.Name, IssuedTo: c.Subject.CommonName, Subject: c.Subject.String(), IssuedBy: c.Issuer.String(),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
			MD5: pki.Fingerprint(c, "md5"), SHA1: pki.Fingerprint(c, "sha1"), SHA256: pki.Fingerprint(c, "sha256"),
			Status: pki.Status(c, s.now()), Version: sv.Version, FutureStatus: future, UpdateStatus: update,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// withRoleLock serialises changes of the CertAuth role on this server.
func (s *Server) withRoleLock(fn func() error) error {
	s.roleMu.Lock()
	defer s.roleMu.Unlock()
	return fn()
}

func (s *Server) exportCA(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CAExport
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if err := password.CheckPassphrase(req.Passphrase); err != nil {
		return err
	}
	ca := s.ca.Load()
	if ca == nil {
		return errkind.New(errkind.NotFound, "server %s does not hold the CertAuth role and its key", s.self.Name)
	}
	data, err := ca.ExportPKCS12(req.Passphrase, req.Legacy)
	if err != nil {
		return err
	}
	s.log.Info("CA exported", "actor", actor, "legacy", req.Legacy)
	w.Header().Set("Content-Type", "application/x-pkcs12")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

// setCertAuth adds or removes the CertAuth role of this server in the store.
func (s *Server) setCertAuth(actor string, on bool) error {
	self, err := s.db.Server(s.self.ID)
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
	return s.db.SetRoles(actor, self.ID, roles)
}

func (s *Server) importCA(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CAImport
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	ca, err := pki.ImportPKCS12(req.PKCS12, req.Passphrase)
	if err != nil {
		return err
	}
	if !ca.Cert.Equal(s.zoneCA()) {
		return errkind.New(errkind.Invalid, "the PKCS#12 file holds %s (SHA-256 %s), not this zone's CA (SHA-256 %s)",
			ca.Cert.Subject, pki.Fingerprint(ca.Cert, "sha256"), pki.Fingerprint(s.zoneCA(), "sha256"))
	}
	return s.withRoleLock(func() error {
		keyPEM, err := pki.EncodeKeyPEM(ca.Key)
		if err != nil {
			return err
		}
		// The role first: when the zone refuses it (another server holds
		// it) nothing is written, so no key lies where the role is not.
		self, err := s.db.Server(s.self.ID)
		if err != nil {
			return err
		}
		hadRole := self.HasRole(zone.RoleCertAuth)
		if err := s.setCertAuth(actor, true); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(s.opts.Paths.CAKey(), keyPEM, 0o600); err != nil {
			if !hadRole {
				if rerr := s.setCertAuth(actor, false); rerr != nil {
					s.log.Error("CA import: key not written and the CertAuth role not taken back", "err", rerr)
				}
			}
			return fmt.Errorf("write the CA key: %w", err)
		}
		s.ca.Store(ca)
		s.log.Info("CA imported; this server holds the CertAuth role", "actor", actor)
		writeJSON(w, http.StatusOK, api.CARole{Server: s.self.Name, CertAuth: true, KeyKept: true})
		return nil
	})
}

func (s *Server) enableCARole(w http.ResponseWriter, r *http.Request, actor string) error {
	return s.withRoleLock(func() error {
		ca, err := pki.LoadCA(s.opts.Paths.CACert(), s.opts.Paths.CAKey())
		if err != nil {
			return errkind.New(errkind.NotFound, "this server has no usable CA key (%v): import it with certificate-authority-import", err)
		}
		if err := s.setCertAuth(actor, true); err != nil {
			return err
		}
		s.ca.Store(ca)
		s.log.Info("CertAuth role enabled", "actor", actor)
		writeJSON(w, http.StatusOK, api.CARole{Server: s.self.Name, CertAuth: true, KeyKept: true})
		return nil
	})
}

func (s *Server) disableCARole(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CARoleDisable
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	return s.withRoleLock(func() error {
		if err := s.setCertAuth(actor, false); err != nil {
			return err
		}
		s.ca.Store(nil)
		if req.DeleteKey {
			if err := os.Remove(s.opts.Paths.CAKey()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("delete the CA key: %w", err)
			}
		}
		s.log.Info("CertAuth role disabled", "actor", actor, "key_deleted", req.DeleteKey)
		writeJSON(w, http.StatusOK, api.CARole{Server: s.self.Name, CertAuth: false, KeyKept: !req.DeleteKey})
		return nil
	})
}
