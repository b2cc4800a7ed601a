package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/content"
	"zonekit/internal/errkind"
)

// Phases of a package on this device.
const (
	PhaseNew      = "new"         // assigned; the info file is not fetched yet
	PhaseDownload = "downloading" // fragments are coming in
	PhaseReady    = "ready"       // every fragment is in; the action runs at the package's next turn
	PhaseRunning  = "running"     // the action started; an agent that dies here has lost the result
	PhaseDone     = "done"        // the result is known (and sent once Reported)
)

// LocalPackage is what this device knows of one package assigned to it:
// where it comes from, how far its download is, and its result.
type LocalPackage struct {
	ID           string `json:"id"`
	Priority     int    `json:"priority"`
	InfoLocation string `json:"info_location"`
	PackLocation string `json:"pack_location"`
	// InfoLocations and PackLocations are the same in failover order
	// (closest first); empty from zones that send single locations.
	InfoLocations []string `json:"info_locations,omitempty"`
	PackLocations []string `json:"pack_locations,omitempty"`
	// PackFrom is the location that served the last fragment: the next
	// one is asked there first.
	PackFrom string `json:"pack_from,omitempty"`
	// DigestRounds counts the turns in a row whose fragment failed its
	// SHA-256 somewhere (fetchFragment).
	DigestRounds int               `json:"digest_rounds,omitempty"`
	Fragments    int               `json:"fragments"`
	Size         int64             `json:"size"`
	SHA256       string            `json:"sha256,omitempty"`
	Phase        string            `json:"phase"`
	Info         string            `json:"info,omitempty"` // the info file as fetched over HTTPS
	Manifest     *content.Manifest `json:"manifest,omitempty"`
	Have         int               `json:"have"` // fragments complete and checked, from 1 up (counted every few)
	// Reused counts the fragments taken from the fragment cache or another
	// package on this device rather than fetched.
	Reused    int       `json:"reused,omitempty"`
	Result    string    `json:"result,omitempty"`
	Detail    string    `json:"detail,omitempty"` // why it failed, sent with the result
	Reported  bool      `json:"reported"`
	Cancel    bool      `json:"cancel,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	Updated   time.Time `json:"updated"`
	Finished  time.Time `json:"finished,omitzero"`
	// Now is the zone's "deploy now" for this package on this device:
	// the latencies are ignored while it is not finished.
	Now bool `json:"now,omitempty"`
	// Output is the tail of the action's output (secrets masked) and
	// ExitCode its exit code: they go home with the result.
	Output   string `json:"output,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
}

// Done reports whether nothing is left to do for p: its result is known
// and the zone has it.
func (p *LocalPackage) Done() bool { return p.Phase == PhaseDone && p.Reported }

var (
	bucketPackages    = []byte("packages")
	keyDownloadConfig = []byte("download-config")
)

// defaultDownloadConfig is the reference's defaults, used until the zone
// has sent its own.
func defaultDownloadConfig() api.DownloadConfig {
	return api.DownloadConfig{Enabled: true, PeriodLength: 10, FragLatency: 10, CycleLatency: 60, PeriodLatency: 0,
		Timeout: 7, ExecutionTimeout: 120}
}

// update opens the state store for one write transaction only, so that
// package-list and package-cancel are never locked out by a long download.
func (a *Agent) update(fn func(tx *bolt.Tx) error) error {
	db, err := a.open(false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(fn)
}

// Packages lists the packages this device knows, by priority then ID.
func (a *Agent) Packages() ([]*LocalPackage, error) {
	db, err := a.open(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []*LocalPackage
	err = db.View(func(tx *bolt.Tx) error {
		out, err = readPackages(tx)
		return err
	})
	return out, err
}

// FragmentsIn is how many of p's fragments are in place from the first
// on: the record counts them only every few (and not at all in a killed
// engine's last batch), so a listing asks the files.
func (a *Agent) FragmentsIn(p *LocalPackage) int {
	n := p.Have
	if p.Phase != PhaseDownload {
		return n
	}
	for n < p.Fragments {
		if _, err := os.Stat(filepath.Join(a.packageDir(p.ID), content.FragmentName(p.ID, n+1))); err != nil {
			break
		}
		n++
	}
	return n
}

func readPackages(tx *bolt.Tx) ([]*LocalPackage, error) {
	var out []*LocalPackage
	b := tx.Bucket(bucketPackages)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		p := &LocalPackage{}
		if err := json.Unmarshal(v, p); err != nil {
			// The record (and with it any result waiting to be sent) is
			// lost: say so to the zone rather than guess.
			p = &LocalPackage{ID: string(k), Phase: PhaseDone, Result: "ERR_DONE_FAILED", LastError: "local record unreadable"}
		}
		out = append(out, p)
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority < out[j].Priority
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

func putPackage(tx *bolt.Tx, p *LocalPackage) error {
	b, err := tx.CreateBucketIfNotExists(bucketPackages)
	if err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return b.Put([]byte(p.ID), data)
}

// savePackage writes the engine's record, keeping a cancellation that
// package-cancel wrote meanwhile.
func (a *Agent) savePackage(p *LocalPackage) error {
	p.Updated = a.Now().UTC()
	return a.update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPackages); b != nil && !p.Cancel && p.Phase != PhaseDone {
			var old LocalPackage
			if data := b.Get([]byte(p.ID)); data != nil && json.Unmarshal(data, &old) == nil && old.Cancel {
				p.Cancel = true
			}
		}
		return putPackage(tx, p)
	})
}

