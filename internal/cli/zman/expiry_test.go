package zman

import (
	"strings"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
)

// Each case of certificate-expiry-check ends in the monitoring-plugin
// status, and the message names every certificate of concern.
func TestExpiryCheckStatus(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	ca := api.CertificateAuthority{Subject: "CN=zone CA", NotAfter: now.Add(3000 * day)}
	srv := func(name string, left time.Duration) api.ServerCertificate {
		return api.ServerCertificate{Server: name, Subject: "CN=" + name, NotAfter: now.Add(left)}
	}
	stalled := &api.CertificateChange{Kind: "ca-change", Name: "to Corp", Activation: now.Add(-2 * time.Hour), Stalled: true,
		Servers: []api.FutureServer{{Server: "a"}, {Server: "b", Cert: &api.CertSummary{}}}}
	tests := []struct {
		name    string
		ca      api.CertificateAuthority
		servers []api.ServerCertificate
		change  *api.CertificateChange
		code    int
		says    []string
	}{
		{"ok", ca, []api.ServerCertificate{srv("a", 400*day)}, nil, 0, nil},
		{"expiring", ca, []api.ServerCertificate{srv("a", 30*day+time.Hour), srv("b", 45*day+time.Hour)}, nil, 1,
			[]string{"WARNING: server a in 30 days; server b in 45 days"}},
		{"critical", ca, []api.ServerCertificate{srv("a", 3*day+time.Hour), srv("b", 45*day)}, nil, 2,
			[]string{"CRITICAL: server a in 3 days", "server b in 45 days"}},
		{"expired", api.CertificateAuthority{Subject: "CN=old", NotAfter: now.Add(-day)}, []api.ServerCertificate{srv("a", -time.Hour)}, nil, 2,
			[]string{"CRITICAL: zone CA expired; server a expired"}},
		{"stalled change", ca, []api.ServerCertificate{srv("a", 400*day)}, stalled, 2,
			[]string{"certificate change to Corp stalled"}},
		{"change not yet due", ca, []api.ServerCertificate{srv("a", 400*day)},
			&api.CertificateChange{Name: "soon", Activation: now.Add(time.Hour)}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := expiryList(now, 90, 7, tt.ca, tt.servers, tt.change)
			err := expiryStatus(list, 90)
			if got := errkind.ExitCode(err); got != tt.code {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.code)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		})
	}
	list := expiryList(now, 90, 7, ca, nil, stalled)
	if last := list[len(list)-1]; last.Status != "stalled" || !strings.Contains(last.Detail, "waiting for the certificate of a") || strings.Contains(last.Detail, "a, b") {
		t.Errorf("stalled change line %+v", last)
	}
}
