package zone

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Content replication: every Primary Server pulls the package content it
// lacks from its peers. The store holds what the servers need to agree
// on: the schedule, which server holds which package (so that any server
// can answer the status and send agents to a server that has it), and the
// closest-server rules that order the servers for agents.

// Content replication commands.
const (
	CmdContentState          = "content.state"
	CmdContentServer         = "content.server"
	CmdContentScheduleSet    = "content-replication.configure"
	CmdContentReplicateNow   = "content-replication.request"
	CmdClosestServerRuleSet  = "closest-server-rule.set"
	CmdClosestServerRuleDrop = "closest-server-rule.clear"
)

// Content states of one package (or image) on one server.
const (
	ContentPresent  = "present"
	ContentMissing  = "missing"
	ContentInFlight = "in-flight"
	// ContentDamaged: a scrub found the copy damaged and it could not (yet)
	// be repaired from a peer; it is offered to no one.
	ContentDamaged = "damaged"
)

// ImagePrefix marks the content-state records of preboot images (which
// are files of the servers' image directories, not packages).
const ImagePrefix = "image:"

// DefaultReplicationInterval is the schedule of a zone that never set one.
const DefaultReplicationInterval = 15 * time.Minute

const (
	contentStatePrefix = "content-state/"
	closestRulePrefix  = "closest-server/"
)

var keyReplication = []byte("content-replication")

// ContentState is what one server holds of one package or image.
type ContentState struct {
	Server  string    `json:"server"`  // server id
	Package string    `json:"package"` // package id, or ImagePrefix+name
	State   string    `json:"state"`
	Bytes   int64     `json:"bytes"` // held (present) or received so far (in flight)
	Size    int64     `json:"size"`
	Peer    string    `json:"peer,omitempty"` // server id pulled from (in flight, present)
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated"`
}

// ReplicationSchedule is the zone-wide content replication setting.
type ReplicationSchedule struct {
	Interval time.Duration `json:"interval"`
	// Requested is the time of the latest request for a pass on every
	// server now (zman content-replication-schedule --now).
	Requested time.Time `json:"requested,omitzero"`
}

// ClosestServerRule orders the zone's servers for agents: devices try
// Servers (ids) in this order, then the others by name.
type ClosestServerRule struct {
	Scope   string    `json:"scope"`            // zone, group or device
	Target  string    `json:"target,omitempty"` // group name or device id
	Servers []string  `json:"servers"`
	Set     time.Time `json:"set"`
}

type contentServer struct {
	ID          string `json:"id"`
	ContentPort int    `json:"content_port"`
}

type replicateNow struct {
	Time time.Time `json:"time"`
}

// MinReplicationInterval keeps a typo from turning the schedule into a
// busy loop.
const MinReplicationInterval = time.Minute

func contentStateKey(server, pkg string) []byte {
	return []byte(contentStatePrefix + server + "/" + pkg)
}

func closestRuleKey(scope, target string) []byte {
	if scope == ScopeZone {
		return []byte(closestRulePrefix + ScopeZone)
	}
	return []byte(closestRulePrefix + scope + "/" + target)
}

func applyContentState(tx *bolt.Tx, c Command) (string, error) {
	var d ContentState
	if err := decode(c, &d); err != nil {
		return "", err
	}
	switch d.State {
	case ContentPresent, ContentMissing, ContentInFlight, ContentDamaged:
	default:
		return "", errkind.New(errkind.Usage, "content state %q: want present, missing, in-flight or damaged", d.State)
	}
	if !exists(tx, store.BucketServers, d.Server) {
		return "", errkind.New(errkind.NotFound, "server %q not found", d.Server)
	}
	// A report racing the package's deletion must not bring it back.
	if !strings.HasPrefix(d.Package, ImagePrefix) && !exists(tx, store.BucketPackages, d.Package) {
		return d.Package, nil
	}
	return d.Package, put(tx, store.BucketSettings, string(contentStateKey(d.Server, d.Package)), d)
}

