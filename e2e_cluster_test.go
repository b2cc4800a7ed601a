package zonekit_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"zonekit/internal/proc"
)

// cmdSignal sends a signal to the process whose pid file is given:
// signal KILL|STOP|CONT|TERM PIDFILE. Zone servers are killed without
// warning or frozen (cut off from their peers) this way.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal KILL|STOP|CONT|TERM PIDFILE")
	}
	sigs := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "TERM": syscall.SIGTERM}
	sig, ok := sigs[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %s", args[0])
	}
	data, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	ts.Check(err)
	ts.Check(syscall.Kill(pid, sig))
	if sig == syscall.SIGKILL {
		// Gone for real before the script goes on; the pid file stays,
		// as it would after a crash. A zombie counts as gone: its files
		// and locks are released. A process in an fsync dies only when
		// the write ends, which takes seconds on a loaded disk.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if !proc.Alive(pid) {
				return
			}
		}
		ts.Fatalf("process %d survived SIGKILL for 30 s", pid)
	}
}

// cmdUntil runs a command again and again until it succeeds with its
// stdout or stderr matching a regular expression: until SECONDS REGEX PROGRAM ARGS... Its last output
// stays in stdout/stderr for the checks that follow. It is for what
// converges (an election, a follower catching up), never for timing.
func cmdUntil(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: until SECONDS REGEX PROGRAM ARGS...")
	}
	secs, err := strconv.Atoi(args[0])
	ts.Check(err)
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for {
		err := ts.Exec(args[2], args[3:]...)
		out := ts.ReadFile("stdout")
		if err == nil && (re.MatchString(out) || re.MatchString(ts.ReadFile("stderr"))) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after %ds, no match for %q in the output of %s: %s%s", secs, args[1], args[2], out, ts.ReadFile("stderr"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type leaderWatchKey struct{}

// leaderWatch polls every server's own replication state while a script
// runs, to prove that the zone never has two leaders.
type leaderWatch struct {
	stop   chan struct{}
	done   chan struct{}
	rounds int
	errs   []string
}

type peerStatus struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Term        uint64 `json:"term"`
	Incarnation string `json:"incarnation"`
}

// cmdLeaders watches for split brains: leaders start CERT KEY CA ADDR...
// polls each zone server's replication state (with a server's certificate,
// as a peer) every 50 ms; leaders check stops and fails if two servers
// ever led at once in the same term or in different cluster incarnations,
// or if two leaders were seen in two polls in a row (a transfer of
// leadership settles faster than that).
func cmdLeaders(ts *testscript.TestScript, neg bool, args []string) {
	w := ts.Value(leaderWatchKey{}).(*leaderWatch)
	switch {
	case len(args) >= 5 && args[0] == "start":
		cert, err := tls.LoadX509KeyPair(ts.MkAbs(args[1]), ts.MkAbs(args[2]))
		ts.Check(err)
		caPEM, err := os.ReadFile(ts.MkAbs(args[3]))
		ts.Check(err)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: pool, InsecureSkipVerify: true}}}
		addrs := args[4:]
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(w.done)
			prevDouble := false
			for {
				select {
				case <-w.stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				var leaders []peerStatus
				for _, a := range addrs {
					resp, err := hc.Get("https://" + a + "/api/v1/cluster/status")
					if err != nil {
						continue
					}
					var st peerStatus
					if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil && st.State == "Leader" {
						leaders = append(leaders, st)
					}
					resp.Body.Close()
				}
				w.rounds++
				double := len(leaders) > 1
				if double {
					for _, l := range leaders[1:] {
						if l.Term == leaders[0].Term || l.Incarnation != leaders[0].Incarnation || prevDouble {
							w.errs = append(w.errs, fmt.Sprintf("round %d: two leaders: %+v and %+v", w.rounds, leaders[0], l))
						}
					}
				}
				prevDouble = double
			}
		}()
	case len(args) == 1 && args[0] == "check":
		if w.stop == nil {
			ts.Fatalf("leaders check without leaders start")
		}
		close(w.stop)
		<-w.done
		w.stop = nil
		ts.Logf("%d polls of every server", w.rounds)
		if len(w.errs) > 0 {
			ts.Fatalf("split brain:\n%s", strings.Join(w.errs, "\n"))
		}
		if w.rounds < 5 {
			ts.Fatalf("only %d polls: the watch proved nothing", w.rounds)
		}
	default:
		ts.Fatalf("usage: leaders start CERT KEY CA ADDR... | leaders check")
	}
}

