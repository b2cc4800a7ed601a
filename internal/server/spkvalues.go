package server

import (
	"fmt"
	"net/http"
	"sort"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/spk"
	"zonekit/internal/zone"
)

func (s *Server) listSPKValues(w http.ResponseWriter, r *http.Request, _ string) error {
	all, err := s.db.AllSPKValues()
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
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) changeSPKValues(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.SPKValuesChange
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Set) == 0 && len(req.Unset) == 0 {
		return errkind.New(errkind.Usage, "nothing to set or unset")
	}
	target := req.Target
	if req.Scope == zone.ScopeDevice {
		dev, err := s.db.ResolveDevice(req.Target)
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
			sealed, err := s.sealSPK(r.Context(), k, v.Value)
			if err != nil {
				return fmt.Errorf("seal the secret value of %s: %w", k, err)
			}
			sv = zone.SPKValue{Secret: true, Sealed: sealed}
		}
		set[k] = sv
	}
	if err := s.db.SetSPKValues(actor, req.Scope, target, set, req.Unset); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deviceSPKValues(w http.ResponseWriter, r *http.Request, dev zone.Device) error {
	vals, err := s.db.DeviceSPKValues(dev.ID)
	if err != nil {
		return err
	}
	out := api.DeviceSPKValues{Values: map[string]string{}}
	for k, v := range vals {
		if v.Sealed != "" {
			clear, err := s.unsealSPK(r.Context(), k, v.Sealed)
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
	writeJSON(w, http.StatusOK, out)
	return nil
}
