// Package contentrepl keeps this zone server's content (packages,
// preboot images, agent install packs) in step with its peers' and
// checks it (scrub), and serves the routes of both: content replication
// status and schedule, closest-server rules, scrub, and the peers' image
// and damage-report routes. Its loops (Run, ScrubLoop) are started and
// stopped by their owner, the daemon, through the server's Loops.
package contentrepl

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zonekit/internal/agentpack"
	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/background"
	"zonekit/internal/config"
	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/zone"
)

// Content replication (docs/content-repo.md): each Primary Server pulls
// from its peers the package content and preboot images it lacks, on the
// zone's schedule, at once when the store shows a package created,
// activated or deleted, and when an administrator asks for a pass. What
// each server holds is recorded in the store (content.state), so that any
// server answers the status and sends agents to servers that hold a
// package.

// Zone is what content replication needs of the zone's state (*zone.DB).
type Zone interface {
	Exec(actor, name string, data any) error
	Now() time.Time
	Packages() ([]zone.Package, error)
	Servers() ([]zone.Server, error)
	Server(id string) (zone.Server, error)
	SetContentPort(serverID string, port int) error
	ContentStates() ([]zone.ContentState, error)
	SetContentState(st zone.ContentState) error
	ReplicationSchedule() (zone.ReplicationSchedule, error)
	ClosestServerRules() ([]zone.ClosestServerRule, error)
	Device(id string) (zone.Device, error)
	ResolveDevice(ref string) (zone.Device, error)
}

// Peers is how this server reaches the zone's other servers.
type Peers interface {
	// TLSConfig is this server's client side of mutual TLS with a peer.
	TLSConfig() *tls.Config
	// URL is where peer answers (https://HOST:PORT).
	URL(peer zone.Server) string
	// Call sends a JSON request to peer's API (path after /api/v1).
	Call(ctx context.Context, peer zone.Server, method, path string, in, out any) error
}

// PackSet is one set of agent install packs, as /zenworks-setup/packs.json
// lists them.
type PackSet struct {
	Path string             `json:"path"`
	Pack agentpack.Manifest `json:"pack"`
}

// Content is one server's content replication and scrub state.
type Content struct {
	Zone  Zone
	Repo  *content.Repo
	Peers Peers
	// Self is this server.
	Self zone.Server
	// ContentPort is this server's content port (content.port), recorded
	// for agents; ScrubInterval how often ScrubLoop scrubs (0 never).
	ContentPort   int
	ScrubInterval time.Duration
	// Paths is this server's zonekit home: images and agent packs.
	Paths config.Paths
	// Building reports whether package id is being built here: its
	// content may exist before its record, and is left alone.
	Building func(id string) bool
	// PackSets lists this server's agent install packs.
	PackSets func() []PackSet
	Log      *slog.Logger
	Now      func() time.Time
	// ProgressEvery is how often a pull in flight records its bytes.
	ProgressEvery time.Duration
	// Background runs what a request or a pull starts and does not wait
	// for (a scrub a peer asked for, a damaged copy reported to its
	// server): bounded, and cancelled at shutdown. New makes one if unset.
	Background *background.Group

	kick    chan struct{}
	mu      sync.Mutex
	failed  bool       // the last pass left something missing: retry sooner
	scrubMu sync.Mutex // one scrub at a time
}

// New returns c ready to run, its unset ProgressEvery defaulted.
func New(c *Content) *Content {
	c.kick = make(chan struct{}, 1)
	if c.ProgressEvery == 0 {
		c.ProgressEvery = progressEvery
	}
	if c.Background == nil {
		c.Background = background.New(maxBackground)
	}
	return c
}

// Trigger asks for a pass now (after a package is created or activated here).
func (c *Content) Trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// replicationPoll is how often the store is looked at for new packages
// and requested passes: a bbolt read, cheap.
const replicationPoll = time.Second

// replicationRetry is how soon a pass that left content missing (a peer
// down, a cut transfer) is tried again, when the schedule is longer.
const replicationRetry = 30 * time.Second

// progressEvery is how often a pull in flight reports its bytes.
const progressEvery = 2 * time.Second

// maxBackground bounds the scrubs peers asked for (they run one at a
// time, the others wait) and the damaged copies being reported, together.
const maxBackground = 8

