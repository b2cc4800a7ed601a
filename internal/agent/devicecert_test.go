package agent

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"zonekit/internal/pki"
)

// A device certificate from the zone's device CA (under an external zone
// CA) is taken when the zone names that CA; one from a CA the zone did
// not name, or for another key, is refused.
func TestCheckDeviceCertIssuers(t *testing.T) {
	now := time.Now()
	zoneCA, err := pki.NewCA("Acme", pki.ECDSAP256, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	deviceCA, err := pki.NewDeviceCA("Acme", now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, "dev")
	cert, err := deviceCA.SignDeviceCSR(csr, "dev", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDeviceCert(cert, []*x509.Certificate{zoneCA.Cert, deviceCA.Cert}, key.Public()); err != nil {
		t.Errorf("certificate from the named device CA refused: %v", err)
	}
	if err := checkDeviceCert(cert, []*x509.Certificate{zoneCA.Cert}, key.Public()); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("certificate from a CA the zone did not name: %v", err)
	}
	other, _ := pki.GenerateKey(pki.ECDSAP256)
	if err := checkDeviceCert(cert, []*x509.Certificate{deviceCA.Cert}, other.Public()); err == nil {
		t.Error("certificate for another key accepted")
	}
}
