// Package fileserve serves files over plain HTTP/1.1 as fast as the
// kernel lets it: files stay open between requests (checked against their
// path before each use, so a replaced or removed file is never served),
// headers and body leave together (on Linux, the header sent with
// MSG_MORE and the body with sendfile, as nginx's tcp_nopush), and a
// keep-alive connection is one goroutine that reads requests in place.
//
// It serves GET and HEAD of the paths its Resolve maps to files, with
// Range (one range) and If-None-Match. Every other request, and every
// request it cannot answer exactly as net/http's ServeContent would, is
// handed with its connection to a net/http server running the Fallback
// handler, so behaviour stays that of net/http and the fast path only has
// to be fast where it answers.
package fileserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Target is the file a request path names and how to label it.
type Target struct {
	Path         string
	ContentType  string // application/octet-stream when empty
	CacheControl string
	// ETag, quoted; when empty it is made of the file's modification time
	// and size ("%x-%x" of UnixNano and size).
	ETag string
}

// ErrNotHandled, from Resolve, sends the request to the Fallback handler.
var ErrNotHandled = errors.New("fileserve: not handled")

// StatusError, from Resolve, is answered as http.Error would answer it.
type StatusError struct {
	Code int
	Text string
}

func (e *StatusError) Error() string { return strconv.Itoa(e.Code) + " " + e.Text }

// Server serves files resolved from request paths. Its zero value is not
// usable: Resolve and Fallback are required.
type Server struct {
	// Resolve maps a request path (plain: no query, escapes or dot
	// segments) to a file. It is called again for a path only when the
	// file it named last time was replaced or removed, or fell out of the
	// cache, so it must return the same answer for the same path while the
	// file stays. Errors other than *StatusError send the request to
	// Fallback.
	Resolve func(ctx context.Context, path string) (Target, error)
	// Fallback answers everything else, through net/http.
	Fallback http.Handler
	// MaxOpen bounds the files kept open: by default 4096, or a quarter
	// of the process's descriptor limit when that is lower. A package's
	// fragments are walked in turn, so a bound below their number would
	// make every request a miss.
	MaxOpen int
	// ReadHeaderTimeout (default 10s) and IdleTimeout (default 2m) as in
	// net/http; SendTimeout (default 1m) bounds each 8 MiB of a response.
	ReadHeaderTimeout, IdleTimeout, SendTimeout time.Duration
	// ShutdownTimeout (default 10s) is how long downloads in flight may
	// finish once the context of Serve is done.
	ShutdownTimeout time.Duration
	// Log, when it has debug enabled, gets one line per request.
	Log *slog.Logger
	// Observe, when set, is told of each request the fast path answers
	// (those handed to Fallback are Fallback's to count): the status, the
	// body bytes sent and the time from the whole request head to the
	// end of the answer.
	Observe func(method string, status int, bytes int64, elapsed time.Duration)

	files    *cache
	shutting atomic.Bool
	mu       sync.Mutex
	conns    map[*conn]struct{}
	wg       sync.WaitGroup
}

const sendChunk = 8 << 20

// Serve answers requests on ln until ctx is done, then stops accepting,
// closes idle connections, lets responses in flight finish (up to
// ShutdownTimeout) and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.MaxOpen <= 0 {
		s.MaxOpen = defaultMaxOpen()
	}
	s.files = newCache(s.MaxOpen)
	s.conns = make(map[*conn]struct{})
	defer s.files.closeAll()
	fb := &chanListener{addr: ln.Addr(), c: make(chan net.Conn), done: make(chan struct{})}
	hs := &http.Server{
		Handler:           s.Fallback,
		ReadHeaderTimeout: s.readHeaderTimeout(),
		IdleTimeout:       s.idleTimeout(),
		ErrorLog:          slog.NewLogLogger(s.log().Handler(), slog.LevelDebug),
	}
	go hs.Serve(fb)
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	errc := make(chan error, 1)
	go func() { errc <- s.accept(cctx, ln, fb) }()
	go s.sweepLoop(cctx)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	ln.Close()
	s.shutting.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.nc.SetReadDeadline(time.Now()) // wakes the idle ones; busy ones stop after their response
	}
	s.mu.Unlock()
	sctx, scancel := context.WithTimeout(context.Background(), s.shutdownTimeout())
	defer scancel()
	hs.Shutdown(sctx)
	fb.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (s *Server) accept(ctx context.Context, ln net.Listener, fb *chanListener) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return nil
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// As net/http: back off on running out of descriptors.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := &conn{s: s, nc: nc, fb: fb, ctx: ctx}
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) sweepLoop(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.files.sweep()
		}
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) readHeaderTimeout() time.Duration {
	return orDefault(s.ReadHeaderTimeout, 10*time.Second)
}
func (s *Server) idleTimeout() time.Duration     { return orDefault(s.IdleTimeout, 2*time.Minute) }
func (s *Server) sendTimeout() time.Duration     { return orDefault(s.SendTimeout, time.Minute) }
func (s *Server) shutdownTimeout() time.Duration { return orDefault(s.ShutdownTimeout, 10*time.Second) }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// conn is one client connection on the fast path.
type conn struct {
	s   *Server
	nc  net.Conn
	fb  *chanListener
	ctx context.Context
	br  *bufio.Reader
	req request
	out []byte // the response head being built
	snd sender

	dateSec int64
	date    []byte
	sent    int64 // body bytes of the last response

	readDL, writeDL time.Time // the deadlines set
}

