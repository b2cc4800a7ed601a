package password_test

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"zonekit/internal/password"
)

// cheap keeps the tests fast; the format and checks do not depend on cost.
var cheap = password.Params{Memory: 64, Time: 1, Threads: 1}

func TestHashVerify(t *testing.T) {
	for _, pw := range []string{"correct horse", "", "pässwört ☃", strings.Repeat("x", 1000)} {
		h, err := password.Hash(pw, cheap)
		if err != nil {
			t.Fatalf("Hash: %v", err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Errorf("hash %q is not a PHC argon2id string with its parameters", h)
		}
		ok, err := password.Verify(pw, h)
		if err != nil || !ok {
			t.Errorf("Verify(%q) = %v, %v; want true", pw, ok, err)
		}
		ok, err = password.Verify(pw+"x", h)
		if err != nil || ok {
			t.Errorf("Verify(wrong password) = %v, %v; want false, nil", ok, err)
		}
	}
}

func TestHashIsSalted(t *testing.T) {
	a, _ := password.Hash("same password", cheap)
	b, _ := password.Hash("same password", cheap)
	if a == b {
		t.Error("two hashes of the same password are equal: no salt")
	}
}

// Stored hashes keep working when the defaults change: Verify reads the
// parameters from the hash.
func TestVerifyUsesStoredParams(t *testing.T) {
	h, _ := password.Hash("pw", password.Params{Memory: 128, Time: 2, Threads: 2})
	if ok, err := password.Verify("pw", h); !ok || err != nil {
		t.Errorf("Verify = %v, %v", ok, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, _ := password.Hash("pw", cheap)
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..., salt, sum
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"plain text", "hunter22"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", with(1, "argon2i")},
		{"too few fields", strings.Join(parts[:5], "$")},
		{"too many fields", good + "$x"},
		{"other version", with(2, "v=16")},
		{"version not a number", with(2, "v=x")},
		{"params missing", with(3, "m=64")},
		{"zero memory", with(3, "m=0,t=1,p=1")},
		{"huge memory", with(3, "m=4194304,t=1,p=1")},
		{"memory overflows uint32", with(3, "m=99999999999,t=1,p=1")},
		{"zero time", with(3, "m=64,t=0,p=1")},
		{"huge time", with(3, "m=64,t=1000,p=1")},
		{"zero threads", with(3, "m=64,t=1,p=0")},
		{"negative", with(3, "m=-1,t=1,p=1")},
		{"salt not base64", with(4, "!!!")},
		{"sum not base64", with(5, "***")},
		{"empty sum", with(5, "")},
		{"one-byte sum", with(5, "00")}, // would accept 1 password in 256
		{"short sum", with(5, "AAAAAAAAAAAAAAAAAAAA")},
		{"empty salt", with(4, "")},
		{"short salt", with(4, "c2FsdA")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := password.Verify("pw", tt.hash)
			if ok {
				t.Fatalf("Verify(%q) = true", tt.hash)
			}
			if !errors.Is(err, password.ErrMalformed) {
				t.Errorf("Verify(%q) error = %v, want ErrMalformed", tt.hash, err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		pw string
		ok bool
	}{
		{"", false},
		{"1234567", false},
		{"12345678", true},
		{"ääääääää", true}, // 8 characters, 16 bytes: counted in characters
		{"äääääää", false}, // 7 characters, 14 bytes
		{"a long passphrase", true},
	}
	for _, tt := range tests {
		err := password.Check(tt.pw)
		if (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tt.pw, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "8") {
			t.Errorf("Check(%q) = %q should name the minimum length", tt.pw, err)
		}
	}
}

var costRE = regexp.MustCompile(`[mt]=[+\s]*0*([0-9]{1,12})`)

// costly reports whether hash asks for more than a few MiB of Argon2 work.
func costly(hash string) bool {
	work := uint64(1)
	for _, m := range costRE.FindAllStringSubmatch(hash, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		work *= max(n, 1)
		if work > 1<<12 {
			return true
		}
	}
	return false
}

func FuzzVerify(f *testing.F) {
	// A fixed hash of "pw": every fuzz worker must agree on the one true pair.
	const good = "$argon2id$v=19$m=64,t=1,p=1$7qnA5mCmXt7OkI3J11CKiA$LJCmRikOuE7zS9aeR2YM9PxMX00OqYZvpnGHZ84mggs"
	if ok, _ := password.Verify("pw", good); !ok {
		f.Fatal("the seed hash does not verify")
	}
	f.Add("pw", good)
	f.Add("pw", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$AAAA")
	f.Add("", "$argon2id$v=19$m=1048577,t=1,p=1$$")
	f.Add("x", "$$$$$")
	f.Fuzz(func(t *testing.T, pw, hash string) {
		if costly(hash) {
			return // valid but slow costs teach the fuzzer nothing
		}
		ok, err := password.Verify(pw, hash)
		// Only "pw" was ever hashed; the fuzzer may rewrite good's text
		// (v=19 as v=019) but must never make another password pass.
		if ok && pw != "pw" {
			t.Fatalf("Verify(%q, %q) = true for a hash that was never made from that password", pw, hash)
		}
		if err != nil && !errors.Is(err, password.ErrMalformed) {
			t.Fatalf("Verify error %v is not ErrMalformed", err)
		}
	})
}
