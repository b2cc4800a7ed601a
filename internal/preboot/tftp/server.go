package tftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/preboot/netx"
	"zonekit/internal/preboot/plog"
)

// Config is the server's resolved configuration.
type Config struct {
	Root            string     // TFTPDirectory; must exist
	Addr            netip.Addr // TFTPInterface; invalid means every address
	Port            int
	MaxBlockSize    int           // TransferBlockSize: the largest block granted
	Timeout         time.Duration // TimeoutInterval: the initial retransmission timeout
	AllowWrites     bool
	AllowOverwrites bool // only with AllowWrites
	MaxTransfers    int
	MaxPerClient    int           // transfers one client address may have at once
	Silence         time.Duration // a transfer whose client says nothing this long ends
	MaxWindow       int
}

// Limits of the protocol.
const (
	minBlockSize = 8
	maxBlockSize = 65464 // RFC 2348
	minRTO       = 50 * time.Millisecond
	maxRTO       = 60 * time.Second
	maxRetries   = 8
	// DefaultSilence bounds how long a client that stopped answering holds
	// a transfer slot (the backoff alone would take about 4 minutes).
	DefaultSilence = 15 * time.Second
)

type state struct {
	cfg  Config
	root *os.Root
}

// Stats counts transfers since the server started.
type Stats struct {
	Reads, Writes, Failed, Busy, Retransmits atomic.Int64
	Bytes                                    atomic.Int64 // data sent and received, failed transfers included
}

// Server is a TFTP server. Reload swaps its configuration without
// touching transfers under way.
type Server struct {
	log   *plog.Logger
	st    atomic.Pointer[state]
	Stats Stats

	mu     sync.Mutex
	conn   *net.UDPConn
	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup // listener loops
	xfers  sync.WaitGroup // transfers
	active atomic.Int64
	perMu  sync.Mutex
	per    map[netip.Addr]int // transfers under way by client address
}

