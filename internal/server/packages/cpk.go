package packages

import (
	"encoding/hex"
	"net/http"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/spk"
)

// signCPK signs a CPK manifest digest with the zone CA: zman compiles the
// package on the administrator's machine and sends only the digest.
func (h *Handlers) signCPK(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.CPKSignRequest
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	digest, err := hex.DecodeString(req.SHA256)
	if err != nil || len(digest) != 32 {
		return errkind.New(errkind.Usage, "sha256 must be 64 hex digits")
	}
	ca, err := h.CA.CPKSigner(r.Context())
	if err != nil {
		return err
	}
	sig, err := spk.SignDigest(ca, digest)
	if err != nil {
		return err
	}
	h.Log.Info("CPK signed", "actor", actor, "package", req.Name, "sha256", req.SHA256)
	httpapi.WriteJSON(w, http.StatusOK, api.CPKSignature{Algorithm: sig.Algorithm, Value: sig.Value, CAPEM: sig.CAPEM})
	return nil
}
