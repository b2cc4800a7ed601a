package satellite

import (
	"regexp"
	"testing"
)

// isID accepts exactly what the pattern it replaced did.
func TestIsID(t *testing.T) {
	re := regexp.MustCompile(`^[1-9][0-9]{0,18}$`)
	for _, s := range []string{"", "0", "1", "01", "10", "1234567890123456789", "12345678901234567890", "1a", "-1", " 1", "9223372036854775807"} {
		if got, want := isID(s), re.MatchString(s); got != want {
			t.Errorf("isID(%q) = %v, want %v", s, got, want)
		}
	}
}