func applyContentServer(tx *bolt.Tx, c Command) (string, error) {
	var d contentServer
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var s Server
	if err := get(tx, store.BucketServers, d.ID, &s, "server"); err != nil {
		return "", err
	}
	s.ContentPort = d.ContentPort
	return s.Name, put(tx, store.BucketServers, s.ID, s)
}

func applyContentScheduleSet(tx *bolt.Tx, c Command) (string, error) {
	var d ReplicationSchedule
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if d.Interval < MinReplicationInterval {
		return "", errkind.New(errkind.Usage, "replication interval %s: want at least %s", d.Interval, MinReplicationInterval)
	}
	cur, err := replicationSchedule(tx)
	if err != nil {
		return "", err
	}
	cur.Interval = d.Interval
	return "content-replication", put(tx, store.BucketSettings, string(keyReplication), cur)
}

func applyContentReplicateNow(tx *bolt.Tx, c Command) (string, error) {
	var d replicateNow
	if err := decode(c, &d); err != nil {
		return "", err
	}
	cur, err := replicationSchedule(tx)
	if err != nil {
		return "", err
	}
	cur.Requested = d.Time
	return "content-replication", put(tx, store.BucketSettings, string(keyReplication), cur)
}

func applyClosestServerRuleSet(tx *bolt.Tx, c Command) (string, error) {
	var d ClosestServerRule
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if err := checkRuleScope(tx, &d); err != nil {
		return "", err
	}
	if len(d.Servers) == 0 {
		return "", errkind.New(errkind.Usage, "a closest-server rule names at least one server")
	}
	for i, id := range d.Servers {
		if !exists(tx, store.BucketServers, id) {
			return "", errkind.New(errkind.NotFound, "server %q not found", id)
		}
		if slices.Contains(d.Servers[:i], id) {
			return "", errkind.New(errkind.Usage, "server %q is named twice", id)
		}
	}
	return ruleTarget(d.Scope, d.Target), put(tx, store.BucketSettings, string(closestRuleKey(d.Scope, d.Target)), d)
}

func applyClosestServerRuleDrop(tx *bolt.Tx, c Command) (string, error) {
	settings := tx.Bucket(store.BucketSettings)
	var d ClosestServerRule
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if d.Scope != ScopeZone && d.Scope != ScopeGroup && d.Scope != ScopeDevice {
		return "", errkind.New(errkind.Usage, "scope %q: want zone, group or device", d.Scope)
	}
	key := closestRuleKey(d.Scope, d.Target)
	if settings.Get(key) == nil {
		return "", errkind.New(errkind.NotFound, "no closest-server rule at %s", ruleTarget(d.Scope, d.Target))
	}
	return ruleTarget(d.Scope, d.Target), settings.Delete(key)
}

func ruleTarget(scope, target string) string { return strings.TrimSuffix(scope+" "+target, " ") }

func checkRuleScope(tx *bolt.Tx, d *ClosestServerRule) error {
	switch d.Scope {
	case ScopeZone:
		d.Target = ""
	case ScopeGroup:
		if !exists(tx, store.BucketGroups, d.Target) {
			return errkind.New(errkind.NotFound, "group %q not found", d.Target)
		}
	case ScopeDevice:
		if !exists(tx, store.BucketDevices, d.Target) {
			return errkind.New(errkind.NotFound, "device %q not found", d.Target)
		}
	default:
		return errkind.New(errkind.Usage, "scope %q: want zone, group or device", d.Scope)
	}
	return nil
}

func replicationSchedule(tx *bolt.Tx) (ReplicationSchedule, error) {
	s := ReplicationSchedule{Interval: DefaultReplicationInterval}
	if data := tx.Bucket(store.BucketSettings).Get(keyReplication); data != nil {
		if err := json.Unmarshal(data, &s); err != nil {
			return s, err
		}
	}
	return s, nil
}

