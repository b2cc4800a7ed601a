package contentrepl

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// inFlightStale is how long an in-flight record may go without progress
// (recorded every few seconds while a pull runs) before it is shown stale.
const inFlightStale = time.Minute

// scrub re-reads every package and image this server stores (only, when
// not empty: one package id or image:NAME) and checks them against their
// SHA-256 digests, as 'restic check --read-data' or a ZFS scrub does. A
// damaged copy is reported, logged, taken out of service and pulled again
// from a peer that holds a good one (the next replication pass, run at
// once here).
func (c *Content) scrub(ctx context.Context, only string) (api.ScrubReport, error) {
	c.scrubMu.Lock()
	defer c.scrubMu.Unlock()
	rep := api.ScrubReport{Server: c.Self.Name, Started: c.Now().UTC(), Damaged: []api.ScrubDamage{}}
	repo := c.Repo
	ids, err := repo.IDs()
	if err != nil {
		return rep, err
	}
	_, _, mine, err := c.replicationView()
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		if only != "" && only != id {
			continue
		}
		if c.Building(id) {
			continue
		}
		res, err := repo.Verify(ctx, id)
		rep.Bytes += res.Bytes
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if err != nil {
			c.Log.Warn("scrub: package unreadable", "package", id, "err", err)
			continue
		}
		rep.Packages++
		if len(res.Damaged) == 0 {
			continue
		}
		d := api.ScrubDamage{Kind: "package", Item: id, Fragments: res.Damaged}
		c.Log.Error("scrub: damaged package copy taken out of service", "package", id, "fragments", strings.Join(res.Damaged, ","))
		if err := repo.MarkDamaged(id, res.Damaged); err != nil {
			d.Error = err.Error()
		}
		c.recordState(mine, zone.ContentState{Package: id, State: zone.ContentDamaged, Size: mine[id].Size,
			Error: "scrub: damaged fragments " + strings.Join(res.Damaged, ", ")})
		rep.Damaged = append(rep.Damaged, d)
	}
	dir := c.ImagesDir()
	imgs, err := imaging.List(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, err
	}
	for _, im := range imgs {
		if only != "" && only != zone.ImagePrefix+im.Name {
			continue
		}
		sum, n, err := content.FileSHA256(ctx, filepath.Join(dir, im.Name))
		rep.Bytes += n
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if err != nil {
			c.Log.Warn("scrub: image unreadable", "image", im.Name, "err", err)
			continue
		}
		rep.Images++
		if sum == im.SHA256 {
			continue
		}
		d := api.ScrubDamage{Kind: "image", Item: im.Name}
		c.Log.Error("scrub: damaged image taken out of service", "image", im.Name, "sha256", sum, "want", im.SHA256)
		// Set aside (names starting with a dot are not images), so that the
		// replication pass pulls a good copy under its name.
		if err := os.Rename(filepath.Join(dir, im.Name), filepath.Join(dir, ".damaged-"+im.Name)); err != nil {
			d.Error = err.Error()
		}
		key := zone.ImagePrefix + im.Name
		c.recordState(mine, zone.ContentState{Package: key, State: zone.ContentDamaged, Size: im.Size, Error: "scrub: SHA-256 does not match"})
		rep.Damaged = append(rep.Damaged, d)
	}
	if len(rep.Damaged) > 0 {
		// Repair now: the pass pulls what is no longer held, from peers
		// that hold a good copy.
		c.Pass(ctx)
		_, _, mine, _ = c.replicationView()
		for i, d := range rep.Damaged {
			key := d.Item
			if d.Kind == "image" {
				key = zone.ImagePrefix + d.Item
			}
			st := mine[key]
			rep.Damaged[i].Repaired = st.State == zone.ContentPresent
			if !rep.Damaged[i].Repaired {
				rep.Damaged[i].Error = "no peer sent a good copy: " + st.Error
				if d.Kind == "package" {
					// The pass recorded it missing; it stays marked damaged.
					c.recordState(mine, zone.ContentState{Package: key, State: zone.ContentDamaged, Size: st.Size, Error: rep.Damaged[i].Error})
				}
			} else {
				c.Log.Info("scrub: damaged copy repaired from a peer", "item", d.Item, "peer", st.Peer)
			}
		}
	}
	rep.Finished = c.Now().UTC()
	c.Log.Info("scrub finished", "packages", rep.Packages, "images", rep.Images, "bytes", rep.Bytes, "damaged", len(rep.Damaged))
	return rep, nil
}

// ScrubLoop scrubs every interval (content.scrub-interval; 0 never).
func (c *Content) ScrubLoop(ctx context.Context) {
	every := c.ScrubInterval
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.scrub(ctx, ""); err != nil && ctx.Err() == nil {
			c.Log.Error("scheduled scrub", "err", err)
		}
	}
}

// postScrub runs a scrub on this server now (zman content-scrub).
func (c *Content) postScrub(w http.ResponseWriter, r *http.Request, actor string) error {
	only := r.URL.Query().Get("package")
	if only != "" {
		if err := checkScrubItem(only); err != nil {
			return err
		}
	}
	c.Log.Info("scrub requested", "actor", actor, "only", only)
	rep, err := c.scrub(r.Context(), only)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rep)
	return nil
}

// peerSuspect is told by a peer that a copy it pulled from here arrived
// damaged: this server scrubs that item at once, in the background.
func (c *Content) peerSuspect(w http.ResponseWriter, r *http.Request, peer zone.Server) error {
	item := r.URL.Query().Get("package")
	if err := checkScrubItem(item); err != nil {
		return err
	}
	c.Log.Warn("scrub: a peer received a damaged copy from here", "peer", peer.Name, "item", item)
	started := c.Background.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		if _, err := c.scrub(ctx, item); err != nil {
			c.Log.Error("scrub after a peer's report", "item", item, "err", err)
		}
	})
	if !started {
		return errkind.New(errkind.Unavailable, "this server is scrubbing for other reports already, or shutting down: report %s again later", item)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// reportDamaged tells peer that item arrived damaged from it.
func (c *Content) reportDamaged(peer zone.Server, item string) {
	c.Log.Warn("content replication: a peer sent a damaged copy", "peer", peer.Name, "item", item)
	started := c.Background.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.Peers.Call(ctx, peer, http.MethodPost, "/cluster/content/suspect?package="+item, nil, nil); err != nil {
			c.Log.Warn("content replication: report a damaged copy to its server", "peer", peer.Name, "err", err)
		}
	})
	if !started {
		c.Log.Warn("content replication: damaged copy not reported (too many reports in flight, or shutting down); its scrub will find it", "peer", peer.Name, "item", item)
	}
}

// checkScrubItem accepts a package id or image:NAME.
func checkScrubItem(item string) error {
	img, isImage := strings.CutPrefix(item, zone.ImagePrefix)
	if content.ValidID(item) || isImage && validImageName(img) {
		return nil
	}
	return errkind.New(errkind.Usage, "package %q: want a package id or image:NAME", item)
}