const readBuf = 4096

func (c *conn) serve() {
	handedOff := false
	defer func() {
		if !handedOff {
			c.nc.Close()
		}
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.wg.Done()
	}()
	c.br = bufio.NewReaderSize(c.nc, readBuf)
	c.out = make([]byte, 0, 512)
	c.snd.init(c.nc)
	for {
		// Deadlines move only when they would come a second early: a
		// deadline set is a runtime timer changed, each request.
		if now := time.Now(); c.readDL.Sub(now) < c.s.idleTimeout()-time.Second {
			c.readDL = now.Add(c.s.idleTimeout())
			c.nc.SetReadDeadline(c.readDL)
		}
		if c.s.shutting.Load() {
			return
		}
		n, err := c.readHead()
		if err != nil {
			if errors.Is(err, errHandOff) {
				handedOff = c.handOff()
			}
			return
		}
		var start time.Time
		debug := c.s.Log != nil && c.s.Log.Enabled(c.ctx, slog.LevelDebug)
		if debug || c.s.Observe != nil {
			start = time.Now()
		}
		head, _ := c.br.Peek(n)
		if !parseRequest(head, &c.req) {
			handedOff = c.handOff()
			return
		}
		status, ok := c.respond(n)
		if !ok {
			handedOff = c.handOff()
			return
		}
		if c.s.Observe != nil && status > 0 {
			c.s.Observe(method(c.req.head), status, c.sent, time.Since(start))
		}
		if debug {
			c.s.Log.Debug("content", "method", method(c.req.head), "path", string(c.req.path), "status", status,
				"range", string(c.req.rng), "duration_ms", float64(time.Since(start).Microseconds())/1000,
				"remote", c.nc.RemoteAddr().String())
		}
		if status < 0 || c.req.close {
			return
		}
	}
}

func method(head bool) string {
	if head {
		return http.MethodHead
	}
	return http.MethodGet
}

var errHandOff = errors.New("hand off")

// readHead waits for a whole request head in the read buffer and returns
// its length, leaving it unread. A head longer than the buffer goes to
// net/http, which allows larger ones.
func (c *conn) readHead() (int, error) {
	if _, err := c.br.Peek(1); err != nil {
		return 0, err
	}
	deadline := false
	for {
		b, _ := c.br.Peek(c.br.Buffered())
		if n := headEnd(b); n >= 0 {
			return n, nil
		}
		if len(b) >= readBuf {
			return 0, errHandOff
		}
		if !deadline {
			c.readDL = time.Now().Add(c.s.readHeaderTimeout())
			c.nc.SetReadDeadline(c.readDL)
			deadline = true
		}
		if _, err := c.br.Peek(len(b) + 1); err != nil {
			return 0, err
		}
	}
}

// handOff gives the connection, with what was read and not consumed, to
// the net/http server. It reports whether net/http took it.
func (c *conn) handOff() bool {
	c.nc.SetReadDeadline(time.Time{})
	select {
	case c.fb.c <- &bufferedConn{Conn: c.nc, r: c.br}:
		return true
	case <-c.fb.done:
		return false
	}
}

