package tftp

import (
	"bufio"
	"io"
)

// netasciiEncoder turns a file's LF into CR LF and a bare CR into CR NUL
// (RFC 764), as netascii reads are sent.
type netasciiEncoder struct {
	r       *bufio.Reader
	pending byte // the second byte of a pair that did not fit
	has     bool
}

func (e *netasciiEncoder) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if e.has {
			p[n] = e.pending
			n++
			e.has = false
			continue
		}
		c, err := e.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		switch c {
		case '\n':
			p[n], e.pending, e.has = '\r', '\n', true
		case '\r':
			p[n], e.pending, e.has = '\r', 0, true
		default:
			p[n] = c
		}
		n++
	}
	return n, nil
}

// netasciiDecoder undoes the encoding on a written file: CR LF becomes LF
// and CR NUL becomes CR.
type netasciiDecoder struct {
	w  io.Writer
	cr bool // the previous block ended in CR
}

func (d *netasciiDecoder) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p))
	for _, c := range p {
		if d.cr {
			d.cr = false
			switch c {
			case '\n':
				out = append(out, '\n')
				continue
			case 0:
				out = append(out, '\r')
				continue
			default:
				out = append(out, '\r')
			}
		}
		if c == '\r' {
			d.cr = true
			continue
		}
		out = append(out, c)
	}
	if _, err := d.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
