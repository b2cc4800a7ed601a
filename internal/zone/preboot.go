package zone

import (
	"encoding/json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
)

// bucketPreboot holds the preboot work assigned to machines, keyed by MAC
// address. It is created by the first assignment, so older stores need no
// migration; a store without it has no work assigned.
var bucketPreboot = []byte("preboot-work")

// Preboot commands.
const (
	CmdPrebootAssign = "preboot.assign"
	CmdPrebootClear  = "preboot.clear"
)

// Preboot actions.
const (
	PrebootMenu      = "menu"       // show the named preboot menu
	PrebootImage     = "image"      // restore the named image
	PrebootTakeImage = "take-image" // take an image of the machine under the name
)

// PrebootWork is what a machine (by MAC address, lower case with colons)
// does at its next network boot.
type PrebootWork struct {
	MAC      string    `json:"mac"`
	Action   string    `json:"action"`
	Image    string    `json:"image,omitempty"`
	Menu     string    `json:"menu,omitempty"`
	Device   string    `json:"device,omitempty"` // the registered device's ID, when named
	Assigned time.Time `json:"assigned"`
	Actor    string    `json:"actor"`
}

type prebootClear struct {
	MAC string `json:"mac"`
}

func applyPreboot(tx *bolt.Tx, c Command) (target string, ok bool, err error) {
	switch c.Name {
	case CmdPrebootAssign:
		var w PrebootWork
		if err := decode(c, &w); err != nil {
			return "", true, err
		}
		b, err := tx.CreateBucketIfNotExists(bucketPreboot)
		if err != nil {
			return "", true, err
		}
		w.Assigned, w.Actor = c.Time, c.Actor
		data, err := json.Marshal(w)
		if err != nil {
			return "", true, err
		}
		return w.MAC, true, b.Put([]byte(w.MAC), data)
	case CmdPrebootClear:
		var d prebootClear
		if err := decode(c, &d); err != nil {
			return "", true, err
		}
		b := tx.Bucket(bucketPreboot)
		if b == nil || b.Get([]byte(d.MAC)) == nil {
			return "", true, errkind.New(errkind.NotFound, "no preboot work is assigned to %s", d.MAC)
		}
		return d.MAC, true, b.Delete([]byte(d.MAC))
	}
	return "", false, nil
}

// PrebootWork returns the work assigned to a MAC address.
func (d *DB) PrebootWork(mac string) (PrebootWork, error) {
	var w PrebootWork
	err := d.st.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPreboot)
		var data []byte
		if b != nil {
			data = b.Get([]byte(mac))
		}
		if data == nil {
			return errkind.New(errkind.NotFound, "no preboot work is assigned to %s", mac)
		}
		return json.Unmarshal(data, &w)
	})
	return w, err
}

// PrebootWorks lists every assignment by MAC address.
func (d *DB) PrebootWorks() ([]PrebootWork, error) {
	out := []PrebootWork{}
	err := d.st.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPreboot)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var w PrebootWork
			if err := json.Unmarshal(v, &w); err != nil {
				return err
			}
			out = append(out, w)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out, err
}
