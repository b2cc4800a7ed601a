// Package spkvalues serves the values server software packages are
// configured with (/api/v1/spk-values): administrators list and change
// them at zone, group or device scope, secret ones sealed with the zone's
// SPK key; a device reads its own, merged and unsealed, with its
// certificate (/api/v1/device/spk-values).
package spkvalues

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/spk"
	"zonekit/internal/zone"
)

// Zone is what the routes need of the zone's state (*zone.DB).
type Zone interface {
	AllSPKValues() ([]zone.SPKValues, error)
	SetSPKValues(actor, scope, target string, set map[string]zone.SPKValue, unset []string) error
	DeviceSPKValues(deviceID string) (map[string]zone.SPKValue, error)
	ResolveDevice(ref string) (zone.Device, error)
}

// Sealer seals secret values with the zone's SPK key, and opens them.
type Sealer interface {
	Seal(ctx context.Context, name, value string) (string, error)
	Unseal(ctx context.Context, name, sealed string) (string, error)
}

// Handlers serve the SPK values routes.
type Handlers struct {
	Zone   Zone
	Sealer Sealer
}

// Register mounts the routes.
func (h *Handlers) Register(r httpapi.Routes) {
	r.Admin("GET "+api.Prefix+"/spk-values", h.listSPKValues)
	r.Admin("POST "+api.Prefix+"/spk-values", h.changeSPKValues)
	r.Device("GET "+api.Prefix+"/device/spk-values", h.deviceSPKValues)
}

func (h *Handlers) listSPKValues(w http.ResponseWriter, r *http.Request, _ string) error {
	all, err := h.Zone.AllSPKValues()
	if err != nil {
		return err
	}
	out := make([]api.SPKValues, 0, len(all))
	for _, sv := range all {
		a := api.SPKValues{Scope: sv.Scope, Target: sv.Target, Values: map[string]api.SPKValue{}}
		for k, v := range sv.Values {
			if v.Secret {
				v.Value = "********"
			}
			a.Values[k] = api.SPKValue{Value: v.Value, Secret: v.Secret}
		}
		out = append(out, a)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handlers) changeSPKValues(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.SPKValuesChange
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Set) == 0 && len(req.Unset) == 0 {
		return errkind.New(errkind.Usage, "nothing to set or unset")
	}
	target := req.Target
	if req.Scope == zone.ScopeDevice {
		dev, err := h.Zone.ResolveDevice(req.Target)
		if err != nil {
			return err
		}
		target = dev.ID
	}
	set := map[string]zone.SPKValue{}
	for k, v := range req.Set {
		if _, err := spk.ParseValues([]string{k + "=x"}); err != nil {
			return errkind.New(errkind.Usage, "%q is not a variable name (letters, digits, _)", k)
		}
		sv := zone.SPKValue{Value: v.Value, Secret: v.Secret}
		if v.Secret {
			sealed, err := h.Sealer.Seal(r.Context(), k, v.Value)
			if err != nil {
				return fmt.Errorf("seal the secret value of %s: %w", k, err)
			}
			sv = zone.SPKValue{Secret: true, Sealed: sealed}
		}
		set[k] = sv
	}
	if err := h.Zone.SetSPKValues(actor, req.Scope, target, set, req.Unset); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) deviceSPKValues(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	vals, err := h.Zone.DeviceSPKValues(dev.ID)
	if err != nil {
		return err
	}
	out := api.DeviceSPKValues{Values: map[string]string{}}
	for k, v := range vals {
		if v.Sealed != "" {
			clear, err := h.Sealer.Unseal(r.Context(), k, v.Sealed)
			if err != nil {
				return err
			}
			v.Value = clear
		}
		out.Values[k] = v.Value
		if v.Secret {
			out.Secret = append(out.Secret, k)
		}
	}
	sort.Strings(out.Secret)
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