type writerKey struct{}

// writer sends writes (group-create) round-robin to every server, one at a
// time, and remembers which were acknowledged.
type writer struct {
	stop      chan struct{}
	done      chan struct{}
	attempted map[string]bool
	acked     []string
	failed    int
}

// cmdWrites is a bounded Jepsen-style check of acknowledged writes:
// writes start CA USER PASS ADDR... creates groups w-1, w-2, ... through
// each server in turn while the script kills and freezes servers; writes
// check ADDR... stops and checks, once the servers converged, that every
// acknowledged group is on every server, that no server holds a group that
// was never sent, and that all servers hold the same groups.
func cmdWrites(ts *testscript.TestScript, neg bool, args []string) {
	w := ts.Value(writerKey{}).(*writer)
	switch {
	case len(args) >= 5 && args[0] == "start":
		hc := adminClient(ts, args[1])
		user, pass, addrs := args[2], args[3], args[4:]
		w.stop, w.done, w.attempted = make(chan struct{}), make(chan struct{}), map[string]bool{}
		go func() {
			defer close(w.done)
			for i := 1; ; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				name := fmt.Sprintf("w-%d", i)
				w.attempted[name] = true
				body, _ := json.Marshal(map[string]string{"name": name})
				req, _ := http.NewRequest(http.MethodPost, "https://"+addrs[i%len(addrs)]+"/api/v1/groups", bytes.NewReader(body))
				req.SetBasicAuth(user, pass)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode/100 == 2 {
					w.acked = append(w.acked, name)
				} else {
					w.failed++
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	case len(args) >= 5 && args[0] == "check":
		close(w.stop)
		<-w.done
		hc := adminClient(ts, args[1])
		user, pass, addrs := args[2], args[3], args[4:]
		ts.Logf("%d writes acknowledged, %d failed or unknown", len(w.acked), w.failed)
		if len(w.acked) < 10 {
			ts.Fatalf("only %d writes acknowledged: the check proved little", len(w.acked))
		}
		var first []string
		for _, a := range addrs {
			// Converged: the server holds every acknowledged write (or the
			// check fails after the deadline).
			var names map[string]bool
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				names = listGroups(ts, hc, a, user, pass)
				missing := 0
				for _, n := range w.acked {
					if !names[n] {
						missing++
					}
				}
				if missing == 0 {
					break
				}
				if time.Now().After(deadline) {
					ts.Fatalf("%s lacks %d acknowledged writes", a, missing)
				}
			}
			var got []string
			for n := range names {
				if strings.HasPrefix(n, "w-") {
					if !w.attempted[n] {
						ts.Fatalf("%s holds %s, which was never sent", a, n)
					}
					got = append(got, n)
				}
			}
			sort.Strings(got)
			if first == nil {
				first = got
			} else if !slices.Equal(first, got) {
				ts.Fatalf("%s holds other writes than %s: %v vs %v", a, addrs[0], got, first)
			}
		}
	default:
		ts.Fatalf("usage: writes start|check CA USER PASS ADDR...")
	}
}

func adminClient(ts *testscript.TestScript, caFile string) *http.Client {
	caPEM, err := os.ReadFile(ts.MkAbs(caFile))
	ts.Check(err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// Server names are not checked: the servers are reached by address.
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, InsecureSkipVerify: true}}}
}

func listGroups(ts *testscript.TestScript, hc *http.Client, addr, user, pass string) map[string]bool {
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/api/v1/groups", nil)
	req.SetBasicAuth(user, pass)
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var groups []struct {
		Name string `json:"name"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&groups) != nil {
		return nil
	}
	out := map[string]bool{}
	for _, g := range groups {
		out[g.Name] = true
	}
	return out
}
