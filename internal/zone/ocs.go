package zone

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/api"
	"zonekit/internal/store"
)

// KindOCS marks devices that are OCS Inventory NG agents.
const KindOCS = "ocs"

// Commands for OCS agents.
const (
	CmdOCSContact   = "device.ocs-contact"
	CmdOCSInventory = "device.ocs-inventory"
	inventoryPrefix = "inventory/"
)

// OCSDeviceID is the zone's device ID for an OCS agent's DEVICEID: the
// same agent is the same device across runs, and the ID cannot collide
// with zonekit agents' random ones (it has a prefix).
func OCSDeviceID(agentID string) string {
	sum := sha256.Sum256([]byte(agentID))
	return "ocs-" + hex.EncodeToString(sum[:12])
}

// Inventory is what an OCS agent reported about its machine; the record
// is stored and answered in the API's form.
type Inventory = api.Inventory

// InventorySoftware is one installed package.
type InventorySoftware = api.InventorySoftware

// MaxInventorySoftware bounds what is kept of a software list.
const MaxInventorySoftware = 5000

type ocsContact struct {
	Device Device `json:"device"` // as it would be created
}

type ocsInventory struct {
	ID        string    `json:"id"`
	Inventory Inventory `json:"inventory"`
}

func applyOCSContact(tx *bolt.Tx, c Command) (string, error) {
	var d ocsContact
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var dev Device
	if err := get(tx, store.BucketDevices, d.Device.ID, &dev, "device"); err != nil {
		dev = d.Device // first contact: the agent becomes a device
	} else {
		dev.LastContact, dev.Address = d.Device.LastContact, d.Device.Address
	}
	return dev.ID, put(tx, store.BucketDevices, dev.ID, dev)
}

func applyOCSInventory(tx *bolt.Tx, c Command) (string, error) {
	var d ocsInventory
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var dev Device
	if err := get(tx, store.BucketDevices, d.ID, &dev, "device"); err != nil {
		return "", err
	}
	if d.Inventory.Hostname != "" {
		dev.Name = d.Inventory.Hostname
	}
	if d.Inventory.OS != "" {
		dev.OS = d.Inventory.OS
	}
	if err := put(tx, store.BucketDevices, dev.ID, dev); err != nil {
		return "", err
	}
	data, err := json.Marshal(d.Inventory)
	if err != nil {
		return "", err
	}
	return dev.ID, tx.Bucket(store.BucketSettings).Put([]byte(inventoryPrefix+dev.ID), data)
}

// OCSContact records an OCS agent's contact, creating its device the first time.
func (d *DB) OCSContact(dev Device) error {
	return d.ExecBatch("ocs:"+dev.ID, CmdOCSContact, ocsContact{Device: dev})
}

// SetInventory stores an OCS agent's inventory.
func (d *DB) SetInventory(id string, inv Inventory) error {
	return d.ExecBatch("ocs:"+id, CmdOCSInventory, ocsInventory{ID: id, Inventory: inv})
}

// Inventory returns a device's last inventory, if any.
func (d *DB) Inventory(id string) (*Inventory, error) {
	var inv *Inventory
	err := d.st.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(store.BucketSettings).Get([]byte(inventoryPrefix + id))
		if data == nil {
			return nil
		}
		inv = &Inventory{}
		return json.Unmarshal(data, inv)
	})
	return inv, err
}

// OCS contacts and inventories are routine bookkeeping, not audited.
func ocsCommands(t *commandTable) {
	t.addUnaudited(CmdOCSContact, applyOCSContact)
	t.addUnaudited(CmdOCSInventory, applyOCSInventory)
}
