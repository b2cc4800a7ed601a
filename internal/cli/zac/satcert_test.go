package zac

import (
	"slices"
	"testing"
)

// The reference's single-dash flags of zac iac become zac's names; other
// commands, and arguments after --, are left alone.
func TestReferenceArgs(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"--home", "h", "iac", "-pk", "k.der", "-c", "c.der", "-ca", "ca.der", "-ks", "x.jks", "-ksp", "p", "-a", "al", "-rc"},
			[]string{"--home", "h", "iac", "--pk", "k.der", "-c", "c.der", "--ca", "ca.der", "--ref-ks", "x.jks", "--ref-ksp", "p", "--ref-a", "al", "--ref-rc"}},
		{[]string{"import-authentication-cert", "-pk", "k", "--", "-ca"}, []string{"import-authentication-cert", "--pk", "k", "--", "-ca"}},
		{[]string{"register", "-pk"}, []string{"register", "-pk"}},
	}
	for _, tt := range tests {
		if got := ReferenceArgs(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("ReferenceArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
