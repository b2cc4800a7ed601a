package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/password"
	"zonekit/internal/pki"
	"zonekit/internal/replica"
	"zonekit/internal/server/certificates"
	"zonekit/internal/zone"
)

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, actor string) error {
	tok := NewToken()
	if err := s.db.Exec(actor, zone.CmdTokenCreate, zone.AdminToken{Hash: HashToken(tok), Admin: actor, Created: s.db.Now()}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.TokenResponse{Token: tok, Admin: actor})
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, actor string) error {
	tok, ok := bearer(r)
	if !ok {
		return errkind.New(errkind.Usage, "only a stored credential can be revoked")
	}
	if err := s.db.Exec(actor, zone.CmdTokenDelete, map[string]string{"name": HashToken(tok)}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) zoneInfo() (api.ZoneInfo, error) {
	servers, err := s.apiServers()
	if err != nil {
		return api.ZoneInfo{}, err
	}
	n, err := s.db.DeviceCount()
	if err != nil {
		return api.ZoneInfo{}, err
	}
	ca := api.CA{
		Subject:   s.zoneCA().Subject.String(),
		NotBefore: s.zoneCA().NotBefore.UTC(),
		NotAfter:  s.zoneCA().NotAfter.UTC(),
		Key:       pki.KeyDescription(s.zoneCA().PublicKey),
		SHA256:    pki.Fingerprint(s.zoneCA(), "sha256"),
		Status:    pki.Status(s.zoneCA(), s.now()),
		Internal:  s.zone.CAInternal,
	}
	if ca.CertAuthRole, err = certificates.CertAuthServer(s.db); err != nil {
		return api.ZoneInfo{}, err
	}
	return api.ZoneInfo{ID: s.zone.ID, Name: s.zone.Name, Created: s.zone.Created, CA: ca, Servers: servers, DeviceCount: n}, nil
}

func (s *Server) getZone(w http.ResponseWriter, r *http.Request, _ string) error {
	info, err := s.zoneInfo()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) apiServers() ([]api.Server, error) {
	return s.apiServersWith(nil)
}

// apiServersWith lists the servers; with replication states (server-list)
// it adds each server's own report. Database and MasterPrimary follow the
// replication leader: the store's copy of them is only a default.
func (s *Server) apiServersWith(repl map[string]*replica.Status) ([]api.Server, error) {
	servers, err := s.db.Servers()
	if err != nil {
		return nil, err
	}
	leaderID := ""
	if s.rep != nil {
		leaderID, _ = s.rep.Leader()
	}
	var commit uint64
	for _, st := range repl {
		if st.State == "Leader" && st.CommitIndex > commit {
			commit = st.CommitIndex
		}
	}
	out := make([]api.Server, 0, len(servers))
	for _, sv := range servers {
		roles := make([]string, 0, len(sv.Roles))
		for _, r := range sv.Roles {
			if s.rep != nil && (r == zone.RoleDatabase || r == zone.RoleMasterPrimary) {
				continue
			}
			roles = append(roles, string(r))
		}
		if s.rep != nil && sv.ID == leaderID {
			roles = append(roles, string(zone.RoleDatabase), string(zone.RoleMasterPrimary))
		}
		a := api.Server{ID: sv.ID, Name: sv.Name, DNSNames: sv.DNSNames, IPs: sv.IPs, Port: sv.Port,
			Roles: roles, Version: sv.Version, CertNotAfter: sv.CertNotAfter, Address: sv.Address}
		if repl != nil {
			a.Replication = &api.Replication{State: "unreachable"}
			if st := repl[sv.ID]; st != nil {
				a.Replication = &api.Replication{State: st.State, Term: st.Term, Commit: st.CommitIndex, Applied: st.Applied, LastContact: st.LastContact,
					Voter: st.Voter, LeaderID: st.LeaderID, Incarnation: st.Incarnation, Problem: st.Problem}
				if commit > st.Applied {
					a.Replication.Behind = commit - st.Applied
				}
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request, _ string) error {
	servers, err := s.db.Servers()
	if err != nil {
		return err
	}
	out, err := s.apiServersWith(s.cluster.ReplicationOf(r.Context(), servers))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listAdmins(w http.ResponseWriter, r *http.Request, _ string) error {
	admins, err := s.db.Admins()
	if err != nil {
		return err
	}
	out := make([]api.Admin, 0, len(admins))
	for _, a := range admins {
		out = append(out, api.Admin{Name: a.Name, Created: a.Created, CreatedBy: a.CreatedBy})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// namePattern keeps object names printable and free of path characters.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// CheckName validates an administrator, group or key name.
func CheckName(what, name string) error {
	if !namePattern.MatchString(name) {
		return errkind.New(errkind.Usage, "%s name %q: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

func (s *Server) createAdmin(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.AdminCreate
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if err := CheckName("administrator", req.Name); err != nil {
		return err
	}
	if err := password.Check(req.Password); err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	var hash string
	var err error
	s.auth.hash(func() { hash, err = password.Hash(req.Password, password.DefaultParams()) })
	if err != nil {
		return err
	}
	a := zone.Admin{Name: req.Name, PasswordHash: hash, Created: s.db.Now(), CreatedBy: actor}
	if err := s.db.Exec(actor, zone.CmdAdminCreate, a); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.Admin{Name: a.Name, Created: a.Created, CreatedBy: a.CreatedBy})
	return nil
}

func (s *Server) deleteAdmin(w http.ResponseWriter, r *http.Request, actor string) error {
	if err := s.db.Exec(actor, zone.CmdAdminDelete, map[string]string{"name": r.PathValue("name")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// maxDevicePage bounds a page of GET /devices?limit=N: the memory of one
// request stays the same whatever the zone's size.
const maxDevicePage = 10000

// listDevices answers GET /devices: every device by name, or with
// ?limit=N[&after=ID] one page of at most N devices in id order, after
// device ID (zman device-list takes pages and sorts). A page is streamed:
// each device is decoded and written in turn, so that the client decodes
// while the server encodes.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, _ string) error {
	ls := r.URL.Query().Get("limit")
	if ls == "" {
		devs, err := s.db.Devices()
		if err != nil {
			return err
		}
		ids := make([]string, len(devs))
		for i, d := range devs {
			ids[i] = d.ID
		}
		memberOf, err := s.groupsOf(ids)
		if err != nil {
			return err
		}
		out := make([]api.Device, 0, len(devs))
		for _, d := range devs {
			out = append(out, apiDevice(d, memberOf[d.ID]))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	limit, err := strconv.Atoi(ls)
	if err != nil || limit < 1 {
		return errkind.New(errkind.Usage, "limit %q: want a positive number of devices", ls)
	}
	page, err := s.db.DevicesPage(r.URL.Query().Get("after"), min(limit, maxDevicePage))
	if err != nil {
		return err
	}
	memberOf, err := s.groupsOf(page.IDs)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// Written as json.Encoder writes each device, through one buffer
	// handed to the connection every 32 KiB.
	buf := make([]byte, 0, 40<<10)
	buf = append(buf, '[')
	sep := false
	err = page.Each(func(d zone.Device) error {
		if sep {
			buf = append(buf, ',')
		}
		sep = true
		ad := apiDevice(d, memberOf[d.ID])
		var err error
		if buf, err = api.AppendDevice(buf, &ad, "", ""); err != nil {
			return err
		}
		buf = append(buf, '\n')
		if len(buf) >= 32<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		return nil
	})
	if err != nil {
		// The status may be sent: cut the answer so that it cannot be
		// taken for a whole page.
		s.log.Error("device list", "err", err)
		panic(http.ErrAbortHandler)
	}
	buf = append(buf, "]\n"...)
	_, err = w.Write(buf)
	return err
}

// groupsOf maps each of ids to the names of the groups listing it.
func (s *Server) groupsOf(ids []string) (map[string][]string, error) {
	groups, err := s.db.Groups()
	if err != nil {
		return nil, err
	}
	memberOf := make(map[string][]string, len(ids))
	for _, id := range ids {
		memberOf[id] = nil
	}
	for _, g := range groups {
		for _, m := range g.Members {
			if gs, ok := memberOf[m]; ok {
				memberOf[m] = append(gs, g.Name)
			}
		}
	}
	return memberOf, nil
}

func apiDevice(d zone.Device, groups []string) api.Device {
	if groups == nil {
		groups = []string{}
	}
	kind := d.Kind
	if kind == "" {
		kind = "zac"
	}
	return api.Device{ID: d.ID, Name: d.Name, Kind: kind, OS: d.OS, Registered: d.Registered, LastContact: d.LastContact,
		Address: d.Address, CertNotAfter: d.CertNotAfter, Groups: groups}
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, actor string) error {
	dev, err := s.db.ResolveDevice(r.PathValue("ref"))
	if err != nil {
		return err
	}
	if err := s.db.Exec(actor, zone.CmdDeviceDelete, map[string]string{"name": dev.ID}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, _ string) error {
	groups, err := s.db.Groups()
	if err != nil {
		return err
	}
	out := make([]api.Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, s.apiGroup(g))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// apiGroup lists a group; a dynamic group's members are the devices its
// filter matches now.
func (s *Server) apiGroup(g zone.Group) api.Group {
	out := api.Group{Name: g.Name, Description: g.Description, Created: g.Created, Members: g.Members}
	if g.Filter != nil {
		f := api.DeviceFilter(*g.Filter)
		out.Filter = &f
		out.Members, _ = s.db.Matching(*g.Filter)
		if out.Members == nil {
			out.Members = []string{}
		}
	}
	return out
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.GroupCreate
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if err := CheckName("group", req.Name); err != nil {
		return err
	}
	g := zone.Group{Name: req.Name, Description: req.Description, Created: s.db.Now(), Members: []string{}}
	if req.Filter != nil {
		f := zone.DeviceFilter(*req.Filter)
		g.Filter = &f
	}
	if err := s.db.Exec(actor, zone.CmdGroupCreate, g); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.apiGroup(g))
	return nil
}

func (s *Server) addGroupDevices(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.GroupAddDevices
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Devices) == 0 {
		return errkind.New(errkind.Usage, "name at least one device")
	}
	ids := make([]string, 0, len(req.Devices))
	for _, ref := range req.Devices {
		dev, err := s.db.ResolveDevice(ref)
		if err != nil {
			return err
		}
		ids = append(ids, dev.ID)
	}
	if err := s.db.Exec(actor, zone.CmdGroupAddDevices, map[string]any{"group": r.PathValue("name"), "devices": ids}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listRegKeys(w http.ResponseWriter, r *http.Request, _ string) error {
	keys, err := s.db.RegKeys()
	if err != nil {
		return err
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Key < keys[j].Key })
	out := make([]api.RegistrationKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, api.RegistrationKey(k))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createRegKey(w http.ResponseWriter, r *http.Request, actor string) error {
	var req api.RegistrationKey
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Key == "" {
		b := make([]byte, 12)
		rand.Read(b)
		req.Key = hex.EncodeToString(b)
	}
	if err := CheckName("registration key", req.Key); err != nil {
		return err
	}
	if req.Limit < 0 {
		return errkind.New(errkind.Usage, "registration key limit must be 0 (unlimited) or more")
	}
	k := zone.RegistrationKey{Key: req.Key, Description: req.Description, Group: req.Group, Limit: req.Limit, Created: s.db.Now()}
	if err := s.db.Exec(actor, zone.CmdRegKeyCreate, k); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.RegistrationKey(k))
	return nil
}

func (s *Server) deleteRegKey(w http.ResponseWriter, r *http.Request, actor string) error {
	if err := s.db.Exec(actor, zone.CmdRegKeyDelete, map[string]string{"name": r.PathValue("key")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bearer returns the request's stored-credential token, if it has one.
func bearer(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok, ok && tok != ""
}
