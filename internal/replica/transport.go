package replica

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// UpgradePath is where a peer asks the zone server's HTTPS port to become
// a raft stream; UpgradeProto names the protocol in the Upgrade header.
const (
	UpgradePath  = "/api/v1/cluster/raft"
	UpgradeProto = "zonekit-raft/1"
)

// streamLayer carries raft's connections inside the zone server's HTTPS
// port: outgoing ones are TLS connections (this server's certificate as
// the client certificate) upgraded with one HTTP request; incoming ones
// are handed over by the HTTP handler after it checked the peer.
type streamLayer struct {
	addr      net.Addr
	tlsConfig func() *tls.Config
	hello     func() http.Header                             // headers of an upgrade request
	refused   func(addr string, status int, msg, inc string) // a peer refused a stream
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newStreamLayer(advertise string, tlsConfig func() *tls.Config, hello func() http.Header, refused func(string, int, string, string)) (*streamLayer, error) {
	if _, _, err := net.SplitHostPort(advertise); err != nil {
		return nil, fmt.Errorf("replication address %q: want host:port: %w", advertise, err)
	}
	// Not resolved here: the name may only resolve for the peers.
	return &streamLayer{addr: advertiseAddr(advertise), tlsConfig: tlsConfig, hello: hello, refused: refused,
		conns: make(chan net.Conn), closed: make(chan struct{})}, nil
}

// advertiseAddr is the address peers dial, as given.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// Dial opens a raft stream to the zone server at address.
func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: l.tlsConfig()}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	var req strings.Builder
	req.WriteString("GET " + UpgradePath + " HTTP/1.1\r\nHost: " + string(address) +
		"\r\nConnection: Upgrade\r\nUpgrade: " + UpgradeProto + "\r\n")
	if l.hello != nil {
		l.hello().Write(&req)
	}
	req.WriteString("\r\n")
	if _, err := conn.Write([]byte(req.String())); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft stream to %s: %w", address, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		conn.Close()
		msg := strings.TrimSpace(string(body))
		if l.refused != nil && (resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusForbidden) {
			l.refused(string(address), resp.StatusCode, msg, resp.Header.Get(HeaderIncarnation))
		}
		return nil, fmt.Errorf("raft stream to %s refused: %s: %s", address, resp.Status, msg)
	}
	resp.Body.Close()
	if br.Buffered() > 0 {
		// The peer speaks only after we do; anything here is a protocol error.
		conn.Close()
		return nil, fmt.Errorf("raft stream to %s: unexpected data after the upgrade", address)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// Accept waits for the next stream handed over by Hand.
func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, errors.New("replication transport closed")
	}
}

// Close stops Accept.
func (l *streamLayer) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// Addr is the address peers reach this server at.
func (l *streamLayer) Addr() net.Addr { return l.addr }

// serveUpgrade turns an authorized HTTP request into a raft stream.
func (l *streamLayer) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != UpgradeProto {
		http.Error(w, "this endpoint needs Upgrade: "+UpgradeProto, http.StatusUpgradeRequired)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "connection cannot be upgraded", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	if rw.Reader.Buffered() > 0 {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + UpgradeProto + "\r\n\r\n")); err != nil {
		conn.Close()
		return
	}
	select {
	case l.conns <- conn:
	case <-l.closed:
		conn.Close()
	case <-time.After(10 * time.Second):
		conn.Close()
	}
}
