package version

import (
	"strings"
	"testing"
)

func TestCompatible(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		ok   bool
	}{
		{"0.1.0-dev", "0.1.0-dev", true},
		{"0.1.0", "0.1.7", true},
		{"v1.2.3", "1.9.0", true},
		{"0.1.0", "0.2.0", false},
		{"1.0.0", "2.0.0", false},
		{"0.1.0", "1.1.0", false},
		{"", "0.1.0", false},
	} {
		err := Compatible(tc.a, tc.b)
		if (err == nil) != tc.ok {
			t.Errorf("Compatible(%q, %q) = %v, want ok=%v", tc.a, tc.b, err, tc.ok)
		}
		if err != nil && tc.a != "" && !(strings.Contains(err.Error(), tc.a) && strings.Contains(err.Error(), tc.b)) {
			t.Errorf("Compatible(%q, %q): %v does not name both versions", tc.a, tc.b, err)
		}
	}
}

func TestLongNamesCommitAndDate(t *testing.T) {
	old := [3]string{Version, Commit, BuildDate}
	t.Cleanup(func() { Version, Commit, BuildDate = old[0], old[1], old[2] })
	Version, Commit, BuildDate = "1.2.3", "0123456789abcdef0123", "2026-12-07T06:00:00Z"
	got := Long()
	if !strings.HasPrefix(got, "1.2.3 (commit 0123456789ab") || !strings.Contains(got, "built 2026-12-07T06:00:00Z)") {
		t.Errorf("Long() = %q", got)
	}
}
