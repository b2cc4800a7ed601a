package agent

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"zonekit/internal/content"
)

// fakeClock is the engine's clock and sleep: time passes only when the
// engine waits, and at once.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	return ctx.Err()
}

// pacedEngine serves a 3-fragment EXECUTE package of priority 5 from a
// repository (info over HTTPS, fragments over HTTP) and returns an engine
// with the zone's default download settings on a fake clock.
func pacedEngine(t *testing.T) (*engine, *fakeClock, *[]string) {
	repo, err := content.NewRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	src := t.TempDir()
	os.WriteFile(src+"/data", bytes.Repeat([]byte("zonekit "), 64), 0o644)
	if err := content.PackDir(src, content.FormatTarGz, &archive); err != nil {
		t.Fatal(err)
	}
	s := content.Spec{Name: "paced", OS: content.OSLinux, Priority: 5, Action: content.ActionExecute, Command: "true",
		FragmentSize: int64(archive.Len()/3 + 1)}
	m, err := repo.Build("1700000042", s, &archive, time.Now())
	if err != nil || len(m.Fragments) != 3 {
		t.Fatalf("build: %v (%d fragments)", err, len(m.Fragments))
	}
	files := http.StripPrefix("/content", http.FileServer(http.Dir(repo.Dir())))
	infoSrv := httptest.NewTLSServer(files)
	fragSrv := httptest.NewServer(files)
	t.Cleanup(infoSrv.Close)
	t.Cleanup(fragSrv.Close)

	clock := &fakeClock{now: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	e, log := testEngine(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(log)
		}
	})
	e.a.Now = clock.Now
	e.o.Sleep = clock.Sleep
	var lines []string
	e.o.Status = func(l string) { lines = append(lines, l) }
	e.info = infoSrv.Client()
	e.cfg = defaultDownloadConfig()
	os.MkdirAll(e.a.logDir(), 0o755)
	p := &LocalPackage{ID: "1700000042", Priority: 5, Phase: PhaseNew, FirstSeen: clock.now,
		InfoLocations: []string{strings.TrimPrefix(infoSrv.URL, "https://") + "/content"},
		PackLocations: []string{strings.TrimPrefix(fragSrv.URL, "http://") + "/content"}}
	if err := e.a.savePackage(p); err != nil {
		t.Fatal(err)
	}
	return e, clock, &lines
}

func result(t *testing.T, e *engine) string {
	pkgs, err := e.a.Packages()
	if err != nil || len(pkgs) != 1 {
		t.Fatalf("packages: %v %v", pkgs, err)
	}
	return pkgs[0].Result
}

// With the zone's default latencies a small package takes its time (the
// reference's pacing), on a fake clock: nothing really waits. The
// terminal is told how long each wait is.
func TestDefaultLatenciesOnAFakeClock(t *testing.T) {
	e, clock, lines := pacedEngine(t)
	start := clock.now
	if err := e.periods(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := result(t, e); r != "SUCCESS" {
		t.Fatalf("result %q", r)
	}
	// Priority 5, 10 cycles a period: a step in cycles 5 and 10. Info and
	// fragment 1, fragment 2, fragment 3, the action: the fourth step is
	// in cycle 10 of the second period, after 19 cycle latencies of 60 s
	// and 3 fragment latencies of 10 s; nothing is waited after it.
	if got, want := clock.now.Sub(start), 19*time.Minute+30*time.Second; got != want {
		t.Errorf("deployed after %v of the zone's latencies, want %v", got, want)
	}
	all := strings.Join(*lines, "\n")
	for _, want := range []string{"package 1700000042: fragment 2/3 in", "package 1700000042: next attempt in 60s (next cycle",
		"next attempt in 10s (next fragment", "package 1700000042: SUCCESS"} {
		if !strings.Contains(all, want) {
			t.Errorf("status lines lack %q:\n%s", want, all)
		}
	}
}

// --now (and the zone's deploy-now on a package) ignores the latencies.
func TestDeployNowIgnoresLatencies(t *testing.T) {
	for _, how := range []string{"--now", "zone"} {
		e, clock, _ := pacedEngine(t)
		if how == "--now" {
			e.o.Now = true
		} else {
			pkgs, _ := e.a.Packages()
			pkgs[0].Now = true
			e.a.savePackage(pkgs[0])
		}
		start := clock.now
		if err := e.periods(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r := result(t, e); r != "SUCCESS" {
			t.Fatalf("%s: result %q", how, r)
		}
		if got := clock.now.Sub(start); got != 0 {
			t.Errorf("%s: waited %v", how, got)
		}
	}
}
