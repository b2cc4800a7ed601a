// Package jsonscan reads and writes JSON of a known, flat shape without
// reflection: the fast path of the device list's codecs (100,000
// records a listing), which fall back to encoding/json for anything
// outside the plain form this package accepts, so that they always give
// encoding/json's result and errors.
package jsonscan

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Scanner walks JSON text. Any step that meets something it does not
// handle sets Bad, after which every step is a no-op: the caller checks
// Bad once at the end and then decodes with encoding/json instead.
type Scanner struct {
	B   []byte
	I   int
	Bad bool
}

func (s *Scanner) ws() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Peek returns the next byte after white space, 0 at the end or once Bad.
func (s *Scanner) Peek() byte {
	if s.Bad {
		return 0
	}
	s.ws()
	if s.I >= len(s.B) {
		return 0
	}
	return s.B[s.I]
}

// Expect consumes c, after white space.
func (s *Scanner) Expect(c byte) {
	if s.Peek() != c {
		s.Bad = true
		return
	}
	s.I++
}

// Next consumes c if it comes next; it reports whether it did.
func (s *Scanner) Next(c byte) bool {
	if s.Peek() == c {
		s.I++
		return true
	}
	return false
}

// Quoted returns the next value, a string in plain form, with its
// quotes: no escapes, no control characters, valid UTF-8 (what the
// string's bytes are once decoded). Anything else sets Bad.
func (s *Scanner) Quoted() []byte {
	if s.Peek() != '"' {
		s.Bad = true
		return nil
	}
	start := s.I
	ascii := true
	for i := start + 1; i < len(s.B); i++ {
		c := s.B[i]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(s.B[start+1:i]) {
				s.Bad = true
				return nil
			}
			s.I = i + 1
			return s.B[start : i+1]
		case c == '\\' || c < 0x20:
			s.Bad = true
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	s.Bad = true
	return nil
}

// Str is Quoted without the quotes.
func (s *Scanner) Str() []byte {
	q := s.Quoted()
	if len(q) < 2 {
		return nil
	}
	return q[1 : len(q)-1]
}

// StrIn is Str as a part of text, which holds the same bytes as B: a
// decoder that converts its input to a string once takes every string
// value from it without an allocation of its own.
func (s *Scanner) StrIn(text string) string {
	q := s.Quoted()
	if len(q) < 2 {
		return ""
	}
	return text[s.I-len(q)+1 : s.I-1]
}

// Time decodes the next value as encoding/json decodes a time.Time.
func (s *Scanner) Time(t *time.Time) {
	q := s.Quoted()
	if s.Bad {
		return
	}
	if err := t.UnmarshalJSON(q); err != nil {
		s.Bad = true
	}
}

// Strings decodes an array of plain strings, parts of text (StrIn); an
// empty array is an empty,
// non-nil slice, as encoding/json makes it.
func (s *Scanner) Strings(text string) []string {
	s.Expect('[')
	out := []string{}
	if s.Next(']') {
		return out
	}
	for !s.Bad {
		out = append(out, s.StrIn(text))
		if !s.Next(',') {
			s.Expect(']')
			break
		}
	}
	return out
}

// End reports whether only white space is left and nothing was Bad.
func (s *Scanner) End() bool {
	s.ws()
	return !s.Bad && s.I == len(s.B)
}

// AppendString appends str as encoding/json writes a string (HTML
// characters, U+2028 and U+2029 escaped; invalid UTF-8 replaced).
func AppendString(b []byte, str string) []byte {
	if !safe(str) {
		q, _ := json.Marshal(str) // a string always encodes
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, str...)
	return append(b, '"')
}

// safe reports whether encoding/json writes str unchanged between quotes.
func safe(str string) bool {
	ascii := true
	for i := 0; i < len(str); i++ {
		c := str[i]
		switch {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if ascii {
		return true
	}
	for _, r := range str {
		if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
			return false // RuneError: invalid UTF-8, or U+FFFD, which the slow path keeps
		}
	}
	return true
}

// AppendTime appends t as encoding/json writes a time.Time.
func AppendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		// What MarshalJSON says of a year out of range.
		_, err = t.MarshalJSON()
		return b, err
	}
	return append(b, '"'), nil
}
