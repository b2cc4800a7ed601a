package zone_test

import (
	"testing"

	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/zone"
)

func deviceCAPEM(t *testing.T) string {
	t.Helper()
	ca, err := pki.NewDeviceCA("Acme", t0)
	if err != nil {
		t.Fatal(err)
	}
	return string(pki.EncodeCertPEM(ca.Cert))
}

// The device CA is set only over the one it names as replaced, so that
// two servers creating or rotating it at once cannot both win; the same
// command again changes nothing; the replaced one stays accepted.
func TestDeviceCASet(t *testing.T) {
	db := newDB(t) // external: the test zone has no internal CA
	first, second, third := deviceCAPEM(t), deviceCAPEM(t), deviceCAPEM(t)

	wantErr(t, db.SetDeviceCA("a", zone.DeviceCASet{CertPEM: first}), errkind.Usage, "certificate and sealed key")
	if err := db.SetDeviceCA("a", zone.DeviceCASet{CertPEM: first, SealedKey: "v1:k:1"}); err != nil {
		t.Fatal(err)
	}
	// Replayed: nothing changes, no error.
	if err := db.SetDeviceCA("a", zone.DeviceCASet{CertPEM: first, SealedKey: "v1:k:1"}); err != nil {
		t.Fatalf("replayed: %v", err)
	}
	// A second server that also saw none loses the race.
	err := db.SetDeviceCA("b", zone.DeviceCASet{CertPEM: second, SealedKey: "v1:k:2"})
	if !zone.IsDeviceCAChanged(err) {
		t.Fatalf("racing creation: %v; want the device CA changed meanwhile", err)
	}
	// A rotation names the one it replaces.
	if err := db.SetDeviceCA("a", zone.DeviceCASet{CertPEM: third, SealedKey: "v1:k:3", Replaces: zone.DeviceCAID(first)}); err != nil {
		t.Fatal(err)
	}
	z, _ := db.Zone()
	if z.DeviceCA != third || z.DeviceCAKey != "v1:k:3" {
		t.Fatalf("device CA not rotated: %+v", z)
	}
	if len(z.PreviousCAs) != 1 || z.PreviousCAs[0] != first {
		t.Errorf("the replaced device CA is not kept among the previous CAs: %d", len(z.PreviousCAs))
	}
	recs, _ := db.Audit(100)
	n := 0
	for _, r := range recs {
		if r.Command == zone.CmdDeviceCASet {
			n++
		}
	}
	if n < 2 {
		t.Errorf("%d audit records of %s; want the creation and the rotation", n, zone.CmdDeviceCASet)
	}

	// The zone CA becoming internal retires the device CA: the zone CA
	// issues again, the device CA's certificates are accepted until they
	// expire; and no device CA can be set under an internal CA.
	if err := db.ReplaceCA("a", deviceCAPEM(t), "", true); err != nil {
		t.Fatal(err)
	}
	z, _ = db.Zone()
	if z.DeviceCA != "" || z.DeviceCAKey != "" || z.PreviousCAs[0] != third {
		t.Errorf("device CA not retired under an internal CA: %q, previous %d", z.DeviceCA, len(z.PreviousCAs))
	}
	wantErr(t, db.SetDeviceCA("a", zone.DeviceCASet{CertPEM: second, SealedKey: "v1:k:2"}), errkind.Usage, "internal")
}

func TestDeviceCAID(t *testing.T) {
	if zone.DeviceCAID("") != "" || zone.DeviceCAID("junk") != "" {
		t.Error("no certificate must have no id")
	}
	p := deviceCAPEM(t)
	if id := zone.DeviceCAID(p); len(id) != 64 || id != zone.DeviceCAID(p) {
		t.Errorf("id %q", id)
	}
}
