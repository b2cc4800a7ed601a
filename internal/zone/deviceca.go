package zone

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// CmdDeviceCASet installs the zone's device-issuing CA (its certificate
// and its key sealed with the zone's sealing key). It applies only while
// the zone CA is external and only over the device CA it names as
// replaced, so that two servers creating or rotating one at the same
// moment cannot both succeed, and applying the same command again
// changes nothing.
const CmdDeviceCASet = "certificate.device-ca-set"

// DeviceCASet is the data of CmdDeviceCASet.
type DeviceCASet struct {
	CertPEM   string `json:"cert_pem"`
	SealedKey string `json:"sealed_key"`
	// Replaces is DeviceCAID of the device CA this one replaces, "" when
	// the zone has none yet.
	Replaces string `json:"replaces"`
}

// DeviceCAID names a device CA certificate (PEM) by the SHA-256 of its
// DER, "" for none.
func DeviceCAID(certPEM string) string {
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:])
}

// ErrDeviceCAChanged is the refusal of a CmdDeviceCASet whose Replaces is
// no longer the zone's device CA: another server created or rotated it
// first.
var ErrDeviceCAChanged = errkind.New(errkind.Exists, "the zone's device CA changed meanwhile (another server created or rotated it): nothing done")

func deviceCACommands(t *commandTable) { t.add(CmdDeviceCASet, applyDeviceCASet) }

func applyDeviceCASet(tx *bolt.Tx, c Command) (string, error) {
	var d DeviceCASet
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if d.CertPEM == "" || d.SealedKey == "" || DeviceCAID(d.CertPEM) == "" {
		return "", errkind.New(errkind.Usage, "a device CA needs its certificate and sealed key")
	}
	var z Zone
	if err := get(tx, store.BucketZone, string(keyZone), &z, "zone"); err != nil {
		return "", err
	}
	if z.DeviceCA == d.CertPEM {
		return z.Name, nil // applied already
	}
	if z.CAInternal {
		return "", errkind.New(errkind.Usage, "the zone CA of %s is internal: it issues device certificates itself, a separate device CA is kept only under an external CA", z.Name)
	}
	if DeviceCAID(z.DeviceCA) != d.Replaces {
		return "", ErrDeviceCAChanged
	}
	if z.DeviceCA != "" {
		// Devices holding a certificate from the replaced device CA stay
		// accepted until it expires, and are asked to renew.
		z.PreviousCAs = append([]string{z.DeviceCA}, z.PreviousCAs...)
	}
	z.DeviceCA, z.DeviceCAKey = d.CertPEM, d.SealedKey
	return z.Name, put(tx, store.BucketZone, string(keyZone), z)
}

// retireDeviceCA is called when the zone CA becomes internal again: the
// zone CA then issues device certificates itself, and the device CA's
// certificates are accepted until they expire, like a replaced CA's.
func retireDeviceCA(z *Zone) {
	if z.DeviceCA == "" {
		return
	}
	z.PreviousCAs = append([]string{z.DeviceCA}, z.PreviousCAs...)
	z.DeviceCA, z.DeviceCAKey = "", ""
}

// SetDeviceCA applies CmdDeviceCASet.
func (d *DB) SetDeviceCA(actor string, set DeviceCASet) error {
	return d.Exec(actor, CmdDeviceCASet, set)
}

// IsDeviceCAChanged reports whether err is ErrDeviceCAChanged, also after
// it crossed the cluster as text.
func IsDeviceCAChanged(err error) bool {
	return err != nil && (errors.Is(err, ErrDeviceCAChanged) || strings.Contains(err.Error(), ErrDeviceCAChanged.Error()))
}
