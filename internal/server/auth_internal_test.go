package server

import (
	"testing"

	"zonekit/internal/password"
)

// The dummy hash must be one Verify accepts as well-formed: a malformed one
// returns at once, and a login with an unknown name would then answer
// faster than one with a known name, telling a guesser which names exist.
func TestDummyHashCostsARealVerify(t *testing.T) {
	ok, err := password.Verify("any password", dummyHash)
	if err != nil {
		t.Fatalf("Verify(dummyHash) = %v: the unknown-name path would skip Argon2id", err)
	}
	if ok {
		t.Fatal("the dummy hash matched a password")
	}
}
