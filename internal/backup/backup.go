// Package backup is the encrypted archive format of a zone server backup
// and its content.
//
// Two layers, each usable alone:
//
//   - Encrypt and Decrypt are the file format: a checksummed header that
//     holds Argon2id parameters and a random data key wrapped by the
//     passphrase, then the payload in authenticated chunks (ChaCha20-Poly1305
//     in the STREAM construction). Decrypt's reader returns io.EOF only after
//     the authenticated final chunk, so a damaged or truncated file is
//     always an error, never a short but "valid" read.
//   - Pack, Unpack and Verify are the content: a zstd-compressed tar stream
//     that starts with info.json, holds the files and directories of the
//     server home, and ends with manifest.json listing every entry with its
//     SHA-256. Unpack refuses hostile entries and writes only inside its
//     staging directory.
//
// Both work in constant memory whatever the size of the backup.
// docs/backup-format.md is the byte-by-byte specification.
package backup

import (
	"errors"
	"fmt"

	"zonekit/internal/errkind"
	"zonekit/internal/password"
)

// MinPassphraseLen is the shortest passphrase Encrypt accepts, in characters.
const MinPassphraseLen = password.MinPassphraseLength

// CheckPassphrase enforces the passphrase policy for new backups (see
// password.CheckPassphrase); the error is of kind errkind.Usage.
func CheckPassphrase(p []byte) error { return password.CheckPassphrase(string(p)) }

// ErrWrongPassphrase is returned by Decrypt when the passphrase does not
// open the backup's key. Its kind is errkind.Passphrase (exit status 12).
var ErrWrongPassphrase = errkind.New(errkind.Passphrase, "wrong passphrase")

// ErrDamaged is in the chain of every error caused by a damaged, truncated
// or malformed backup (errors.Is(err, ErrDamaged)); their messages start
// with "backup is damaged: ". Their kind is errkind.Failure.
var ErrDamaged = errors.New("backup is damaged")

// damaged returns an ErrDamaged error with a detail.
func damaged(format string, args ...any) error {
	return errkind.Wrap(errkind.Failure, fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, args...)))
}
