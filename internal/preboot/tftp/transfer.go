package tftp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"zonekit/internal/preboot/plog"
	"zonekit/internal/preboot/regfile"
)

// protoError is a failure the client is told about with an ERROR packet.
type protoError struct {
	code int
	msg  string
}

func (e *protoError) Error() string { return fmt.Sprintf("%s (TFTP error %d)", e.msg, e.code) }

// peerError is an ERROR packet the client sent.
type peerError struct {
	code uint16
	msg  string
}

func (e *peerError) Error() string {
	return fmt.Sprintf("client ended the transfer: %q (error %d)", e.msg, e.code)
}

type transfer struct {
	srv   *Server
	st    *state
	req   Request
	peer  netip.AddrPort
	local netip.Addr
	ctx   context.Context
	conn  *pconn

	blksize int
	window  int
	opts    []Option // granted options, echoed in the OACK
	tsize   int64

	rto, srtt, rttvar time.Duration
	haveRTT           bool
	retransmits       int
	bytes             int64
	dallying          bool // a write is stored: answer repeats of its last block for a while
	buf               []byte
	heard             time.Time // when the client last sent a valid packet
}

func (t *transfer) run() {
	start := time.Now()
	t.heard = start
	conn, err := dialUDP(t.local, t.peer)
	if err != nil {
		t.srv.Stats.Failed.Add(1)
		t.srv.log.Logf(plog.Warning, "transfer socket for %s: %v", t.peer, err)
		return
	}
	defer conn.close()
	t.conn = conn
	// A stopping server wakes the transfer from its wait at once.
	stop := context.AfterFunc(t.ctx, conn.wake)
	defer stop()
	verb, dir := "sent", "to"
	if t.req.Write {
		verb, dir = "received", "from"
		err = t.receive()
	} else {
		err = t.send()
	}
	t.srv.Stats.Retransmits.Add(int64(t.retransmits))
	t.srv.Stats.Bytes.Add(t.bytes)
	var pe *peerError
	switch {
	case err == nil:
		if t.req.Write {
			t.srv.Stats.Writes.Add(1)
		} else {
			t.srv.Stats.Reads.Add(1)
		}
		d := time.Since(start)
		t.srv.log.Logf(plog.Transaction, "%s %q %s %s: %d bytes in %s (%.1f MiB/s, blksize %d, windowsize %d, %d retransmissions)",
			verb, t.req.Filename, dir, t.peer, t.bytes, d.Round(time.Millisecond), float64(t.bytes)/(1<<20)/d.Seconds(), t.blksize, t.window, t.retransmits)
		if t.dallying {
			t.dally()
		}
	case errors.As(err, &pe) && t.bytes == 0:
		// Clients that only wanted the size (tsize) end here (UEFI does).
		t.srv.log.Logf(plog.Request, "%s of %q by %s ended by the client after option negotiation: %v", strings.TrimSuffix(verb, "d"), t.req.Filename, t.peer, err)
	default:
		t.srv.Stats.Failed.Add(1)
		var perr *protoError
		if errors.As(err, &perr) {
			t.write(appendError(nil, perr.code, perr.msg))
		}
		what := "read"
		if t.req.Write {
			what = "write"
		}
		t.srv.log.Logf(plog.Warning, "%s of %q by %s failed: %v", what, t.req.Filename, t.peer, err)
	}
}

