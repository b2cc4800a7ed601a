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