// Run runs replication passes until ctx ends.
func (c *Content) Run(ctx context.Context) {
	var last time.Time
	var lastFP string
	var lastReq time.Time
	tick := time.NewTicker(replicationPoll)
	defer tick.Stop()
	// A pull that this server was running when it stopped is over.
	if _, _, mine, err := c.replicationView(); err == nil {
		for k, st := range mine {
			if st.State == zone.ContentInFlight {
				c.recordState(mine, zone.ContentState{Package: k, State: zone.ContentMissing, Bytes: st.Bytes, Size: st.Size, Peer: st.Peer,
					Error: "pull interrupted: the server stopped"})
			}
		}
	}
	first := true
	for {
		kicked := first
		first = false
		if !kicked {
			select {
			case <-ctx.Done():
				return
			case <-c.kick:
				kicked = true
			case <-tick.C:
			}
		}
		sched, err := c.Zone.ReplicationSchedule()
		if err != nil {
			c.Log.Error("content replication", "err", err)
			continue
		}
		fp, err := c.packagesFingerprint()
		if err != nil {
			c.Log.Error("content replication", "err", err)
			continue
		}
		every := sched.Interval
		c.mu.Lock()
		if c.failed && every > replicationRetry {
			every = replicationRetry
		}
		c.mu.Unlock()
		due := kicked || fp != lastFP || sched.Requested.After(lastReq) || c.Now().Sub(last) >= every
		if !due {
			continue
		}
		lastFP, lastReq, last = fp, sched.Requested, c.Now()
		// Agents are sent to this server's fragments at its content port:
		// recorded (again, until it sticks: replication may not be ready).
		if self, err := c.Zone.Server(c.Self.ID); err == nil && self.ContentPort != c.ContentPort {
			if err := c.Zone.SetContentPort(c.Self.ID, c.ContentPort); err != nil {
				c.Log.Warn("record content port", "err", err)
			}
		}
		missing := c.Pass(ctx)
		c.mu.Lock()
		c.failed = missing
		c.mu.Unlock()
	}
}

// packagesFingerprint changes whenever a package is created, changed,
// activated, deactivated or deleted.
func (c *Content) packagesFingerprint() (string, error) {
	pkgs, err := c.Zone.Packages()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range pkgs {
		b.WriteString(p.ID + ":" + p.SHA256)
		if p.Activation != nil {
			b.WriteString("@" + p.Activation.Activated.String())
		}
		b.WriteByte(';')
	}
	return b.String(), nil
}

// Pass makes this server's content match the zone's: packages
// the store no longer has are removed, those it lacks are pulled from
// peers, images the peers hold in a newer version are pulled. It reports
// whether something is still missing.
func (c *Content) Pass(ctx context.Context) (missing bool) {
	start := time.Now()
	pkgs, err := c.Zone.Packages()
	if err != nil {
		c.Log.Error("content replication", "err", err)
		return true
	}
	repo := c.Repo
	want := map[string]bool{}
	for _, p := range pkgs {
		want[p.ID] = true
	}
	// Packages deleted on another server go here too.
	ids, _ := repo.IDs()
	for _, id := range ids {
		if !want[id] && !c.Building(id) {
			if err := repo.Remove(id); err != nil {
				c.Log.Error("content replication: remove a deleted package", "package", id, "err", err)
			}
		}
	}
	pulls, _ := repo.Pulls()
	for _, id := range pulls {
		if !want[id] {
			repo.DropPull(id)
		}
	}
	peers, holders, mine, err := c.replicationView()
	if err != nil {
		c.Log.Error("content replication", "err", err)
		return true
	}
	pulled := 0
	for _, p := range pkgs {
		if ctx.Err() != nil {
			return true
		}
		if repo.Has(p.ID, p.SHA256) {
			c.recordState(mine, zone.ContentState{Package: p.ID, State: zone.ContentPresent, Bytes: p.Size, Size: p.Size, Peer: mine[p.ID].Peer})
			continue
		}
		if c.Building(p.ID) {
			continue
		}
		if err := c.pullPackage(ctx, p, peers, holders[p.ID], mine); err != nil {
			missing = true
			c.Log.Warn("content replication: package not pulled", "package", p.ID, "err", err)
			state := zone.ContentMissing
			if len(repo.Damaged(p.ID)) > 0 {
				state = zone.ContentDamaged
			}
			c.recordState(mine, zone.ContentState{Package: p.ID, State: state, Size: p.Size, Error: err.Error()})
			continue
		}
		pulled++
	}
	if c.replicateImages(ctx, peers, holders, mine) {
		missing = true
	}
	if c.replicatePacks(ctx, peers) {
		missing = true
	}
	if pulled > 0 || missing {
		c.Log.Info("content replication pass", "pulled", pulled, "missing", missing, "duration_ms", time.Since(start).Milliseconds())
	}
	return missing
}

