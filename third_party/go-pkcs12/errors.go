// Copyright 2015 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package pkcs12

import (
	"errors"
	"fmt"
)

var (
	// ErrDecryption represents a failure to decrypt the input.
	ErrDecryption = errors.New("pkcs12: decryption error, incorrect padding")

	// ErrIncorrectPassword is returned when an incorrect password is detected.
	// Usually, P12/PFX data is signed to be able to verify the password.
	ErrIncorrectPassword = errors.New("pkcs12: decryption password incorrect")
)

// NotImplementedError indicates that the input is not currently supported.
type NotImplementedError string

func (e NotImplementedError) Error() string {
	return "pkcs12: " + string(e)
}

// ErrIterationCount is returned by DecodeChainMaxIterations when a KDF
// iteration count is out of bounds. (zonekit patch)
var ErrIterationCount = errors.New("pkcs12: iteration count out of bounds")

// checkIterations refuses a count below 1 or above max (0: no check)
// before any key derivation. (zonekit patch)
func checkIterations(n, max int) error {
	if max > 0 && (n < 1 || n > max) {
		return fmt.Errorf("%w: %d (at most %d)", ErrIterationCount, n, max)
	}
	return nil
}
