package backuprestore

import (
	"testing"

	"zonekit/internal/errkind"
)

func TestSameMajor(t *testing.T) {
	for _, tc := range []struct {
		backup, ours string
		ok           bool
	}{
		{"0.1.0-dev", "0.1.0-dev", true},
		{"0.1.0", "0.9.3", true},
		{"v1.2.3", "1.0.0", true},
		{"1.0.0", "0.1.0-dev", false},
		{"2.0.0", "1.9.9", false},
	} {
		err := sameMajor(tc.backup, tc.ours)
		if (err == nil) != tc.ok {
			t.Errorf("sameMajor(%q, %q) = %v, want ok=%v", tc.backup, tc.ours, err, tc.ok)
		}
		if err != nil && errkind.Of(err) != errkind.Invalid {
			t.Errorf("sameMajor(%q, %q): kind %v, want Invalid (exit 1)", tc.backup, tc.ours, errkind.Of(err))
		}
	}
}
