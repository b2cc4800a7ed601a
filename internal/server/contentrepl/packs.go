package contentrepl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"zonekit/internal/agentpack"
	"zonekit/internal/atomicfile"
	"zonekit/internal/content"
	"zonekit/internal/zone"
)

// replicatePacks pulls the agent install packs (default and custom) that a
// peer holds in a newer build than this server, so that every Primary
// Server offers the same packs at /zenworks-setup whichever one built them.
// Packs deleted on one server are not deleted elsewhere. It reports
// whether something is still missing.
func (c *Content) replicatePacks(ctx context.Context, peers map[string]zone.Server) (missing bool) {
	if len(peers) == 0 {
		return false
	}
	local := map[string]agentpack.Manifest{}
	for _, ps := range c.PackSets() {
		local[ps.Path] = ps.Pack
	}
	client := c.PeerClient()
	defer client.CloseIdleConnections()
	type offer struct {
		set  PackSet
		peer zone.Server
	}
	best := map[string]offer{}
	for _, peer := range peerOrder(peers, nil) {
		var sets []PackSet
		if err := getJSON(ctx, client, c.Peers.URL(peer)+"/zenworks-setup/packs.json", &sets); err != nil {
			continue
		}
		for _, ps := range sets {
			if b, ok := best[ps.Path]; !ok || ps.Pack.Built.After(b.set.Pack.Built) {
				best[ps.Path] = offer{ps, peer}
			}
		}
	}
	for path, o := range best {
		if l, ok := local[path]; ok && !o.set.Pack.Built.After(l.Built) {
			continue
		}
		dir, ok := c.packDir(path)
		if !ok {
			continue
		}
		if err := c.pullPack(ctx, client, o.peer, o.set, dir); err != nil {
			missing = true
			c.Log.Warn("content replication: agent packs not pulled", "packs", path, "peer", o.peer.Name, "err", err)
			continue
		}
		c.Log.Info("content replication: agent packs pulled", "packs", path, "peer", o.peer.Name, "built", o.set.Pack.Built)
	}
	return missing
}

// packDir maps a pack path of /zenworks-setup to its directory here.
func (c *Content) packDir(path string) (string, bool) {
	if path == "/zenworks-setup/" {
		return agentpack.DefaultDir(c.Paths), true
	}
	name, ok := strings.CutPrefix(path, "/zenworks-setup/custom/")
	name, ok2 := strings.CutSuffix(name, "/")
	if !ok || !ok2 || !agentpack.ValidName(name) {
		return "", false
	}
	return agentpack.CustomDir(c.Paths, name), true
}

// pullPack fetches every file of a peer's packs (each checked against the
// manifest's SHA-256) beside dir, then puts them in place in one step.
func (c *Content) pullPack(ctx context.Context, hc *http.Client, peer zone.Server, ps PackSet, dir string) error {
	for _, f := range ps.Pack.Files {
		if !agentpack.ValidFileName(f.Name) || len(f.SHA256) != 64 || f.Size < 0 {
			return fmt.Errorf("the peer describes pack file %q wrongly", f.Name)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".pull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	var sums strings.Builder
	for _, f := range ps.Pack.Files {
		url := c.Peers.URL(peer) + ps.Path + f.Name
		if _, _, err := content.FetchFile(ctx, hc, url, filepath.Join(tmp, f.Name), f.Size, f.SHA256, nil); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if f.Kind == "sh" {
			mode = 0o755
		}
		if err := os.Chmod(filepath.Join(tmp, f.Name), mode); err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Name)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, agentpack.SumsFile), []byte(sums.String()), 0o644); err != nil {
		return err
	}
	mj, err := json.MarshalIndent(ps.Pack, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, agentpack.ManifestFile), append(mj, '\n'), 0o644); err != nil {
		return err
	}
	syncPath(tmp)
	return agentpack.Place(tmp, dir)
}
