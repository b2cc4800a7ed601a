// Package tftp is the preboot TFTP server: RFC 1350 with the option
// extension (RFC 2347), blksize (2348), timeout and tsize (2349) and
// windowsize (7440), block-number rollover for files past 65535 blocks,
// an adaptive retransmission timeout, a root directory nothing escapes,
// and a limit on concurrent transfers.
package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes (RFC 1350, 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes (RFC 1350, 2347).
const (
	errUndefined    = 0
	errNotFound     = 1
	errAccess       = 2
	errDiskFull     = 3
	errIllegalOp    = 4
	errUnknownTID   = 5
	errFileExists   = 6
	errOptionDenied = 8
)

// Option is one requested option, in the order the client sent them.
type Option struct{ Name, Value string }

// Request is a parsed RRQ or WRQ.
type Request struct {
	Write    bool
	Filename string
	Mode     string // lower case: octet or netascii (mail is refused)
	Options  []Option
}

// ParseRequest parses a read or write request. Option names are lower
// cased; a repeated option keeps its first value.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < 2 {
		return Request{}, errors.New("short packet")
	}
	var r Request
	switch binary.BigEndian.Uint16(b) {
	case opRRQ:
	case opWRQ:
		r.Write = true
	default:
		return Request{}, fmt.Errorf("opcode %d is not a request", binary.BigEndian.Uint16(b))
	}
	fields := bytes.Split(b[2:], []byte{0})
	// A well-formed request ends in a NUL, so the last field is empty.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return Request{}, errors.New("request is not NUL-terminated")
	}
	fields = fields[:len(fields)-1]
	r.Filename = string(fields[0])
	r.Mode = strings.ToLower(string(fields[1]))
	if r.Filename == "" {
		return Request{}, errors.New("empty file name")
	}
	if r.Mode != "octet" && r.Mode != "netascii" {
		return Request{}, fmt.Errorf("transfer mode %q is not supported", r.Mode)
	}
	rest := fields[2:]
	if len(rest)%2 != 0 {
		return Request{}, errors.New("option without a value")
	}
	seen := map[string]bool{}
	for i := 0; i < len(rest); i += 2 {
		name := strings.ToLower(string(rest[i]))
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		r.Options = append(r.Options, Option{name, string(rest[i+1])})
	}
	return r, nil
}

// Packet builders. Each appends to dst (which may be nil).

func appendError(dst []byte, code int, msg string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opERROR)
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	dst = append(dst, msg...)
	return append(dst, 0)
}

func appendOACK(dst []byte, opts []Option) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opOACK)
	for _, o := range opts {
		dst = append(dst, o.Name...)
		dst = append(dst, 0)
		dst = append(dst, o.Value...)
		dst = append(dst, 0)
	}
	return dst
}

func appendACK(dst []byte, block uint16) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opACK)
	return binary.BigEndian.AppendUint16(dst, block)
}

// reply is a parsed DATA, ACK or ERROR from a client.
type reply struct {
	op    uint16
	block uint16
	data  []byte // DATA payload
	code  uint16 // ERROR code
	msg   string // ERROR message
}

func parseReply(b []byte) (reply, error) {
	if len(b) < 4 {
		return reply{}, errors.New("short packet")
	}
	r := reply{op: binary.BigEndian.Uint16(b), block: binary.BigEndian.Uint16(b[2:])}
	switch r.op {
	case opDATA:
		r.data = b[4:]
	case opACK:
	case opERROR:
		r.code = r.block
		m := b[4:]
		if i := bytes.IndexByte(m, 0); i >= 0 {
			m = m[:i]
		}
		r.msg = string(m)
	default:
		return reply{}, fmt.Errorf("unexpected opcode %d", r.op)
	}
	return r, nil
}

// describe says what a packet is, for the debugging log (level 4).
func describe(b []byte) string {
	if len(b) < 2 {
		return fmt.Sprintf("%d-byte fragment", len(b))
	}
	op := binary.BigEndian.Uint16(b)
	var num uint16
	if len(b) >= 4 {
		num = binary.BigEndian.Uint16(b[2:])
	}
	switch op {
	case opDATA:
		return fmt.Sprintf("DATA block %d, %d bytes", num, max(len(b)-4, 0))
	case opACK:
		return fmt.Sprintf("ACK block %d", num)
	case opERROR:
		msg, _, _ := bytes.Cut(b[min(4, len(b)):], []byte{0})
		return fmt.Sprintf("ERROR %d %q", num, msg)
	case opOACK:
		return fmt.Sprintf("OACK %q", bytes.ReplaceAll(bytes.TrimRight(b[2:], "\x00"), []byte{0}, []byte{' '}))
	case opRRQ, opWRQ:
		return fmt.Sprintf("request %q", bytes.ReplaceAll(bytes.TrimRight(b[2:], "\x00"), []byte{0}, []byte{' '}))
	}
	return fmt.Sprintf("opcode %d, %d bytes", op, len(b))
}
