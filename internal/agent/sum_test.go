package agent

import (
	"regexp"
	"strings"
	"testing"
)

// isSum accepts exactly what the pattern it replaced did.
func TestIsSum(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{64}$`)
	ok := strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{"", ok, ok[:63], ok + "0", strings.ToUpper(ok), ok[:63] + "g", ok[:63] + "\n"} {
		if got, want := isSum(s), re.MatchString(s); got != want {
			t.Errorf("isSum(%q) = %v, want %v", s, got, want)
		}
	}
}
