package server

import (
	"net/http"

	"zonekit/internal/api"
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
	c := s.caCert
	writeJSON(w, http.StatusOK, api.CertificateAuthority{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		Key: pki.KeyDescription(c.PublicKey),
		MD5: pki.Fingerprint(c, "md5"), SHA1: pki.Fingerprint(c, "sha1"), SHA256: pki.Fingerprint(c, "sha256"),
		Status: pki.Status(c, s.now()), Internal: s.zone.CAInternal, CertAuthServer: holder,
	})
	return nil
}

func (s *Server) listServerCertificates(w http.ResponseWriter, r *http.Request, _ string) error {
	servers, err := s.db.Servers()
	if err != nil {
		return err
	}
	out := make([]api.ServerCertificate, 0, len(servers))
	for _, sv := range servers {
		c, err := pki.ParseCertPEM([]byte(sv.CertPEM))
		if err != nil {
			s.log.Error("server certificate unreadable", "server", sv.Name, "err", err)
			out = append(out, api.ServerCertificate{Server: sv.Name, Status: "unreadable", Version: sv.Version})
			continue
		}
		out = append(out, api.ServerCertificate{
			Server: sv.Name, IssuedTo: c.Subject.CommonName, Subject: c.Subject.String(), IssuedBy: c.Issuer.String(),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
			SHA1: pki.Fingerprint(c, "sha1"), SHA256: pki.Fingerprint(c, "sha256"),
			Status: pki.Status(c, s.now()), Version: sv.Version,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