// respond answers the request whose head is n bytes long. ok false: the
// request is left unread for net/http. status < 0: the connection failed.
func (c *conn) respond(n int) (status int, ok bool) {
	c.sent = 0
	e := c.s.files.get(c.req.path)
	if e != nil && !e.valid() {
		c.s.files.drop(e)
		c.s.files.release(e)
		e = nil
	}
	if e == nil {
		path := string(c.req.path)
		t, err := c.s.Resolve(c.ctx, path)
		var se *StatusError
		if errors.As(err, &se) {
			c.br.Discard(n)
			return c.sendError(se)
		}
		if err != nil {
			return 0, false
		}
		if e, err = c.s.files.open(path, t); err != nil {
			return 0, false
		}
	}
	defer c.s.files.release(e)

	start, length := int64(0), e.size
	status = http.StatusOK
	switch {
	case c.req.inm != nil && string(trimSpace(c.req.inm)) == e.etag:
		status = http.StatusNotModified
	case c.req.inm != nil && !plainETag(c.req.inm):
		return 0, false // lists, weak tags, "*": net/http's comparison
	}
	if status == http.StatusOK && c.req.rng != nil {
		var rok bool
		if start, length, rok = parseRange(c.req.rng, e.size); !rok {
			return 0, false // 416, several ranges, or ignored: net/http's answer
		}
		status = http.StatusPartialContent
	}
	head := c.req.head
	c.br.Discard(n) // c.req is not used past here

	b := c.out[:0]
	switch status {
	case http.StatusOK:
		b = append(b, "HTTP/1.1 200 OK\r\n"...)
	case http.StatusPartialContent:
		b = append(b, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes "...)
		b = strconv.AppendInt(b, start, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, start+length-1, 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, e.size, 10)
		b = append(b, "\r\n"...)
	case http.StatusNotModified:
		// As net/http: the validators and Cache-Control, no
		// Content-Type or Content-Length.
		b = append(b, "HTTP/1.1 304 Not Modified\r\nCache-Control: "...)
		b = append(b, cacheControl(e.hdr)...)
		b = append(b, "\r\nEtag: "...)
		b = append(b, e.etag...)
		b = append(b, "\r\n"...)
		b = c.appendDate(b)
		b = append(b, "\r\n"...)
		c.out = b
		if c.send(b, nil, 0, 0) != nil {
			return -1, true
		}
		return status, true
	}
	b = append(b, e.hdr...)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, length, 10)
	b = append(b, "\r\n"...)
	b = c.appendDate(b)
	b = append(b, "\r\n"...)
	c.out = b
	if head {
		length = 0
	}
	c.sent = length
	if c.send(b, e, start, length) != nil {
		return -1, true
	}
	return status, true
}

// cacheControl returns the Cache-Control value within an entry's headers.
func cacheControl(hdr []byte) []byte {
	const name = "Cache-Control: "
	for len(hdr) > 0 {
		line, rest := nextLine(hdr)
		if len(line) > len(name) && string(line[:len(name)]) == name {
			return line[len(name):]
		}
		hdr = rest
	}
	return nil
}

// plainETag reports whether v is one strong entity tag, which compares
// by equality.
func plainETag(v []byte) bool {
	v = trimSpace(v)
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '"' || c == ',' {
			return false
		}
	}
	return true
}

func (c *conn) appendDate(b []byte) []byte {
	now := time.Now()
	if sec := now.Unix(); sec != c.dateSec || c.date == nil {
		c.dateSec = sec
		c.date = append(appendDate(append(c.date[:0], "Date: "...), now), "\r\n"...)
	}
	return append(b, c.date...)
}

// sendError answers as http.Error does.
func (c *conn) sendError(se *StatusError) (int, bool) {
	text := se.Text + "\n"
	b := c.out[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(se.Code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(se.Code)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(text)), 10)
	b = append(b, "\r\n"...)
	b = c.appendDate(b)
	b = append(b, "\r\n"...)
	if !c.req.head {
		b = append(b, text...)
		c.sent = int64(len(text))
	}
	c.out = b
	if c.send(b, nil, 0, 0) != nil {
		return -1, true
	}
	return se.Code, true
}

// send writes the head and then length bytes of e from off, each 8 MiB
// under a fresh SendTimeout.
func (c *conn) send(head []byte, e *entry, off, length int64) error {
	for first := true; first || length > 0; first = false {
		if now := time.Now(); c.writeDL.Sub(now) < c.s.sendTimeout()-time.Second {
			c.writeDL = now.Add(c.s.sendTimeout())
			c.nc.SetWriteDeadline(c.writeDL)
		}
		n := min(length, sendChunk)
		var err error
		if e == nil || n == 0 {
			err = c.snd.send(head, nil, 0, 0, 0)
		} else {
			err = c.snd.send(head, e.f, e.fd, off, n)
		}
		if err != nil {
			return err
		}
		head = nil
		off += n
		length -= n
	}
	return nil
}

// bufferedConn is a connection whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// ReadFrom keeps net/http's path to sendfile.
func (b *bufferedConn) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := b.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(b.Conn, src)
}

// chanListener hands connections to net/http.
type chanListener struct {
	addr net.Addr
	c    chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
