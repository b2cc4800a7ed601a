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
	CmdPrebootReport = "preboot.report" // an imaging task's progress
)

// States of an imaging task (image and take-image work). A task is
// served to the machine only while queued, so it runs once.
const (
	TaskQueued  = "queued"
	TaskRunning = "running"
	TaskDone    = "done"
	TaskFailed  = "failed"
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
	MAC    string `json:"mac"`
	Action string `json:"action"`
	Image  string `json:"image,omitempty"`
	Menu   string `json:"menu,omitempty"`
	Device string `json:"device,omitempty"` // the registered device's ID, when named
	// A multicast restore: the machines with the same session restore the
	// image together, once Clients have joined or Wait seconds after the
	// first did.
	Session  string    `json:"session,omitempty"`
	Clients  int       `json:"clients,omitempty"`
	Wait     int       `json:"wait,omitempty"`
	Assigned time.Time `json:"assigned"`
	Actor    string    `json:"actor"`
	// The task's state (image actions only; an assignment from before
	// tasks had states reads as queued).
	Status   string    `json:"status,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Bytes    int64     `json:"bytes,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// IsTask reports whether the work is an imaging task (it has a state).
func (w PrebootWork) IsTask() bool {
	return w.Action == PrebootImage || w.Action == PrebootTakeImage
}

// State is the task's state, queued for an assignment stored before
// tasks had one.
func (w PrebootWork) State() string {
	if w.IsTask() && w.Status == "" {
		return TaskQueued
	}
	return w.Status
}

// PrebootReport is an imaging task's progress, reported by the imaging
// service for the machine: running when the imaging environment begins,
// then done or failed with the bytes moved and the error.
type PrebootReport struct {
	MAC    string `json:"mac"`
	Status string `json:"status"`
	Bytes  int64  `json:"bytes,omitempty"`
	Error  string `json:"error,omitempty"`
}

type prebootClear struct {
	MAC string `json:"mac"`
}

// nextState checks a task's move: queued -> running -> done or failed
// (queued -> failed too, for a machine that fails before it starts).
// A finished task does not move again.
func nextState(from, to string) bool {
	switch to {
	case TaskRunning:
		return from == TaskQueued
	case TaskDone:
		return from == TaskRunning
	case TaskFailed:
		return from == TaskQueued || from == TaskRunning
	}
	return false
}

func applyPrebootAssign(tx *bolt.Tx, c Command) (string, error) {
	var w PrebootWork
	if err := decode(c, &w); err != nil {
		return "", err
	}
	b, err := tx.CreateBucketIfNotExists(bucketPreboot)
	if err != nil {
		return "", err
	}
	w.Assigned, w.Actor = c.Time, c.Actor
	w.Status, w.Started, w.Finished, w.Bytes, w.Error = "", time.Time{}, time.Time{}, 0, ""
	if w.IsTask() {
		w.Status = TaskQueued
	}
	data, err := json.Marshal(w)
	if err != nil {
		return "", err
	}
	return w.MAC, b.Put([]byte(w.MAC), data)
}

func applyPrebootClear(tx *bolt.Tx, c Command) (string, error) {
	var d prebootClear
	if err := decode(c, &d); err != nil {
		return "", err
	}
	b := tx.Bucket(bucketPreboot)
	if b == nil || b.Get([]byte(d.MAC)) == nil {
		return "", errkind.New(errkind.NotFound, "no preboot work is assigned to %s", d.MAC)
	}
	return d.MAC, b.Delete([]byte(d.MAC))
}

func applyPrebootReport(tx *bolt.Tx, c Command) (string, error) {
	var rep PrebootReport
	if err := decode(c, &rep); err != nil {
		return "", err
	}
	b := tx.Bucket(bucketPreboot)
	var data []byte
	if b != nil {
		data = b.Get([]byte(rep.MAC))
	}
	if data == nil {
		return "", errkind.New(errkind.NotFound, "no preboot work is assigned to %s", rep.MAC)
	}
	var w PrebootWork
	if err := json.Unmarshal(data, &w); err != nil {
		return "", err
	}
	if !w.IsTask() {
		return "", errkind.New(errkind.Invalid, "the preboot work of %s is a menu, not an imaging task", rep.MAC)
	}
	if !nextState(w.State(), rep.Status) {
		return "", errkind.New(errkind.Exists, "the imaging task of %s is %s; it cannot become %s", rep.MAC, w.State(), rep.Status)
	}
	w.Status = rep.Status
	switch rep.Status {
	case TaskRunning:
		w.Started = c.Time
	default:
		w.Finished, w.Bytes, w.Error = c.Time, rep.Bytes, rep.Error
		if w.Started.IsZero() {
			w.Started = c.Time
		}
	}
	out, err := json.Marshal(w)
	if err != nil {
		return "", err
	}
	return rep.MAC, b.Put([]byte(rep.MAC), out)
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

func prebootCommands(t *commandTable) {
	t.add(CmdPrebootAssign, applyPrebootAssign)
	t.add(CmdPrebootClear, applyPrebootClear)
	t.add(CmdPrebootReport, applyPrebootReport)
}
