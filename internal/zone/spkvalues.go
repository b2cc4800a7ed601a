package zone

import (
	"encoding/json"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Values for server software package (CPK) variables are kept at three
// scopes; a device gets the zone's, overridden by its groups' (in name
// order), overridden by its own: the most specific wins.
const (
	ScopeZone   = "zone"
	ScopeGroup  = "group"
	ScopeDevice = "device"

	CmdSPKValuesSet = "spk-values.set"
	spkValuesPrefix = "spk-values/"
)

// SPKValue is one stored value.
type SPKValue struct {
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"` // masked in listings
	// Sealed is a secret value encrypted with the zone's SPK values key
	// (Value is then empty): the store and the raft log never hold it
	// in clear. Values set secret before sealing existed stay in Value.
	Sealed string `json:"sealed,omitempty"`
}

// SPKValues are the values of one scope.
type SPKValues struct {
	Scope  string              `json:"scope"`
	Target string              `json:"target,omitempty"` // group name or device ID
	Values map[string]SPKValue `json:"values"`
}

type spkValuesSet struct {
	Scope  string              `json:"scope"`
	Target string              `json:"target,omitempty"`
	Set    map[string]SPKValue `json:"set,omitempty"`
	Unset  []string            `json:"unset,omitempty"`
}

func spkKey(scope, target string) []byte {
	if scope == ScopeZone {
		return []byte(spkValuesPrefix + ScopeZone)
	}
	return []byte(spkValuesPrefix + scope + "/" + target)
}

func applySPKValuesSet(tx *bolt.Tx, c Command) (string, error) {
	var d spkValuesSet
	if err := decode(c, &d); err != nil {
		return "", err
	}
	switch d.Scope {
	case ScopeZone:
		d.Target = ""
	case ScopeGroup:
		if !exists(tx, store.BucketGroups, d.Target) {
			return "", errkind.New(errkind.NotFound, "group %q not found", d.Target)
		}
	case ScopeDevice:
		if !exists(tx, store.BucketDevices, d.Target) {
			return "", errkind.New(errkind.NotFound, "device %q not found", d.Target)
		}
	default:
		return "", errkind.New(errkind.Usage, "scope %q: want zone, group or device", d.Scope)
	}
	b := tx.Bucket(store.BucketSettings)
	key := spkKey(d.Scope, d.Target)
	cur := SPKValues{Scope: d.Scope, Target: d.Target, Values: map[string]SPKValue{}}
	if data := b.Get(key); data != nil {
		if err := json.Unmarshal(data, &cur); err != nil {
			return "", err
		}
	}
	for k, v := range d.Set {
		cur.Values[k] = v
	}
	for _, k := range d.Unset {
		if _, ok := cur.Values[k]; !ok {
			return "", errkind.New(errkind.NotFound, "%s has no value at %s scope", k, d.Scope)
		}
		delete(cur.Values, k)
	}
	target := strings.TrimSuffix(d.Scope+" "+d.Target, " ")
	if len(cur.Values) == 0 {
		return target, b.Delete(key)
	}
	data, err := json.Marshal(cur)
	if err != nil {
		return "", err
	}
	return target, b.Put(key, data)
}

// SetSPKValues sets and unsets values at one scope.
func (d *DB) SetSPKValues(actor, scope, target string, set map[string]SPKValue, unset []string) error {
	return d.Exec(actor, CmdSPKValuesSet, spkValuesSet{Scope: scope, Target: target, Set: set, Unset: unset})
}

// AllSPKValues lists every scope's values: zone first, then groups, then devices.
func (d *DB) AllSPKValues() ([]SPKValues, error) {
	out, err := listSettings[SPKValues](d.st, spkValuesPrefix)
	sort.SliceStable(out, func(i, j int) bool {
		return scopeLess(out[i].Scope, out[i].Target, out[j].Scope, out[j].Target)
	})
	return out, err
}

// DeviceSPKValues merges the values that apply to a device: zone, then
// its groups in name order, then its own. A name set secret at any scope
// that applies stays secret: the device masks its value whatever the
// package declares.
func (d *DB) DeviceSPKValues(deviceID string) (map[string]SPKValue, error) {
	groups, err := d.Groups()
	if err != nil {
		return nil, err
	}
	member := map[string]bool{}
	for _, g := range groups {
		for _, m := range g.Members {
			if m == deviceID {
				member[g.Name] = true
			}
		}
	}
	all, err := d.AllSPKValues()
	if err != nil {
		return nil, err
	}
	out := map[string]SPKValue{}
	for _, s := range all {
		if s.Scope == ScopeZone || (s.Scope == ScopeGroup && member[s.Target]) || (s.Scope == ScopeDevice && s.Target == deviceID) {
			for k, v := range s.Values {
				v.Secret = v.Secret || out[k].Secret
				out[k] = v
			}
		}
	}
	return out, nil
}

func spkValuesCommands(t *commandTable) { t.add(CmdSPKValuesSet, applySPKValuesSet) }
