package imaging

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"zonekit/internal/preboot/plog"
)

// A multicast session sends one image once to the machines assigned the
// same session: udp-sender (udpcast) runs on this server, started by the
// first machine that joins; it begins when the session's clients have
// joined or its wait has passed since the first, and retransmits what a
// receiver missed. A machine that comes after the session has run
// restores over HTTPS instead.

// SessionInfo answers GET /tasks/session: where to receive the image.
type SessionInfo struct {
	Session  string `json:"session,omitempty"` // "" when the task is not multicast
	Portbase int    `json:"portbase,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Wait     int    `json:"wait,omitempty"` // seconds a receiver waits for the start
}

// DefaultPortbase is the first UDP port of multicast sessions; each
// session takes two (udpcast's data and control ports).
const DefaultPortbase = 9000

type mcSession struct {
	cmd      *exec.Cmd
	info     SessionInfo
	done     chan struct{}
	err      error
	started  time.Time
	finished time.Time
}

type sessions struct {
	mu   sync.Mutex
	m    map[string]*mcSession
	next int
}

// ifaceOf is the name of the interface that has address a.
func ifaceOf(a string) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok && n.IP.String() == a {
				return ifc.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no interface has address %s", a)
}

// handleSession tells a machine's imaging environment how to receive its
// image: nothing for a unicast task; for a multicast one the session's
// port, started by this request if it is the first; 410 when the session
// has run (the machine then restores over HTTPS).
func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	c, typ, ok := s.taskClaims(w, r, "session join")
	if !ok {
		return
	}
	cur, err := s.zone.Work(r.Context(), c.MAC)
	if err != nil {
		s.fail(w, r, typ, http.StatusBadGateway, "%v", err)
		return
	}
	if c.Action != "image" || cur.Action != c.Action || cur.Image != c.Image {
		s.fail(w, r, typ, http.StatusConflict, "the token is not for the current restore of %s", c.MAC)
		return
	}
	if cur.Session == "" {
		writeJSON(w, SessionInfo{})
		return
	}
	path, ok := s.imagePath(cur.Image)
	if !ok {
		s.fail(w, r, typ, http.StatusBadRequest, "bad image name %q", cur.Image)
		return
	}
	key := cur.Session + "/" + cur.Image
	s.mc.mu.Lock()
	defer s.mc.mu.Unlock()
	if s.mc.m == nil {
		s.mc.m = map[string]*mcSession{}
	}
	sess := s.mc.m[key]
	if sess != nil {
		select {
		case <-sess.done:
			s.fail(w, r, typ, http.StatusGone, "multicast session %s has run; restore over HTTPS", cur.Session)
			return
		default:
		}
		writeJSON(w, sess.info)
		s.log.Logf(plog.Transaction, "%s from %s: joined multicast session %s of %s", typ, r.RemoteAddr, cur.Session, cur.Image)
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		s.fail(w, r, typ, http.StatusNotFound, "no image %s", cur.Image)
		return
	}
	sum, err := s.digest(path)
	if err != nil {
		s.fail(w, r, typ, http.StatusInternalServerError, "image %s has no checksum: %v", cur.Image, err)
		return
	}
	iface, err := ifaceOf(localAddr(r))
	if err != nil {
		s.fail(w, r, typ, http.StatusInternalServerError, "%v", err)
		return
	}
	base := s.cfg.Portbase
	if base == 0 {
		base = DefaultPortbase
	}
	port := base + 2*s.mc.next
	s.mc.next = (s.mc.next + 1) % 500
	sess = &mcSession{info: SessionInfo{Session: cur.Session, Portbase: port, SHA256: sum, Size: fi.Size(), Wait: cur.Wait + 60}, done: make(chan struct{}), started: time.Now()}
	// --nopointopoint: multicast even for one receiver, so the image is
	// sent once whatever the count.
	args := []string{"--file", path, "--interface", iface, "--portbase", fmt.Sprint(port),
		"--min-receivers", fmt.Sprint(max(cur.Clients, 1)), "--max-wait", fmt.Sprint(cur.Wait),
		"--nopointopoint", "--nokbd", "--no-progress"}
	cmd := exec.Command(s.sender(), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.fail(w, r, typ, http.StatusInternalServerError, "start udp-sender: %v", err)
		return
	}
	sess.cmd = cmd
	s.mc.m[key] = sess
	s.log.Logf(plog.Transaction, "multicast session %s of %s (%d bytes) started on %s port %d for %d clients, at most %d s after the first; %s from %s joined",
		cur.Session, cur.Image, fi.Size(), iface, port, cur.Clients, cur.Wait, c.MAC, r.RemoteAddr)
	go func() {
		err := cmd.Wait()
		sess.finished = time.Now()
		if err != nil {
			sess.err = fmt.Errorf("udp-sender: %v: %s", err, lastLines(out.String()))
			s.log.Logf(plog.Warning, "multicast session %s of %s failed: %v", cur.Session, cur.Image, sess.err)
		} else {
			s.count(func(st *Stats) { st.ImagesSent++ })
			s.log.Logf(plog.Transaction, "multicast session %s of %s: sent %d bytes once in %s: %s", cur.Session, cur.Image, fi.Size(), sess.finished.Sub(sess.started).Round(time.Millisecond), lastLines(out.String()))
		}
		close(sess.done)
	}()
	writeJSON(w, sess.info)
}

func (s *Server) sender() string {
	if s.cfg.Sender != "" {
		return s.cfg.Sender
	}
	return "udp-sender"
}

// stopSessions ends the senders still running (the service stops).
func (s *Server) stopSessions() {
	s.mc.mu.Lock()
	defer s.mc.mu.Unlock()
	for _, m := range s.mc.m {
		select {
		case <-m.done:
		default:
			m.cmd.Process.Kill()
			<-m.done
		}
	}
}

// localAddr is the address of this server the request arrived on.
func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			return host
		}
	}
	return ""
}

func lastLines(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 2 {
		lines = lines[len(lines)-2:]
	}
	return strings.Join(lines, " / ")
}