// cleanName turns a client's file name into a path relative to the root,
// refusing every way out of it. os.Root refuses symbolic links that lead
// out; a leading slash means the root itself, as tftpd-hpa's --secure does.
func cleanName(name string) (string, error) {
	n := strings.ReplaceAll(name, `\`, "/")
	n = strings.TrimLeft(n, "/")
	if n == "" || strings.IndexByte(n, 0) >= 0 {
		return "", &protoError{errAccess, "bad file name"}
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", &protoError{errAccess, "access violation: path leaves the TFTP directory"}
		}
	}
	return path.Clean(n), nil
}

func fsError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &protoError{errNotFound, "file not found"}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &protoError{errDiskFull, "disk full or quota exceeded"}
	default:
		// Permission errors and escapes from the root alike.
		return &protoError{errAccess, "access violation"}
	}
}

// negotiate grants the requested options within the configured limits;
// size is the file's size for tsize, or -1 when unknown.
func (t *transfer) negotiate(size int64) {
	cfg := t.st.cfg
	t.blksize, t.window, t.rto = 512, 1, cfg.Timeout
	for _, o := range t.req.Options {
		v, err := strconv.ParseInt(o.Value, 10, 64)
		if err != nil {
			continue
		}
		switch o.Name {
		case "blksize":
			if v < minBlockSize || v > maxBlockSize {
				continue
			}
			t.blksize = min(int(v), cfg.MaxBlockSize)
			t.opts = append(t.opts, Option{o.Name, strconv.Itoa(t.blksize)})
		case "timeout":
			if v < 1 || v > 255 {
				continue
			}
			t.rto = time.Duration(v) * time.Second
			t.opts = append(t.opts, Option{o.Name, o.Value})
		case "tsize":
			if t.req.Write {
				if v >= 0 {
					t.tsize = v
					t.opts = append(t.opts, Option{o.Name, o.Value})
				}
			} else if size >= 0 {
				t.opts = append(t.opts, Option{o.Name, strconv.FormatInt(size, 10)})
			}
		case "windowsize":
			if v < 1 || v > 65535 {
				continue
			}
			t.window = min(int(v), cfg.MaxWindow)
			t.opts = append(t.opts, Option{o.Name, strconv.Itoa(t.window)})
		}
	}
	t.buf = make([]byte, t.blksize+4+64)
}

// sample feeds a round-trip time into the adaptive timeout (RFC 6298).
func (t *transfer) sample(r time.Duration) {
	if !t.haveRTT {
		t.srtt, t.rttvar, t.haveRTT = r, r/2, true
	} else {
		d := t.srtt - r
		if d < 0 {
			d = -d
		}
		t.rttvar = (3*t.rttvar + d) / 4
		t.srtt = (7*t.srtt + r) / 8
	}
	t.rto = min(max(t.srtt+4*t.rttvar, minRTO), maxRTO)
}

// backoff doubles the timeout after a loss.
func (t *transfer) backoff() {
	t.retransmits++
	t.rto = min(max(t.rto*2, minRTO), maxRTO)
}

// errTimeout is returned by recv when the timeout passed.
var errTimeout = errors.New("timeout")

// recv waits up to the current timeout for a packet from the client, and
// no longer than the client may stay silent.
func (t *transfer) recv() (reply, error) {
	wait := t.rto
	if left := t.st.cfg.Silence - time.Since(t.heard); left < wait {
		wait = max(left, minRTO)
	}
	if err := t.conn.setTimeout(wait); err != nil {
		return reply{}, err
	}
	for {
		if t.ctx.Err() != nil {
			return reply{}, errors.New("server stopping")
		}
		n, err := t.conn.read(t.buf)
		if err == errWoken {
			return reply{}, errors.New("server stopping")
		}
		if err != nil {
			return reply{}, err
		}
		r, err := parseReply(t.buf[:n])
		if err != nil {
			continue // garbage from the client's port: ignore it
		}
		t.heard = time.Now()
		if t.srv.log.Enabled(plog.Debug) {
			t.srv.log.Logf(plog.Debug, "received from %s: %s", t.peer, describe(t.buf[:n]))
		}
		if r.op == opERROR {
			return r, &peerError{r.code, r.msg}
		}
		return r, nil
	}
}

// write sends one packet, logged at the debugging level.
func (t *transfer) write(pkt []byte) error {
	if t.srv.log.Enabled(plog.Debug) {
		t.srv.log.Logf(plog.Debug, "sent to %s: %s", t.peer, describe(pkt))
	}
	return t.conn.write(pkt)
}

// silent reports whether the client has been silent too long: after
// maxRetries retransmissions, or past the configured silence.
func (t *transfer) silent(tries int) bool {
	return tries > maxRetries || time.Since(t.heard) >= t.st.cfg.Silence
}

func (t *transfer) giveUp() error {
	return fmt.Errorf("no answer for %s (%d retransmissions)", time.Since(t.heard).Round(100*time.Millisecond), t.retransmits)
}

// send serves a read request.
func (t *transfer) send() error {
	name, err := cleanName(t.req.Filename)
	if err != nil {
		t.negotiate(-1)
		return err
	}
	// Regular files only, opened without blocking: a FIFO must not hold
	// the transfer (and the daemon's stop) forever.
	f, fi, err := regfile.Open(t.st.root, name)
	if errors.Is(err, regfile.ErrNotRegular) {
		t.negotiate(-1)
		return &protoError{errAccess, "not a regular file"}
	}
	if err != nil {
		t.negotiate(-1)
		return fsError(err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 256<<10) // one read per many blocks
	size := fi.Size()
	if t.req.Mode == "netascii" {
		r, size = &netasciiEncoder{r: bufio.NewReader(f)}, -1
	}
	t.negotiate(size)
	if len(t.opts) > 0 {
		if err := t.sendOACK(); err != nil {
			return err
		}
	}
	return t.sendData(r)
}

// sendOACK sends the option acknowledgement and waits for ACK 0.
func (t *transfer) sendOACK() error {
	pkt := appendOACK(nil, t.opts)
	sent := time.Now()
	retried := false
	for tries := 0; ; {
		if err := t.write(pkt); err != nil {
			return err
		}
		for {
			r, err := t.recv()
			if err == errTimeout {
				break
			}
			if err != nil {
				return err
			}
			if r.op == opACK && r.block == 0 {
				if !retried {
					t.sample(time.Since(sent))
				}
				return nil
			}
		}
		if tries++; t.silent(tries) {
			return t.giveUp()
		}
		t.backoff()
		retried = true
	}
}

// sendData sends the file in windows of t.window blocks (RFC 7440; a
// window of 1 is RFC 1350's lock step). Block numbers wrap from 65535 to
// 0, as the common clients expect.
func (t *transfer) sendData(r io.Reader) error {
	w, bs := uint64(t.window), t.blksize
	slot := 4 + bs
	// The window's packets lie side by side, so that a run of them goes
	// out in one system call.
	ring := make([]byte, int(w)*slot)
	lens := make([]int, w)
	base, loaded, last := uint64(1), uint64(0), uint64(0)
	load := func(i uint64) error {
		off := int(i%w) * slot
		pkt := ring[off : off+slot]
		binary.BigEndian.PutUint16(pkt, opDATA)
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		n, err := io.ReadFull(r, pkt[4:])
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			last = i
		default:
			return &protoError{errUndefined, "read error"}
		}
		lens[i%w] = 4 + n
		t.bytes += int64(n)
		loaded = i
		return nil
	}
	sendWindow := func() error {
		end := base + w - 1
		for i := loaded + 1; i <= end && last == 0; i++ {
			if err := load(i); err != nil {
				return err
			}
		}
		if last != 0 && end > last {
			end = last
		}
		// At most two runs: up to the end of the ring, then from its start.
		for i := base; i <= end; {
			first := int(i % w)
			n := min(int(end-i)+1, int(w)-first)
			runEnd := first + n - 1
			b := ring[first*slot : runEnd*slot+lens[runEnd]]
			if t.srv.log.Enabled(plog.Debug) {
				for off := 0; off < len(b); off += slot {
					t.srv.log.Logf(plog.Debug, "sent to %s: %s", t.peer, describe(b[off:min(off+slot, len(b))]))
				}
			}
			if err := t.conn.writeSegments(b, slot); err != nil {
				return err
			}
			i += uint64(n)
		}
		return nil
	}
	if err := sendWindow(); err != nil {
		return err
	}
	sent, retried, tries := time.Now(), false, 0
	for {
		rep, err := t.recv()
		if err == errTimeout {
			if tries++; t.silent(tries) {
				return t.giveUp()
			}
			t.backoff()
			retried = true
			if err := sendWindow(); err != nil {
				return err
			}
			sent = time.Now()
			continue
		}
		if err != nil {
			return err
		}
		if rep.op != opACK {
			continue
		}
		// Which block does the 16-bit number acknowledge? One of those sent
		// since base; a duplicate of the previous one is ignored so that a
		// delayed ACK does not double the traffic (Sorcerer's Apprentice).
		delta := uint64(uint16(rep.block - uint16(base-1)))
		if delta == 0 || delta > w || base-1+delta > loaded {
			continue
		}
		if !retried {
			t.sample(time.Since(sent))
		}
		tries, retried = 0, false
		acked := base - 1 + delta
		if last != 0 && acked == last {
			return nil
		}
		base = acked + 1
		if err := sendWindow(); err != nil {
			return err
		}
		sent = time.Now()
	}
}

// receive serves a write request into a temporary file that takes the
// name only when the transfer is complete.
func (t *transfer) receive() error {
	cfg := t.st.cfg
	t.negotiate(-1)
	if !cfg.AllowWrites {
		return &protoError{errAccess, "writes are not allowed (TFTPAllowWrites = 0)"}
	}
	name, err := cleanName(t.req.Filename)
	if err != nil {
		return err
	}
	root := t.st.root
	if fi, err := root.Lstat(name); err == nil {
		if !cfg.AllowOverwrites {
			return &protoError{errFileExists, "file already exists (TFTPAllowOverwrites = 0)"}
		}
		if !fi.Mode().IsRegular() {
			return &protoError{errAccess, "not a regular file"}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fsError(err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".tftp-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fsError(err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			root.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	var out io.Writer = bw
	if t.req.Mode == "netascii" {
		out = &netasciiDecoder{w: bw}
	}
	first := appendACK(nil, 0)
	if len(t.opts) > 0 {
		first = appendOACK(nil, t.opts)
	}
	expected := uint64(1)
	ack := func() error {
		if expected == 1 {
			return t.write(first)
		}
		return t.write(appendACK(nil, uint16(expected-1)))
	}
	if err := ack(); err != nil {
		return err
	}
	inWindow, tries := 0, 0
	for {
		rep, err := t.recv()
		if err == errTimeout {
			if tries++; t.silent(tries) {
				return t.giveUp()
			}
			t.backoff()
			inWindow = 0
			if err := ack(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if rep.op != opDATA {
			continue
		}
		if rep.block != uint16(expected) {
			// A gap or a repeat: say where we are, so the sender restarts there.
			inWindow = 0
			if err := ack(); err != nil {
				return err
			}
			continue
		}
		if len(rep.data) > t.blksize {
			return &protoError{errIllegalOp, "data block larger than the block size"}
		}
		if _, err := out.Write(rep.data); err != nil {
			return fsError(err)
		}
		t.bytes += int64(len(rep.data))
		expected++
		tries = 0
		inWindow++
		if len(rep.data) < t.blksize {
			break // the final block is acknowledged once the file is stored
		}
		if inWindow == t.window {
			inWindow = 0
			if err := ack(); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fsError(err)
	}
	if err := f.Sync(); err != nil {
		return fsError(err)
	}
	if err := f.Close(); err != nil {
		return fsError(err)
	}
	committed = true
	if cfg.AllowOverwrites {
		err = root.Rename(tmp, name)
	} else if err = root.Link(tmp, name); err == nil {
		root.Remove(tmp)
	}
	if err != nil {
		root.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return &protoError{errFileExists, "file already exists (TFTPAllowOverwrites = 0)"}
		}
		return fsError(err)
	}
	if err := ack(); err != nil {
		return err
	}
	t.dallying = true
	return nil
}

// dally answers a repeated final block, for a client whose last ACK was
// lost (RFC 1350 section 6).
func (t *transfer) dally() {
	t.rto = min(t.rto, time.Second)
	for range 2 {
		rep, err := t.recv()
		if err != nil {
			return
		}
		if rep.op == opDATA {
			t.write(appendACK(nil, rep.block))
		}
	}
}
