package zone

import (
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Satellite roles a managed device can hold. Only the content role is
// served today (zac satellite-serve); the others are refused by name.
const (
	SatelliteContent = "Content"
)

// Satellite is what a device does for its site besides being managed.
type Satellite struct {
	Roles      []string  `json:"roles"`
	ContentURL string    `json:"content_url,omitempty"` // http://HOST:PORT/content: where agents fetch fragments
	Parent     string    `json:"parent,omitempty"`      // content URL it pulls from
	Added      time.Time `json:"added"`
}

// Satellite commands.
const (
	CmdSatelliteAddRole    = "satellite.add-role"
	CmdSatelliteRemoveRole = "satellite.remove-role"
)

type satelliteRole struct {
	Device     string    `json:"device"`
	Role       string    `json:"role"`
	ContentURL string    `json:"content_url,omitempty"`
	Parent     string    `json:"parent,omitempty"`
	Time       time.Time `json:"time"`
}

// SatelliteRoleChange builds the data of a satellite command.
func SatelliteRoleChange(device, role, contentURL, parent string, t time.Time) any {
	return satelliteRole{Device: device, Role: role, ContentURL: contentURL, Parent: parent, Time: t}
}

func applySatellite(tx *bolt.Tx, c Command) (string, bool, error) {
	switch c.Name {
	case CmdSatelliteAddRole, CmdSatelliteRemoveRole:
	default:
		return "", false, nil
	}
	var d satelliteRole
	if err := decode(c, &d); err != nil {
		return "", true, err
	}
	var dev Device
	if err := get(tx, store.BucketDevices, d.Device, &dev, "device"); err != nil {
		return "", true, err
	}
	if c.Name == CmdSatelliteAddRole {
		if d.Role != SatelliteContent {
			return "", true, errkind.New(errkind.Usage, "satellite role %q: only %s is supported", d.Role, SatelliteContent)
		}
		if dev.Kind != "" {
			return "", true, errkind.New(errkind.Usage, "device %s is a %s agent: only zac devices can be satellites", dev.Name, dev.Kind)
		}
		if dev.Satellite == nil {
			dev.Satellite = &Satellite{Added: d.Time}
		}
		if !slices.Contains(dev.Satellite.Roles, d.Role) {
			dev.Satellite.Roles = append(dev.Satellite.Roles, d.Role)
		}
		dev.Satellite.ContentURL, dev.Satellite.Parent = d.ContentURL, d.Parent
	} else {
		if dev.Satellite == nil || !slices.Contains(dev.Satellite.Roles, d.Role) {
			return "", true, errkind.New(errkind.NotFound, "device %s does not hold the %s satellite role", dev.Name, d.Role)
		}
		dev.Satellite.Roles = slices.DeleteFunc(dev.Satellite.Roles, func(r string) bool { return r == d.Role })
		if len(dev.Satellite.Roles) == 0 {
			dev.Satellite = nil
		}
	}
	return dev.ID, true, put(tx, store.BucketDevices, dev.ID, dev)
}
