package zone

import (
	"bytes"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Satellite roles a managed device can hold, both served by zac
// satellite-serve; the reference's others (Imaging, Collection) are
// refused by name.
const (
	SatelliteContent        = api.SatelliteContent
	SatelliteAuthentication = api.SatelliteAuthentication
)

// Satellite is what a device does for its site besides being managed.
type Satellite struct {
	Roles      []string `json:"roles"`
	ContentURL string   `json:"content_url,omitempty"` // http://HOST:PORT/content: where agents fetch fragments
	Parent     string   `json:"parent,omitempty"`      // content URL it pulls from
	// Prefetch is how often the satellite pulls the content of every
	// active package ahead of requests (0: on first request only).
	Prefetch time.Duration `json:"prefetch,omitempty"`
	// AuthURL is https://HOST:PORT, where agents reach its Authentication
	// role (its own certificate from the zone CA).
	AuthURL string `json:"auth_url,omitempty"`
	// CertSerial and CertNotAfter are those of the last certificate the
	// zone CA issued for it (zac asr, zac rsc).
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	Added        time.Time `json:"added"`
}

// Satellite commands.
const (
	CmdSatelliteAddRole    = "satellite.add-role"
	CmdSatelliteRemoveRole = "satellite.remove-role"
	CmdSatelliteCert       = "satellite.certificate"
)

type satelliteCert struct {
	Device   string    `json:"device"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

// SatelliteCertIssued builds the data of CmdSatelliteCert: the zone CA
// issued a server certificate for a satellite.
func SatelliteCertIssued(device, serial string, notAfter time.Time) any {
	return satelliteCert{Device: device, Serial: serial, NotAfter: notAfter}
}

type satelliteRole struct {
	Device     string        `json:"device"`
	Role       string        `json:"role"`
	ContentURL string        `json:"content_url,omitempty"`
	Parent     string        `json:"parent,omitempty"`
	AuthURL    string        `json:"auth_url,omitempty"`
	Prefetch   time.Duration `json:"prefetch,omitempty"`
	Time       time.Time     `json:"time"`
}

// SatelliteRole is what one role of a satellite is given: the Content
// role its ContentURL, Parent and Prefetch, the Authentication role its
// AuthURL.
type SatelliteRole struct {
	Role       string
	ContentURL string
	Parent     string
	Prefetch   time.Duration
	AuthURL    string
}

// SatelliteRoleChange builds the data of a satellite command.
func SatelliteRoleChange(device string, r SatelliteRole, t time.Time) any {
	return satelliteRole{Device: device, Role: r.Role, ContentURL: r.ContentURL, Parent: r.Parent, AuthURL: r.AuthURL,
		Prefetch: r.Prefetch, Time: t}
}

func applySatelliteCert(tx *bolt.Tx, c Command) (string, error) {
	var d satelliteCert
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var dev Device
	if err := get(tx, store.BucketDevices, d.Device, &dev, "device"); err != nil {
		return "", err
	}
	if dev.Satellite == nil {
		return "", errkind.New(errkind.NotFound, "device %s holds no satellite role", dev.Name)
	}
	dev.Satellite.CertSerial, dev.Satellite.CertNotAfter = d.Serial, d.NotAfter
	return dev.ID, put(tx, store.BucketDevices, dev.ID, dev)
}

// applySatelliteRole applies satellite.add-role and satellite.remove-role.
func applySatelliteRole(tx *bolt.Tx, c Command) (string, error) {
	var d satelliteRole
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var dev Device
	if err := get(tx, store.BucketDevices, d.Device, &dev, "device"); err != nil {
		return "", err
	}
	if c.Name == CmdSatelliteAddRole {
		if d.Role != SatelliteContent && d.Role != SatelliteAuthentication {
			return "", errkind.New(errkind.Usage, "satellite role %q: only %s and %s are supported", d.Role, SatelliteContent, SatelliteAuthentication)
		}
		if dev.Kind != "" {
			return "", errkind.New(errkind.Refused, "device %s is a %s agent: only zac devices can be satellites", dev.Name, dev.Kind)
		}
		if dev.Satellite == nil {
			dev.Satellite = &Satellite{Added: d.Time}
		}
		if !slices.Contains(dev.Satellite.Roles, d.Role) {
			dev.Satellite.Roles = append(dev.Satellite.Roles, d.Role)
		}
		if d.Role == SatelliteContent {
			dev.Satellite.ContentURL, dev.Satellite.Parent, dev.Satellite.Prefetch = d.ContentURL, d.Parent, d.Prefetch
		} else {
			dev.Satellite.AuthURL = d.AuthURL
		}
	} else {
		if dev.Satellite == nil || !slices.Contains(dev.Satellite.Roles, d.Role) {
			return "", errkind.New(errkind.NotFound, "device %s does not hold the %s satellite role", dev.Name, d.Role)
		}
		dev.Satellite.Roles = slices.DeleteFunc(dev.Satellite.Roles, func(r string) bool { return r == d.Role })
		if d.Role == SatelliteContent {
			dev.Satellite.ContentURL, dev.Satellite.Parent, dev.Satellite.Prefetch = "", "", 0
		} else {
			dev.Satellite.AuthURL = ""
		}
		if len(dev.Satellite.Roles) == 0 {
			dev.Satellite = nil
		}
	}
	if err := indexSatellite(tx, dev); err != nil {
		return "", err
	}
	return dev.ID, put(tx, store.BucketDevices, dev.ID, dev)
}

// indexSatellite keeps the satellite index in step with dev's roles.
func indexSatellite(tx *bolt.Tx, dev Device) error {
	key := []byte(store.SatelliteIndexPrefix + dev.ID)
	if dev.Satellite == nil {
		return tx.Bucket(store.BucketSettings).Delete(key)
	}
	return tx.Bucket(store.BucketSettings).Put(key, []byte{})
}

// SatelliteDevices lists the devices holding satellite roles, by id,
// through the index: it does not read the other devices.
func (d *DB) SatelliteDevices() ([]Device, error) {
	var out []Device
	err := d.st.View(func(tx *bolt.Tx) error {
		prefix := []byte(store.SatelliteIndexPrefix)
		c := tx.Bucket(store.BucketSettings).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var dev Device
			if err := get(tx, store.BucketDevices, string(k[len(prefix):]), &dev, "device"); err != nil {
				if errkind.Of(err) == errkind.NotFound {
					continue
				}
				return err
			}
			if dev.Satellite != nil {
				out = append(out, dev)
			}
		}
		return nil
	})
	return out, err
}

func satelliteCommands(t *commandTable) {
	t.add(CmdSatelliteAddRole, applySatelliteRole)
	t.add(CmdSatelliteRemoveRole, applySatelliteRole)
	t.add(CmdSatelliteCert, applySatelliteCert)
}
