package imaging

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"zonekit/internal/preboot/ptls"
)

// op is what a request wants: reading (list or download), writing an
// image, or neither (a work request).
type op struct {
	get, put bool
	image    string // "" for the list
}

// authorize decides who the request comes from and whether that one may
// do o, answering the refusal itself. Allowed:
//   - a zone server (a client certificate the zone CA issued for server
//     use): work requests, list and download;
//   - a task token: the one image its task names, GET to restore, PUT to
//     capture;
//   - a zone administrator (Basic or Bearer, checked by the zone): all.
//
// Without a zone here nobody gets images.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, typ string, o op) (string, bool) {
	if s.zone == nil || s.cfg.TLS == nil {
		s.fail(w, r, typ, http.StatusServiceUnavailable, "images need a zone credential, and this server has no zone to check one against")
		return "", false
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && ptls.IsServerCert(r.TLS.VerifiedChains[0][0]) && !o.put {
		return "server " + r.TLS.VerifiedChains[0][0].Subject.CommonName, true
	}
	authz := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(authz, "Bearer "); ok && strings.HasPrefix(tok, tokenPrefix) {
		c, err := s.key.Verify(tok, s.now())
		if err != nil {
			s.refuse(w, r, typ, http.StatusUnauthorized, "%v", err)
			return "", false
		}
		allowed := o.image != "" && o.image == c.Image &&
			((o.get && c.Action == "image") || (o.put && c.Action == "take-image"))
		if !allowed {
			what := "restore"
			if c.Action == "take-image" {
				what = "capture"
			}
			s.refuse(w, r, typ, http.StatusForbidden, "the task token of %s allows only the %s of image %s", c.MAC, what, c.Image)
			return "", false
		}
		return "task of " + c.MAC, true
	}
	if authz == "" {
		s.refuse(w, r, typ, http.StatusUnauthorized, "authentication required: a zone administrator's credential or a task token")
		return "", false
	}
	admin, err := s.zone.Admin(r.Context(), authz)
	if err != nil {
		s.refuse(w, r, typ, http.StatusUnauthorized, "%v", err)
		return "", false
	}
	return admin, true
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, typ string, code int, format string, args ...any) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="zonekit imaging"`)
	}
	s.fail(w, r, typ, code, format, args...)
}

// checkSize refuses an announced upload larger than the limit or than
// the free space of the image directory (less a margin); a body without a
// length is bounded while it is read.
func (s *Server) checkSize(n int64) error {
	if n < 0 {
		return nil
	}
	if limit := s.maxImage(); n > limit {
		return fmt.Errorf("the image (%d bytes) is larger than the limit of %d bytes", n, limit)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir(), &st); err == nil {
		if free := int64(st.Bavail) * int64(st.Bsize); n > free-freeSpaceMargin {
			return fmt.Errorf("the image (%d bytes) does not fit: %d bytes free in the image directory", n, free)
		}
	}
	return nil
}

// maxImage is the upload limit now in force (force-reload changes it).
func (s *Server) maxImage() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxNow
}
