package pki

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	c := &x509.Certificate{NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(1, 0, 0)}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{now, "valid"},
		{c.NotAfter.Add(-ExpiringWithin - time.Hour), "valid"},
		{c.NotAfter.Add(-ExpiringWithin + time.Hour), "expiring"},
		{c.NotAfter.Add(time.Second), "expired"},
		{c.NotBefore.Add(-time.Second), "expired"},
	} {
		if got := Status(c, tc.at); got != tc.want {
			t.Errorf("Status at %s = %q, want %q", tc.at, got, tc.want)
		}
	}
}