// deleteContentStates forgets every server's record of a deleted package.
func deleteContentStates(tx *bolt.Tx, pkg string) error {
	b := tx.Bucket(store.BucketSettings)
	var doomed [][]byte
	c := b.Cursor()
	p := []byte(contentStatePrefix)
	for k, _ := c.Seek(p); k != nil && strings.HasPrefix(string(k), string(p)); k, _ = c.Next() {
		if strings.HasSuffix(string(k), "/"+pkg) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// SetContentState records what server holds of a package or image.
func (d *DB) SetContentState(st ContentState) error {
	return d.ExecBatch("server:"+st.Server, CmdContentState, st)
}

// SetContentPort records the plain-HTTP content port of server id (0 when off).
func (d *DB) SetContentPort(id string, port int) error {
	return d.Exec("server:"+id, CmdContentServer, contentServer{ID: id, ContentPort: port})
}

// ContentStates lists every record, by server id then package.
func (d *DB) ContentStates() ([]ContentState, error) {
	return listSettings[ContentState](d.st, contentStatePrefix)
}

// ContentHolders lists the servers (ids) that hold package pkg present,
// one record lookup per server.
func (d *DB) ContentHolders(pkg string) ([]string, error) {
	var out []string
	err := d.st.View(func(tx *bolt.Tx) error {
		settings := tx.Bucket(store.BucketSettings)
		return tx.Bucket(store.BucketServers).ForEach(func(k, _ []byte) error {
			data := settings.Get(contentStateKey(string(k), pkg))
			if data == nil {
				return nil
			}
			var st ContentState
			if err := json.Unmarshal(data, &st); err != nil {
				return err
			}
			if st.State == ContentPresent {
				out = append(out, string(k))
			}
			return nil
		})
	})
	return out, err
}

// ReplicationSchedule returns the zone's content replication setting.
func (d *DB) ReplicationSchedule() (ReplicationSchedule, error) {
	var s ReplicationSchedule
	err := d.st.View(func(tx *bolt.Tx) (err error) {
		s, err = replicationSchedule(tx)
		return err
	})
	return s, err
}

// ClosestServerRules lists the rules: zone first, then groups, then devices.
func (d *DB) ClosestServerRules() ([]ClosestServerRule, error) {
	out, err := listSettings[ClosestServerRule](d.st, closestRulePrefix)
	sort.SliceStable(out, func(i, j int) bool {
		return scopeLess(out[i].Scope, out[i].Target, out[j].Scope, out[j].Target)
	})
	return out, err
}

// ServerOrder is the order in which device dev tries the zone's servers:
// the servers of the most specific closest-server rule that applies (the
// device's own, then its groups' in name order, then the zone's), then
// the others with first (when given) ahead of the rest by name.
func ServerOrder(servers []Server, rules []ClosestServerRule, groups []Group, dev Device, first string) []Server {
	var rule *ClosestServerRule
	rank := -1
	for i, r := range rules {
		switch {
		case r.Scope == ScopeDevice && r.Target == dev.ID && rank < 2:
			rule, rank = &rules[i], 2
		case r.Scope == ScopeGroup && rank < 1:
			for _, g := range groups {
				if g.Name == r.Target && slices.Contains(g.Members, dev.ID) {
					// rules are sorted by target: the first group by name wins.
					rule, rank = &rules[i], 1
					break
				}
			}
		case r.Scope == ScopeZone && rank < 0:
			rule, rank = &rules[i], 0
		}
	}
	byID := map[string]Server{}
	for _, s := range servers {
		byID[s.ID] = s
	}
	out := make([]Server, 0, len(servers))
	seen := map[string]bool{}
	add := func(id string) {
		if s, ok := byID[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, s)
		}
	}
	if rule != nil {
		for _, id := range rule.Servers {
			add(id)
		}
	}
	add(first)
	rest := slices.Clone(servers)
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	for _, s := range rest {
		add(s.ID)
	}
	return out
}

// Content states and content ports are the servers' own bookkeeping, not
// audited.
func contentCommands(t *commandTable) {
	t.addUnaudited(CmdContentState, applyContentState)
	t.addUnaudited(CmdContentServer, applyContentServer)
	t.add(CmdContentScheduleSet, applyContentScheduleSet)
	t.add(CmdContentReplicateNow, applyContentReplicateNow)
	t.add(CmdClosestServerRuleSet, applyClosestServerRuleSet)
	t.add(CmdClosestServerRuleDrop, applyClosestServerRuleDrop)
}