// CancelPackage stops the deployment of a package: the running engine (or
// the next one) drops its files and reports ERR_ABORTED. A package whose
// action has started cannot be cancelled.
func (a *Agent) CancelPackage(id string) (*LocalPackage, error) {
	var p *LocalPackage
	err := a.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPackages)
		if b == nil || b.Get([]byte(id)) == nil {
			return errkind.New(errkind.NotFound, "package %s is not known on this device (zac package-list)", id)
		}
		p = &LocalPackage{}
		if err := json.Unmarshal(b.Get([]byte(id)), p); err != nil {
			return err
		}
		switch p.Phase {
		case PhaseDone:
			return errkind.New(errkind.Exists, "package %s is already finished (%s)", id, p.Result)
		case PhaseRunning:
			return errkind.New(errkind.Failure, "package %s is running its action; it cannot be cancelled now", id)
		}
		p.Cancel = true
		return putPackage(tx, p)
	})
	return p, err
}

func (a *Agent) packageDir(id string) string { return filepath.Join(a.Home, "packages", id) }
func (a *Agent) logDir() string              { return filepath.Join(a.Home, "logs") }

// DeployOptions tune one run of the engine.
type DeployOptions struct {
	// Log receives the engine's lines besides logs/deploy.log (nil: the file only).
	Log io.Writer
	// Sleep waits between fragments, cycles and periods (tests pass one
	// that moves a fake clock).
	Sleep func(ctx context.Context, d time.Duration) error
	// Now ignores the zone's latencies (fragment, cycle, period) for this
	// run: zac refresh --now, for an admin who wants it done while waiting.
	Now bool
	// Status receives one line on where the engine stands (package,
	// fragment n/m, next attempt in Ns), for a terminal; nil: none.
	Status func(line string)
}

// DeployResult is what a run left behind.
type DeployResult struct {
	Contacted bool            `json:"contacted"` // the zone answered
	Packages  []*LocalPackage `json:"packages"`
	Pending   int             `json:"pending"` // packages not finished or not yet reported
	// Failed counts the packages this run finished with an ERR_ result.
	Failed int `json:"failed"`
	// Disabled says the zone has turned downloads off.
	Disabled bool `json:"downloads_disabled,omitempty"`
}

// engine is one run of the download engine.
type engine struct {
	a       *Agent
	o       DeployOptions
	cfg     api.DownloadConfig
	log     io.Writer
	logMu   sync.Mutex
	info    *http.Client // HTTPS, trusting the zone CAs only
	frags   *http.Client // plain HTTP (the digests protect the fragments)
	st      State
	offline bool
	// inHand counts, per package, the fragments this run has fetched or
	// checked: the record is written only every few.
	inHand map[string]int
	// fresh is, per package, the first fragment this run fetched.
	fresh map[string]int
	// finished says a result is waiting to be sent at the end of the cycle.
	finished bool
	// cache holds the records between two reads of the store (active).
	cache   []*LocalPackage
	cacheAt time.Time
	// where is the last package the status line named.
	where string
	// initial is the records as the run found them (after recoverLost);
	// idle says the zone's answer changed nothing and nothing is unfinished.
	initial []*LocalPackage
	idle    bool
	// fc is the agent's fragment cache.
	fc *fragCache
}

