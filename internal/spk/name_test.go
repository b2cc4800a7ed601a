package spk

import (
	"regexp"
	"testing"
)

// isName accepts exactly what the pattern it replaced did.
func TestIsName(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	for _, s := range []string{"", "a", "_", "A9", "9a", "a-b", "a b", "héllo", "abc_DEF_123", "_1", "Z", "a\n", "\x00"} {
		if got, want := isName(s), re.MatchString(s); got != want {
			t.Errorf("isName(%q) = %v, want %v", s, got, want)
		}
	}
}
