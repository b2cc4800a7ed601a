package certificates

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"time"
	"zonekit/internal/api"
	"zonekit/internal/pki"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// shortAfterActivation is how soon after activation a certificate's expiry
// is worth a warning: the change would buy little time.
const shortAfterActivation = 30 * 24 * time.Hour

// checkChange is the preflight of the change under way (or, with none, of
// the certificates in use): for every server, what a client would see at
// activation. It verifies what each server will serve (the certificate
// and the intermediates sent with it) against the CA clients will trust,
// with the names and addresses by which the server is reached, at the
// activation time: chain completeness, key usage, dates and names, as
// step certificate verify --host does from outside.
func (h *Handlers) checkChange(w http.ResponseWriter, r *http.Request, _ string) error {
	rm, err := h.Zone.Remint()
	if err != nil {
		return err
	}
	servers, err := h.Zone.Servers()
	if err != nil {
		return err
	}
	root, at := h.Trust.ZoneCA(), h.Now()
	out := api.CertificateCheck{Servers: []api.ServerCheck{}}
	if rm != nil {
		out.Change = rm.Name
		if !rm.Immediate {
			at = rm.Activation
		}
		if rm.Kind.ChangesCA() {
			if root, err = pki.ParseCertPEM([]byte(rm.FutureCA)); err != nil {
				return fmt.Errorf("the change's future CA: %w", err)
			}
		}
	}
	out.At = at.UTC()
	out.CA = root.Subject.String()
	for _, sv := range servers {
		chk := api.ServerCheck{Server: sv.Name}
		certPEM := sv.CertPEM
		if rm != nil {
			f, ok := rm.Future(sv.ID)
			switch {
			case ok && !f.Ready():
				chk.Problems = append(chk.Problems, fmt.Sprintf("no future certificate yet (%s)", f.Status))
				out.Servers = append(out.Servers, chk)
				continue
			case ok:
				certPEM = f.CertPEM
			case rm.Kind.ChangesCA():
				chk.Problems = append(chk.Problems, "not part of the change: its certificate is not from the future CA")
			}
		}
		chk.Problems = append(chk.Problems, verifyServed(certPEM, root, sv, at, &chk)...)
		out.Servers = append(out.Servers, chk)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// verifyServed checks the chain a server will serve at time at.
func verifyServed(certPEM string, root *x509.Certificate, sv zone.Server, at time.Time, chk *api.ServerCheck) []string {
	chain, err := pki.ParseCertsPEM([]byte(certPEM))
	if err != nil || len(chain) == 0 {
		return []string{"no readable certificate"}
	}
	leaf := chain[0]
	chk.SHA256, chk.NotAfter = pki.Fingerprint(leaf, "sha256"), leaf.NotAfter.UTC()
	var problems []string
	switch {
	case at.Before(leaf.NotBefore):
		problems = append(problems, fmt.Sprintf("not yet valid at %s (valid from %s)", at.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339)))
	case !at.Before(leaf.NotAfter):
		problems = append(problems, fmt.Sprintf("expired at %s (%s)", at.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339)))
	case leaf.NotAfter.Sub(at) < shortAfterActivation:
		chk.Warnings = append(chk.Warnings, fmt.Sprintf("expires %d days after %s", int(leaf.NotAfter.Sub(at).Hours()/24), at.UTC().Format(time.DateOnly)))
	}
	if at.After(root.NotAfter) {
		problems = append(problems, fmt.Sprintf("the CA %s has expired at %s", root.Subject, at.UTC().Format(time.RFC3339)))
	}
	// Only what the server sends: a client holds the root and nothing else.
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	vat := at
	if vat.Before(leaf.NotBefore) || !vat.Before(leaf.NotAfter) {
		vat = leaf.NotBefore.Add(time.Second) // dates are reported above
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: vat,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		problems = append(problems, fmt.Sprintf("does not chain to %s with the intermediates it is served with: %v", root.Subject, err))
	}
	if missing := pki.UncoveredNames(leaf, sv.NamesInUse()); len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("does not cover %s, by which it is reached", strings.Join(missing, ", ")))
	}
	return problems
}