func (e *engine) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.log, "%s %s\n", e.a.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), fmt.Sprintf(format, args...))
}

// Deploy runs the download engine once: it sends results waiting in the
// local cache, learns the packages assigned to this device and the
// download configuration from the zone, then works through download
// periods until every package is finished or a whole period made no
// progress (the zone or the content server is down: the next run goes on
// from where this one stopped). Only one engine runs at a time per home.
func (a *Agent) Deploy(ctx context.Context, o DeployOptions) (DeployResult, error) {
	runStart := a.Now().UTC()
	unlock, err := a.lockEngine()
	if err != nil {
		return DeployResult{}, err
	}
	defer unlock()
	st, err := a.State()
	if err != nil {
		return DeployResult{}, err
	}
	if err := os.MkdirAll(a.logDir(), 0o755); err != nil {
		return DeployResult{}, err
	}
	lf, err := os.OpenFile(filepath.Join(a.logDir(), "deploy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return DeployResult{}, err
	}
	defer lf.Close()
	e := &engine{a: a, o: o, st: st, log: lf, inHand: map[string]int{}, fresh: map[string]int{}}
	if o.Log != nil {
		e.log = io.MultiWriter(lf, o.Log)
	}
	if e.o.Sleep == nil {
		e.o.Sleep = sleepCtx
	}
	if e.info, err = a.contentClient(); err != nil {
		return DeployResult{}, err
	}
	// A location that does not answer within the dial or header timeout is
	// given up for the next one.
	e.frags = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout: time.Minute, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}}
	defer e.frags.CloseIdleConnections()
	defer e.info.CloseIdleConnections()

	e.fc = a.fragmentCache()
	if err := e.fc.open(); err != nil {
		// Downloads work without it.
		e.logf("%v", err)
		e.fc = nil
	}
	if err := e.recoverLost(); err != nil {
		return DeployResult{}, err
	}
	if unsent(e.initial) {
		e.report(ctx)
	}
	res := DeployResult{}
	res.Contacted = e.sync(ctx) == nil
	if e.idle && !unsent(e.initial) {
		// Nothing assigned, nothing unfinished, nothing to send: the
		// common refresh, kept to the two requests and no more store reads.
		res.Packages, res.Disabled = e.initial, !e.cfg.Enabled
		return res, ctx.Err()
	}
	if ctx.Err() == nil {
		if err := e.periods(ctx); err != nil && ctx.Err() == nil {
			return DeployResult{}, err
		}
	}
	// Send what the periods produced; a zone that is down gets it next time.
	e.report(context.WithoutCancel(ctx))
	pkgs, err := a.Packages()
	if err != nil {
		return DeployResult{}, err
	}
	res.Packages = pkgs
	res.Disabled = !e.cfg.Enabled
	for _, p := range pkgs {
		if !p.Done() {
			res.Pending++
		}
		if p.Phase == PhaseDone && !p.Finished.Before(runStart) && !installed(p.Result) {
			res.Failed++
		}
	}
	return res, ctx.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// recoverLost settles packages whose action started in an engine that
// died: their result is lost, and running them again would break "exactly
// once", so the zone hears ERR_DONE_FAILED.
// unsent says whether a result waits to be sent to the zone.
func unsent(pkgs []*LocalPackage) bool {
	for _, p := range pkgs {
		if p.Phase == PhaseDone && !p.Reported {
			return true
		}
	}
	return false
}

