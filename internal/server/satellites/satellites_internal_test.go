package satellites

import "testing"

func TestCommonBits(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"10.1.2.3", "10.1.2.3", 32},
		{"10.1.2.3", "10.1.2.200", 24},
		{"10.1.2.3", "10.1.3.3", 23},
		{"10.1.2.3", "192.168.0.1", 0},
		{"10.1.2.3", "", 0},
		{"fd00::1", "fd00::2", 126},
		{"10.1.2.3", "fd00::1", 0},
	} {
		if got := commonBits(tt.a, tt.b); got != tt.want {
			t.Errorf("commonBits(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