// replicationView reads the servers (but this one), which server holds
// which package or image (ids in name order), and this server's records.
func (c *Content) replicationView() (peers map[string]zone.Server, holders map[string][]string, mine map[string]zone.ContentState, err error) {
	servers, err := c.Zone.Servers()
	if err != nil {
		return nil, nil, nil, err
	}
	peers = map[string]zone.Server{}
	for _, sv := range servers {
		if sv.ID != c.Self.ID {
			peers[sv.ID] = sv
		}
	}
	states, err := c.Zone.ContentStates()
	if err != nil {
		return nil, nil, nil, err
	}
	holders = map[string][]string{}
	mine = map[string]zone.ContentState{}
	for _, st := range states {
		if st.Server == c.Self.ID {
			mine[st.Package] = st
			continue
		}
		if _, ok := peers[st.Server]; ok && st.State == zone.ContentPresent {
			holders[st.Package] = append(holders[st.Package], st.Server)
		}
	}
	for k, hs := range holders {
		sort.Slice(hs, func(i, j int) bool { return peers[hs[i]].Name < peers[hs[j]].Name })
		holders[k] = hs
	}
	return peers, holders, mine, nil
}

// peerOrder is the order peers are asked for something: those recorded
// as holding it first, then the others (a record may lag), by name.
func peerOrder(peers map[string]zone.Server, holders []string) []zone.Server {
	out := make([]zone.Server, 0, len(peers))
	seen := map[string]bool{}
	for _, id := range holders {
		if p, ok := peers[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, p)
		}
	}
	var rest []zone.Server
	for id, p := range peers {
		if !seen[id] {
			rest = append(rest, p)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	return append(out, rest...)
}

// recordState writes this server's record when it says something new.
func (c *Content) recordState(mine map[string]zone.ContentState, st zone.ContentState) {
	st.Server = c.Self.ID
	old, ok := mine[st.Package]
	if ok && old.State == st.State && old.Bytes == st.Bytes && old.Size == st.Size && old.Peer == st.Peer && old.Error == st.Error {
		return
	}
	st.Updated = c.Zone.Now()
	if err := c.Zone.SetContentState(st); err != nil {
		c.Log.Error("record content state", "package", st.Package, "err", err)
		return
	}
	mine[st.Package] = st
}

func (c *Content) pullPackage(ctx context.Context, p zone.Package, peers map[string]zone.Server, holders []string, mine map[string]zone.ContentState) error {
	order := peerOrder(peers, holders)
	if len(order) == 0 {
		return errkind.New(errkind.NotFound, "no other server in the zone to pull it from")
	}
	client := c.PeerClient()
	defer client.CloseIdleConnections()
	info := content.InfoFor(p.ID, p.Spec, p.MD5, p.Frags).Marshal()
	var errs []string
	for _, peer := range order {
		var done atomic.Int64
		req := content.PullRequest{ID: p.ID, Size: p.Size, SHA256: p.SHA256, MD5: p.MD5, Frags: p.Frags, Info: info,
			Base: c.Peers.URL(peer) + api.ContentPrefix, Client: client, Done: &done}
		c.recordState(mine, zone.ContentState{Package: p.ID, State: zone.ContentInFlight, Size: p.Size, Peer: peer.ID})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(c.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					// Only this goroutine writes while the pull runs.
					c.recordState(mine, zone.ContentState{Package: p.ID, State: zone.ContentInFlight, Bytes: done.Load(), Size: p.Size, Peer: peer.ID})
				}
			}
		}()
		start := time.Now()
		st, err := c.Repo.Pull(ctx, req)
		close(stop)
		wg.Wait()
		if err == nil {
			if st.Refetched > 0 {
				c.reportDamaged(peer, p.ID)
			}
			c.Log.Info("content replication: package pulled", "package", p.ID, "peer", peer.Name, "received", st.Received,
				"fragments", st.Fetched, "reused", st.Reused, "resumed", st.Resumed, "refetched", st.Refetched,
				"duration_ms", time.Since(start).Milliseconds())
			c.recordState(mine, zone.ContentState{Package: p.ID, State: zone.ContentPresent, Bytes: p.Size, Size: p.Size, Peer: peer.ID})
			return nil
		}
		if st.Refetched > 0 || errors.Is(err, content.ErrDigest) {
			// Damage is never silent: this server logs it and the peer
			// that sent it checks its copy.
			c.reportDamaged(peer, p.ID)
		}
		errs = append(errs, peer.Name+": "+err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return errors.New(strings.Join(errs, "; "))
}

// PeerClient reaches peers over HTTPS with mutual TLS as the store's
// replication does (PeerTLSConfig): this server's own zone certificate,
// and a peer accepted only with a server certificate of the zone CA.
// Without an overall timeout: a package may take minutes; stalls end at
// the transport's timeouts or the pass's context.
func (c *Content) PeerClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:       c.Peers.TLSConfig(),
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       30 * time.Second,
			Proxy:                 nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ImagesDir is the image directory of this server's imaging service.
func (c *Content) ImagesDir() string {
	l := conf.Layout{Home: c.Paths.Home}
	if v, err := l.Load(conf.Imaging); err == nil {
		if d := v.String("ImageDirectory"); d != "" {
			return d
		}
	}
	return l.Images()
}

// replicateImages pulls each image that a peer holds in a version this
// server lacks (another digest and a later modification time: an image
// replaced on one server replaces it everywhere). It reports whether
// something is still missing.
func (c *Content) replicateImages(ctx context.Context, peers map[string]zone.Server, holders map[string][]string, mine map[string]zone.ContentState) (missing bool) {
	dir := c.ImagesDir()
	local, err := imaging.List(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.Log.Error("content replication: images", "err", err)
		return true
	}
	have := map[string]imaging.Image{}
	for _, im := range local {
		have[im.Name] = im
		c.recordState(mine, zone.ContentState{Package: zone.ImagePrefix + im.Name, State: zone.ContentPresent, Bytes: im.Size, Size: im.Size, Peer: mine[zone.ImagePrefix+im.Name].Peer})
	}
	if len(peers) == 0 {
		return false
	}
	client := c.PeerClient()
	defer client.CloseIdleConnections()
	// The newest version of each image among the peers.
	type offer struct {
		img  imaging.Image
		peer zone.Server
	}
	best := map[string]offer{}
	for _, peer := range peerOrder(peers, nil) {
		var imgs []imaging.Image
		if err := getJSON(ctx, client, c.Peers.URL(peer)+api.Prefix+"/replication/images", &imgs); err != nil {
			c.Log.Warn("content replication: image list", "peer", peer.Name, "err", err)
			continue
		}
		for _, im := range imgs {
			if b, ok := best[im.Name]; !ok || im.Modified.After(b.img.Modified) {
				best[im.Name] = offer{im, peer}
			}
		}
	}
	names := make([]string, 0, len(best))
	for n := range best {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		o := best[name]
		if h, ok := have[name]; ok && (h.SHA256 == o.img.SHA256 || !o.img.Modified.After(h.Modified)) {
			continue
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			c.Log.Error("content replication: images", "err", err)
			return true
		}
		key := zone.ImagePrefix + name
		var done atomic.Int64
		c.recordState(mine, zone.ContentState{Package: key, State: zone.ContentInFlight, Size: o.img.Size, Peer: o.peer.ID})
		err := c.pullImage(ctx, client, o.peer, o.img, dir, &done)
		if errors.Is(err, content.ErrDigest) {
			c.reportDamaged(o.peer, key)
		}
		if err != nil {
			missing = true
			c.Log.Warn("content replication: image not pulled", "image", name, "peer", o.peer.Name, "err", err)
			c.recordState(mine, zone.ContentState{Package: key, State: zone.ContentMissing, Bytes: done.Load(), Size: o.img.Size, Peer: o.peer.ID, Error: err.Error()})
			continue
		}
		c.recordState(mine, zone.ContentState{Package: key, State: zone.ContentPresent, Bytes: o.img.Size, Size: o.img.Size, Peer: o.peer.ID})
	}
	return missing
}

// pullImage fetches an image (resumable, checked against its SHA-256)
// and places it as the imaging service stores uploads: the checksum
// file, then the image by rename, with the peer's modification time.
func (c *Content) pullImage(ctx context.Context, hc *http.Client, peer zone.Server, im imaging.Image, dir string, done *atomic.Int64) error {
	if len(im.SHA256) != 64 || im.Size < 0 || !validImageName(im.Name) {
		return errkind.New(errkind.Invalid, "the peer describes image %q wrongly", im.Name)
	}
	final := filepath.Join(dir, im.Name)
	tmp := filepath.Join(dir, ".replica-"+im.Name)
	url := c.Peers.URL(peer) + api.Prefix + "/replication/images/" + im.Name
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if _, _, err = content.FetchFile(ctx, hc, url, tmp, im.Size, im.SHA256, done); !errors.Is(err, content.ErrDigest) {
			break
		}
	}
	if err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return err
	}
	if err := os.Chtimes(tmp, im.Modified, im.Modified); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(final+".sha256", []byte(im.SHA256+"\n"), 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	syncPath(dir)
	return nil
}

func validImageName(name string) bool {
	return policy.ValidName(name) && !strings.HasSuffix(name, ".sha256")
}

func getJSON(ctx context.Context, c *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out)
}

func syncPath(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