func (e *engine) recoverLost() error {
	// Read first: a write transaction costs an fsync, even when it changes nothing.
	pkgs, err := e.a.Packages()
	if err != nil {
		return err
	}
	e.initial = pkgs
	defer func() {
		if e.initial == nil {
			e.initial, _ = e.a.Packages()
		}
	}()
	lost := false
	for _, p := range pkgs {
		lost = lost || p.Phase == PhaseRunning || (p.Phase == PhaseDone && p.Result == "")
	}
	if !lost {
		return nil
	}
	e.initial = nil // read again after the update
	return e.a.update(func(tx *bolt.Tx) error {
		pkgs, err := readPackages(tx)
		if err != nil {
			return err
		}
		for _, p := range pkgs {
			if p.Phase == PhaseRunning || (p.Phase == PhaseDone && p.Result == "") {
				e.logf("package %s: the engine stopped while its action ran; the result is lost (ERR_DONE_FAILED)", p.ID)
				p.Phase, p.Result, p.Reported, p.Finished = PhaseDone, "ERR_DONE_FAILED", false, e.a.Now().UTC()
				if err := putPackage(tx, p); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// report sends every result the zone does not have yet. A zone that cannot
// be reached leaves them in the cache for the next run.
func (e *engine) report(ctx context.Context) {
	pkgs, err := e.a.Packages()
	if err != nil {
		e.logf("results: %v", err)
		return
	}
	for _, p := range pkgs {
		if p.Phase != PhaseDone || p.Reported {
			continue
		}
		err := e.a.firstAnswer(e.st, func(c *client.Client) error {
			return c.Post(ctx, api.Prefix+"/device/packages/"+p.ID+"/status", api.PackageStatusReport{Status: p.Result, Detail: p.Detail, Output: p.Output, ExitCode: p.ExitCode}, nil)
		})
		if client.IsStatus(err, http.StatusNotFound) {
			// Unassigned meanwhile: nobody is waiting for this result.
			e.logf("package %s: result %s not taken (no longer assigned)", p.ID, p.Result)
			err = nil
		}
		if err != nil {
			e.logf("package %s: result %s kept for later: %v", p.ID, p.Result, err)
			return
		}
		e.logf("package %s: result %s sent", p.ID, p.Result)
		p.Reported = true
		if err := e.a.savePackage(p); err != nil {
			e.logf("package %s: %v", p.ID, err)
			return
		}
	}
}

// sync learns the assignments and the download configuration. Offline,
// the engine goes on with what it knew (the content server may still
// answer).
func (e *engine) sync(ctx context.Context) error {
	var dp api.DevicePackages
	err := e.a.firstAnswer(e.st, func(c *client.Client) error {
		return c.Get(ctx, api.Prefix+"/device/packages", &dp)
	})
	now := e.a.Now().UTC()
	if err != nil {
		e.offline = true
		e.logf("zone not reached (%v); going on with the packages known", err)
		return e.a.update(func(tx *bolt.Tx) error {
			e.cfg = defaultDownloadConfig()
			if b := tx.Bucket(bucketState); b != nil && b.Get(keyDownloadConfig) != nil {
				json.Unmarshal(b.Get(keyDownloadConfig), &e.cfg)
			}
			return nil
		})
	}
	e.cfg = dp.Config
	if e.cfg.PeriodLength < 1 {
		e.cfg.PeriodLength = 1
	}
	listed := map[string]api.DevicePackage{}
	for _, p := range dp.Packages {
		if content.ValidID(p.ID) {
			listed[p.ID] = p
		}
	}
	if !e.syncChanges(listed) {
		e.idle = true
		return nil
	}
	var dropped []*LocalPackage
	err = e.a.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketState)
		if err != nil {
			return err
		}
		data, _ := json.Marshal(e.cfg)
		if err := b.Put(keyDownloadConfig, data); err != nil {
			return err
		}
		pkgs, err := readPackages(tx)
		if err != nil {
			return err
		}
		known := map[string]*LocalPackage{}
		for _, p := range pkgs {
			known[p.ID] = p
			if _, ok := listed[p.ID]; !ok && p.Phase != PhaseDone && p.Phase != PhaseRunning {
				// Unassigned or deactivated: stop and forget it.
				dropped = append(dropped, p)
				if err := tx.Bucket(bucketPackages).Delete([]byte(p.ID)); err != nil {
					return err
				}
			}
		}
		for id, l := range listed {
			p := known[id]
			switch {
			case p == nil || (p.Done() && !installed(p.Result)):
				// New, or assigned again after a failure: start afresh.
				p = &LocalPackage{ID: id, Phase: PhaseNew, FirstSeen: now}
			case p.Done():
				// Installed before and assigned again: do not run it twice.
				e.logf("package %s: already installed here (%s)", id, p.Result)
				p.Result, p.Reported, p.Finished = "SUCCESS_ALREADY_SETUP", false, now
			case p.Phase == PhaseDone || p.Phase == PhaseRunning:
				continue
			}
			p.Priority, p.InfoLocation, p.PackLocation, p.Size, p.SHA256 = l.Priority, l.InfoLocation, l.PackLocation, l.Size, l.SHA256
			p.InfoLocations, p.PackLocations = cleanLocations(l.InfoLocations), cleanLocations(l.PackLocations)
			p.Now = l.Now
			if p.Phase == PhaseNew {
				p.Fragments = l.Fragments
			}
			p.Updated = now
			if err := putPackage(tx, p); err != nil {
				return err
			}
		}
		return nil
	})
	for _, p := range dropped {
		e.logf("package %s: no longer assigned; dropped", p.ID)
		e.release(p)
	}
	if err == nil {
		// SUCCESS_ALREADY_SETUP answers go out at once.
		e.report(ctx)
	}
	return err
}

// cleanLocations keeps the well-formed locations of a zone's list once
// each, in its order: host[:port]/path, no scheme, no spaces.
func cleanLocations(list []string) []string {
	var out []string
	for _, l := range list {
		l = strings.TrimRight(l, "/")
		if l == "" || strings.Contains(l, "://") || strings.ContainsAny(l, " \t\r\n?#") || slices.Contains(out, l) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// installed says whether a result means the package is on this device.
func installed(result string) bool {
	return strings.HasPrefix(result, "SUCCESS") || result == "ERR_ALREADY_SETUP" // from zac before SUCCESS_ALREADY_SETUP
}

// syncChanges tells whether the zone's answer changes anything here (a
// refresh with nothing to do then writes nothing).
func (e *engine) syncChanges(listed map[string]api.DevicePackage) bool {
	if len(listed) > 0 {
		return true
	}
	db, err := e.a.open(true)
	if err != nil {
		return true
	}
	defer db.Close()
	changed := false
	db.View(func(tx *bolt.Tx) error {
		var cfg api.DownloadConfig
		b := tx.Bucket(bucketState)
		if b == nil || b.Get(keyDownloadConfig) == nil || json.Unmarshal(b.Get(keyDownloadConfig), &cfg) != nil || cfg != e.cfg {
			changed = true
			return nil
		}
		pkgs, err := readPackages(tx)
		for _, p := range pkgs {
			changed = changed || (p.Phase != PhaseDone && p.Phase != PhaseRunning)
		}
		changed = changed || err != nil
		return nil
	})
	return changed
}

// active lists the packages the engine still has to work on. The records
// are read again at most once a second (a cycle with zero latencies is a
// fragment's time): often enough to see package-cancel, without opening
// the store and decoding every record for every fragment.
func (e *engine) active() ([]*LocalPackage, error) {
	if e.cache == nil || e.a.Now().Sub(e.cacheAt) >= time.Second {
		pkgs, err := e.a.Packages()
		if err != nil {
			return nil, err
		}
		e.cache, e.cacheAt = pkgs, e.a.Now()
	}
	pkgs := e.cache
	var out []*LocalPackage
	for _, p := range pkgs {
		if p.Phase != PhaseDone {
			out = append(out, p)
		}
	}
	return out, nil
}

// periods runs download periods as the reference describes them: each of
// PeriodLength cycles, numbered from 1; in cycle c a package of priority P
// gets one step (its info, one fragment, or its action) when c mod P is 0;
// packages of priority 0 get theirs first in every cycle, and while one of
// them fails nothing else is tried. FragLatency follows every fragment,
// CycleLatency every cycle, PeriodLatency every period. The run ends when
// nothing is left, or after a period without progress.
func (e *engine) periods(ctx context.Context) error {
	if !e.cfg.Enabled {
		e.logf("downloads are turned off in this zone")
		return nil
	}
	for {
		act, err := e.active()
		if err != nil || len(act) == 0 {
			return err
		}
		progress := false
		// Timeouts and cancellations count whatever the priority: a
		// package that never gets a turn must still end.
		for _, p := range act {
			if ok, _ := e.expire(p); ok {
				progress = true
			}
		}
		for c := 1; c <= e.cfg.PeriodLength; c++ {
			act, err := e.active()
			if err != nil {
				return err
			}
			if len(act) == 0 {
				return nil
			}
			blocked := false
			for _, p := range act {
				if p.Priority != 0 {
					continue
				}
				ok, err := e.step(ctx, p)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				progress = progress || ok
				if err != nil {
					blocked = true
					break
				}
			}
			for _, p := range act {
				if blocked || p.Priority == 0 || c%p.Priority != 0 {
					continue
				}
				ok, _ := e.step(ctx, p)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				progress = progress || ok
			}
			if e.finished {
				e.report(ctx)
				e.finished = false
			}
			if left, err := e.active(); err != nil || len(left) == 0 {
				return err // all done: no latency to wait for
			}
			if err := e.wait(ctx, e.cfg.CycleLatency, "next cycle"); err != nil {
				return err
			}
		}
		if err := e.wait(ctx, e.cfg.PeriodLatency, "next period"); err != nil {
			return err
		}
		if !progress {
			e.logf("a period went by without progress; stopping until the next run")
			return nil
		}
	}
}

// wait sleeps one of the zone's latencies (seconds), unless this run or
// an unfinished package asks for deployment now; the terminal hears how
// long.
func (e *engine) wait(ctx context.Context, seconds int, what string) error {
	if seconds <= 0 || e.urgent() {
		return ctx.Err()
	}
	e.status("%s: next attempt in %ds (%s; zac refresh --now skips the latencies)", e.where, seconds, what)
	return e.o.Sleep(ctx, time.Duration(seconds)*time.Second)
}

// urgent says whether latencies are ignored now: --now, or a package the
// zone wants deployed now and not finished yet.
func (e *engine) urgent() bool {
	if e.o.Now {
		return true
	}
	for _, p := range e.cache {
		if p.Now && p.Phase != PhaseDone {
			return true
		}
	}
	return false
}

// status tells the terminal where the engine stands (DeployOptions.Status).
func (e *engine) status(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if strings.HasPrefix(line, "package ") {
		e.where = strings.SplitN(line, ":", 2)[0]
	}
	if e.o.Status != nil {
		e.o.Status(line)
	}
}

// step gives a package its turn. ok says whether it moved forward; err is
// a failure to retry later (final failures become the package's result).
func (e *engine) step(ctx context.Context, p *LocalPackage) (ok bool, err error) {
	if ok, err := e.expire(p); ok {
		return true, err
	}
	switch p.Phase {
	case PhaseNew:
		res, err := e.fetchInfo(ctx, p)
		if res != "" {
			return true, e.finish(p, res)
		}
		if err != nil {
			return false, e.retryLater(p, err)
		}
		e.status("package %s: info fetched, %d fragment(s)", p.ID, p.Fragments)
		if p.Fragments == 0 {
			p.Phase = PhaseReady
		} else {
			p.Phase = PhaseDownload
		}
		if err := e.a.savePackage(p); err != nil {
			return false, err
		}
		if p.Phase == PhaseReady {
			return true, nil
		}
		fallthrough
	case PhaseDownload:
		p.Have = max(p.Have, e.fragmentsOnDisk(p))
		// Fragments this device already holds cost no request and no
		// fragment latency.
		reused := 0
		for p.Have < p.Fragments && e.reuse(p, p.Have+1) {
			p.Have++
			p.Reused++
			reused++
			e.inHand[p.ID] = p.Have
			if e.fresh[p.ID] == 0 {
				e.fresh[p.ID] = p.Have
			}
		}
		if p.Have >= p.Fragments {
			p.Phase = PhaseReady
			e.logReuse(p)
			return true, e.a.savePackage(p)
		}
		if reused > 0 {
			if err := e.a.savePackage(p); err != nil {
				return false, err
			}
		}
		from := p.PackFrom
		res, err := e.fetchFragment(ctx, p)
		if res != "" {
			return true, e.finish(p, res)
		}
		if err != nil {
			return false, e.retryLater(p, err)
		}
		p.Have++
		e.inHand[p.ID] = p.Have
		if e.fresh[p.ID] == 0 {
			e.fresh[p.ID] = p.Have
		}
		// The fragment files are the truth (renamed into place once checked):
		// the record is written every few fragments, not after each, and
		// fragmentsOnDisk catches up after a crash.
		// A new PackFrom is written at once: the records are read again
		// between turns, and a forgotten one sends the next fragment to a
		// dead location first.
		save := p.LastError != "" || p.Have%16 == 0 || p.PackFrom != from
		p.LastError = ""
		if p.Have >= p.Fragments {
			p.Phase, save = PhaseReady, true
			e.logReuse(p)
		}
		if save {
			if err := e.a.savePackage(p); err != nil {
				return false, err
			}
		}
		e.status("package %s: fragment %d/%d in", p.ID, p.Have, p.Fragments)
		return true, e.wait(ctx, e.cfg.FragLatency, "next fragment")
	case PhaseReady:
		if n := e.recheck(p); n > 0 {
			p.Have, p.Phase = n-1, PhaseDownload
			e.inHand[p.ID] = n - 1
			return true, e.a.savePackage(p)
		}
		return true, e.finish(p, e.install(ctx, p))
	}
	return false, nil
}

// logReuse says how much of a package's download this device had already.
func (e *engine) logReuse(p *LocalPackage) {
	if p.Reused > 0 {
		e.logf("package %s: %d of %d fragment(s) reused (already on this device), %d fetched", p.ID, p.Reused, p.Fragments, p.Fragments-p.Reused)
	}
}

// expire ends a package cancelled on this device (ERR_ABORTED) or not
// deployed within the download timeout (ERR_TIMEOUT).
func (e *engine) expire(p *LocalPackage) (bool, error) {
	if p.Phase == PhaseDone || p.Phase == PhaseRunning {
		return false, nil
	}
	if p.Cancel {
		e.logf("package %s: cancelled on this device", p.ID)
		return true, e.finish(p, "ERR_ABORTED")
	}
	if e.a.Now().Sub(p.FirstSeen) > time.Duration(e.cfg.Timeout)*24*time.Hour {
		e.logf("package %s: not deployed within %d day(s)", p.ID, e.cfg.Timeout)
		return true, e.finish(p, "ERR_TIMEOUT")
	}
	return false, nil
}

// recheck hashes again the fragments an earlier run fetched: fragments
// are not fsynced (as no download tool does), so after a power cut one may
// not be whole. Those this run fetched were hashed on the way in. It
// returns the first bad fragment (removed), or 0.
func (e *engine) recheck(p *LocalPackage) int {
	if p.Manifest == nil {
		return 0 // the whole archive's MD5 is checked at install
	}
	upto := p.Fragments
	if f := e.fresh[p.ID]; f > 0 {
		upto = f - 1
	}
	for n := 1; n <= upto; n++ {
		path := filepath.Join(e.a.packageDir(p.ID), content.FragmentName(p.ID, n))
		if !fragmentOK(path, p.Manifest.Fragments[n-1]) {
			e.logf("package %s: fragment %d/%d on disk is damaged; fetched again", p.ID, n, p.Fragments)
			os.Remove(path)
			return n
		}
	}
	return 0
}

// fragmentsOnDisk counts the fragments in place from the first on. Those
// the record has not counted yet are from a run that stopped: after a power
// cut they may not have reached the disk whole, so they are checked again
// (at most a batch) and a bad one is dropped.
func (e *engine) fragmentsOnDisk(p *LocalPackage) int {
	n := max(p.Have, e.inHand[p.ID])
	defer func() { e.inHand[p.ID] = n }()
	for n < p.Fragments {
		path := filepath.Join(e.a.packageDir(p.ID), content.FragmentName(p.ID, n+1))
		if _, err := os.Stat(path); err != nil {
			break
		}
		if n >= p.Have && p.Manifest != nil && !fragmentOK(path, p.Manifest.Fragments[n]) {
			os.Remove(path)
			break
		}
		n++
	}
	return n
}

func (e *engine) retryLater(p *LocalPackage, err error) error {
	e.logf("package %s: %v (retried later)", p.ID, err)
	p.LastError = err.Error()
	if serr := e.a.savePackage(p); serr != nil {
		return serr
	}
	return err
}

// finish records a result (sent at the end of the cycle) and removes the
// package's files.
func (e *engine) finish(p *LocalPackage, result string) error {
	if p.Phase != PhaseRunning {
		// After an action, install has cleaned up (ERR_CLEAN otherwise).
		if err := e.release(p); err != nil && result == "SUCCESS" {
			result = "ERR_CLEAN"
		}
	}
	p.Phase, p.Result, p.Reported, p.Finished = PhaseDone, result, false, e.a.Now().UTC()
	e.finished = true
	e.logf("package %s: result %s", p.ID, result)
	e.status("package %s: %s", p.ID, result)
	return e.a.savePackage(p)
}

// errFinal is an error whose status is the package's result.
type errFinal struct {
	status string
	err    error
}

func (e *errFinal) Error() string { return e.err.Error() }

func final(status string, format string, args ...any) error {
	return &errFinal{status: status, err: fmt.Errorf(format, args...)}
}
