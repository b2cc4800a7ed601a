// Package password hashes administrator passwords with Argon2id, a
// memory-hard function, in the PHC string format so parameters can change
// without breaking stored hashes.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"

	"zonekit/internal/errkind"
)

// Params are Argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams follow the OWASP recommendation for Argon2id (m=46 MiB, t=1, p=1).
func DefaultParams() Params { return Params{Memory: 46 * 1024, Time: 1, Threads: 1} }

// MinLength is the shortest password accepted for an administrator.
const MinLength = 8

var b64 = base64.RawStdEncoding

// Hash returns a PHC-format Argon2id hash of pw.
func Hash(pw string, p Params) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	sum := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

const (
	minSaltLen = 8
	minSumLen  = 16
)

// ErrMalformed means a stored hash cannot be read.
var ErrMalformed = errors.New("malformed password hash")

// Verify reports whether pw matches the PHC hash, in constant time.
func Verify(pw, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrMalformed
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, ErrMalformed
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, ErrMalformed
	}
	// Bound the cost so a tampered hash cannot make a login allocate gigabytes.
	if p.Memory == 0 || p.Memory > 1<<20 || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return false, ErrMalformed
	}
	// Hash makes 16-byte salts and 32-byte sums; a short sum would let a
	// tampered hash accept random passwords (a 1-byte sum matches 1 in 256).
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen {
		return false, ErrMalformed
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < minSumLen {
		return false, ErrMalformed
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// MinPassphraseLength is the shortest passphrase for a file that protects
// keys (backups, exported CA key pairs), in characters.
const MinPassphraseLength = 10

// CheckPassphrase enforces MinPassphraseLength; the error is a usage error.
func CheckPassphrase(p string) error {
	if n := len([]rune(p)); n < MinPassphraseLength {
		return errkind.New(errkind.Usage, "the passphrase must be at least %d characters (it has %d)", MinPassphraseLength, n)
	}
	return nil
}

// Check enforces the password policy for new administrator passwords.
func Check(pw string) error {
	if len([]rune(pw)) < MinLength {
		return fmt.Errorf("password must be at least %d characters", MinLength)
	}
	return nil
}
