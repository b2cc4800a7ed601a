// Package errkind gives errors a kind that scripts can tell apart, and maps
// each kind to the exit status every zonekit program uses.
package errkind

import (
	"errors"
	"fmt"
)

// Kind classifies an error for exit codes and API status codes.
type Kind int

const (
	Failure      Kind = iota // anything else
	Usage                    // bad flags or arguments
	Auth                     // wrong credentials or not allowed
	NotFound                 // the named object does not exist
	Exists                   // the object already exists
	Passphrase               // wrong passphrase for an encrypted file
	Cancelled                // the user interrupted a prompt or the run
	Unavailable              // the server or store could not be reached
	Invalid                  // input data (an archive, a request) is damaged or refused
	Pending                  // the command worked but work remains (packages not yet deployed)
	PartlyFailed             // the command ran to its end, but some of its items failed (zac: package results)
	Busy                     // another process holds the resource (zac: the download engine)
	// Refused is a request the zone (or the tool, in its present state)
	// will not carry out as it stands: a rule or a missing precondition,
	// not a mistake on the command line. Every error answer of a zone
	// server that is not of a more specific kind is one.
	Refused
)

// The one table of exit statuses. Auth shares 1 with Failure on purpose: a
// failed login must not tell a guesser more than "it failed".
var exitCodes = map[Kind]int{
	Failure:      1,
	Auth:         1,
	Usage:        2,
	NotFound:     3,
	Exists:       4,
	Unavailable:  5,
	Invalid:      1,
	Pending:      6,
	PartlyFailed: 7,
	Busy:         8,
	Refused:      1,
	Passphrase:   12,
	Cancelled:    130,
}

// ExitStatusHelp is the EXIT STATUS text carried by every command's help.
const ExitStatusHelp = `EXIT STATUS
  0    success
  1    failure, including a failed login, damaged input and a request the
       zone server refused
  2    usage error on the command line (unknown flag, missing argument)
  3    the named object was not found
  4    the object already exists
  5    the zone server or store could not be reached
  6    work remains (zac: assigned packages not all deployed yet)
  7    done, but some items failed (zac: a package ended with an ERR_ result)
  8    busy: another process holds the work (zac: another engine is deploying)
  12   wrong passphrase
  130  cancelled by the user`

// Error is an error with a kind.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a formatted message.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// Wrap gives err the kind k; a nil err stays nil.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// Of returns the kind of the outermost classified error in err's chain.
func Of(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Failure
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && Of(err) == k }

// ExitCode maps err to a process exit status; nil is 0. An error from
// WithStatus keeps its own status.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var st *statusError
	if errors.As(err, &st) {
		return st.code
	}
	return exitCodes[Of(err)]
}

// statusError carries an exit status of another convention.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// HasStatus reports whether err carries a status from WithStatus.
func HasStatus(err error) bool {
	var st *statusError
	return errors.As(err, &st)
}

// WithStatus gives err the exit status code, for the few commands that
// speak another convention than the table above (certificate-expiry-check
// speaks the monitoring plugins': 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
// err keeps its kind for everything else.
func WithStatus(code int, err error) error {
	if err == nil {
		return nil
	}
	return &statusError{code: code, err: err}
}