// New checks cfg and opens the root; Start begins serving.
func New(cfg Config, log *plog.Logger) (*Server, error) {
	st, err := openState(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{log: log, per: map[netip.Addr]int{}}
	s.st.Store(st)
	return s, nil
}

func openState(cfg Config) (*state, error) {
	fi, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("TFTPDirectory %s: %w", cfg.Root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("TFTPDirectory %s is not a directory", cfg.Root)
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("TFTPDirectory: %w", err)
	}
	if cfg.MaxBlockSize < 512 {
		cfg.MaxBlockSize = 512
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 1
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = 1
	}
	if cfg.MaxPerClient <= 0 {
		cfg.MaxPerClient = cfg.MaxTransfers
	}
	if cfg.Silence <= 0 {
		cfg.Silence = DefaultSilence
	}
	return &state{cfg: cfg, root: root}, nil
}

// Start binds the listening socket and serves until Stop.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.st.Load().cfg
	conn, err := netx.Listen(cfg.Addr, cfg.Port, false)
	if err != nil {
		return fmt.Errorf("listen for TFTP on port %d: %w", cfg.Port, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.conn = conn
	s.sweep(s.st.Load().root)
	s.loops.Add(1)
	go s.listen(conn)
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Active is the number of transfers under way.
func (s *Server) Active() int { return int(s.active.Load()) }

// Reload applies a new configuration to new requests; a changed address
// or port moves the listening socket, and transfers under way go on.
func (s *Server) Reload(cfg Config) error {
	st, err := openState(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.st.Load().cfg
	if old.Addr != cfg.Addr || old.Port != cfg.Port {
		conn, err := netx.Listen(cfg.Addr, cfg.Port, false)
		if err != nil {
			return fmt.Errorf("listen for TFTP on port %d: %w", cfg.Port, err)
		}
		s.conn.Close()
		s.conn = conn
		s.loops.Add(1)
		go s.listen(conn)
	}
	s.st.Store(st)
	return nil
}

// Stop closes the listener, lets transfers run for up to grace, then
// ends them.
func (s *Server) Stop(grace time.Duration) {
	s.mu.Lock()
	s.conn.Close()
	s.mu.Unlock()
	s.loops.Wait()
	done := make(chan struct{})
	go func() { s.xfers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.cancel()
		<-done
	}
	s.cancel()
}

func (s *Server) listen(conn *net.UDPConn) {
	defer s.loops.Done()
	buf := make([]byte, 65536)
	oob := make([]byte, netx.OOBSize)
	for {
		p, err := netx.Read(conn, buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Logf(plog.Warning, "read request: %v", err)
			continue
		}
		s.handle(conn, buf[:p.N], p)
	}
}

func (s *Server) handle(conn *net.UDPConn, b []byte, p netx.Packet) {
	st := s.st.Load()
	if s.log.Enabled(plog.Debug) {
		s.log.Logf(plog.Debug, "packet from %s to %s: %d bytes", p.Src, p.Dst, len(b))
	}
	req, err := ParseRequest(b)
	if err != nil {
		s.log.Logf(plog.Request, "ignored packet from %s: %v", p.Src, err)
		if len(b) >= 2 && (b[1] == opRRQ || b[1] == opWRQ) && b[0] == 0 {
			netx.WriteFrom(conn, appendError(nil, errIllegalOp, err.Error()), p.Src, 0, p.Local)
		}
		return
	}
	kind := "read"
	if req.Write {
		kind = "write"
	}
	s.log.Logf(plog.Request, "%s request from %s: %q mode %s options %v", kind, p.Src, req.Filename, req.Mode, req.Options)
	if int(s.active.Load()) >= st.cfg.MaxTransfers {
		s.Stats.Busy.Add(1)
		s.log.Logf(plog.Warning, "%s of %q from %s refused: %d transfers under way (TFTPMaxTransfers)", kind, req.Filename, p.Src, st.cfg.MaxTransfers)
		netx.WriteFrom(conn, appendError(nil, errUndefined, "server busy, try again later"), p.Src, 0, p.Local)
		return
	}
	// Answer from the address the request was sent to, unless that was a
	// broadcast: then from the interface's own address.
	local := p.Dst
	if !local.IsValid() || local.IsUnspecified() || local == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || st.cfg.Addr.IsValid() {
		local = p.Local
	}
	if st.cfg.Addr.IsValid() {
		local = st.cfg.Addr
	}
	client := p.Src.Addr().Unmap()
	s.perMu.Lock()
	if s.per[client] >= st.cfg.MaxPerClient {
		s.perMu.Unlock()
		s.Stats.Busy.Add(1)
		s.log.Logf(plog.Warning, "%s of %q from %s refused: %s has %d transfers under way", kind, req.Filename, p.Src, client, st.cfg.MaxPerClient)
		netx.WriteFrom(conn, appendError(nil, errUndefined, "too many transfers from your address, try again later"), p.Src, 0, p.Local)
		return
	}
	s.per[client]++
	s.perMu.Unlock()
	s.active.Add(1)
	s.xfers.Add(1)
	go func() {
		defer s.xfers.Done()
		defer s.active.Add(-1)
		defer func() {
			s.perMu.Lock()
			if s.per[client]--; s.per[client] <= 0 {
				delete(s.per, client)
			}
			s.perMu.Unlock()
		}()
		t := &transfer{srv: s, st: st, req: req, peer: p.Src, local: local, ctx: s.ctx}
		t.run()
	}()
}

// tempName matches the temporary files of uploads: ".NAME.tftp-" and 12
// hex digits.
var tempName = regexp.MustCompile(`^\..+\.tftp-[0-9a-f]{12}$`)

// sweep removes the temporary files that uploads cut off by a crash or a
// kill left behind. It runs before the first request is served, so no
// transfer of this daemon owns them.
func (s *Server) sweep(root *os.Root) {
	n := 0
	fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && tempName.MatchString(d.Name()) {
			if root.Remove(p) == nil {
				n++
				s.log.Logf(plog.Transaction, "removed %q, left by an upload that did not finish", p)
			}
		}
		return nil
	})
	if n > 0 {
		s.log.Logf(plog.Warning, "removed %d temporary files of unfinished uploads", n)
	}
}
