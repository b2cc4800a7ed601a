// Package backuprestore serves a zone server's backup and restore
// (/api/v1/backup, /api/v1/restore): the configuration tree and a
// consistent store snapshot streamed as one archive, and a backup
// unpacked, checked and swapped in, after which the server answers
// nothing until it is restarted.
package backuprestore

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/backup"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/metrics"
	"zonekit/internal/replica"
	"zonekit/internal/restore"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/version"
	"zonekit/internal/zone"

	"github.com/prometheus/client_golang/prometheus"
)

// RestartCommand is what an administrator runs after a restore.
const RestartCommand = "zconfigure -c Start --action restart"

// backupIncludes are the parts of the home a backup keeps: the whole conf/
// tree (configuration, certificates, and under security/ the server key and,
// on the CertAuth server, the CA key pair) plus the store snapshot. Left
// out, as in the reference: logs, the content repository (replicated or
// backed up on its own), the remint working area and run-time files.
func backupIncludes() []string { return []string{"conf"} }

// backupExcluded leaves out temporary files of interrupted atomic writes.
func backupExcluded(rel string) bool {
	return strings.Contains(filepath.Base(rel), ".tmp-")
}

// Zone is what backup and restore need of the zone's state (*zone.DB).
type Zone interface {
	Snapshot(fn func(size int64, write func(io.Writer) (int64, error)) error) error
	Servers() ([]zone.Server, error)
}

// Replica is this server's store replication (*replica.Node).
type Replica interface {
	Members() ([]replica.Member, error)
	Shutdown() error
}

// Handlers serve the backup and restore routes.
type Handlers struct {
	Paths config.Paths
	Zone  Zone
	// ZoneRecord and Self are this zone and this server.
	ZoneRecord zone.Zone
	Self       zone.Server
	// CertAuth reports whether this server holds the zone CA and its
	// key (recorded in a backup's information).
	CertAuth func() bool
	// Replica returns this server's replication, nil when it has none.
	Replica func() Replica
	// Restored is called when a restore starts replacing the state on
	// disk: from then on this process answers nothing until restarted.
	Restored func()
	// Backups and Restores time each by result.
	Backups, Restores *prometheus.HistogramVec
	Now               func() time.Time
	Log               *slog.Logger

	restoreMu sync.Mutex
}

// Register mounts the routes.
func (h *Handlers) Register(r httpapi.Routes) {
	r.Admin("GET "+api.Prefix+"/backup", func(w http.ResponseWriter, r *http.Request, actor string) error {
		start := time.Now()
		return metrics.Timed(h.Backups, start, h.getBackup(w, r, actor))
	})
	r.Admin("POST "+api.Prefix+"/restore", func(w http.ResponseWriter, r *http.Request, actor string) error {
		start := time.Now()
		return metrics.Timed(h.Restores, start, h.postRestore(w, r, actor))
	})
}

// storeEntry is where the store snapshot sits inside a backup.
const storeEntry = restore.StoreEntry

func (h *Handlers) getBackup(w http.ResponseWriter, r *http.Request, actor string) error {
	p := h.Paths
	sources, err := backup.TreeSources(p.Home, backupIncludes(), backupExcluded)
	if err != nil {
		return fmt.Errorf("collect configuration: %w", err)
	}
	info := backup.Info{
		ZonekitVersion: version.String(), Zone: h.ZoneRecord.Name, ZoneID: h.ZoneRecord.ID,
		Server: h.Self.Name, ServerID: h.Self.ID, Created: h.Now().UTC(),
		CertAuth: h.CertAuth(),
	}
	started := false
	err = h.Zone.Snapshot(func(size int64, write func(io.Writer) (int64, error)) error {
		// The snapshot writes itself into the archive: its file is read
		// straight into the buffers that are hashed and compressed.
		sources = append(sources, backup.Source{
			Name: storeEntry, Mode: 0o600, ModTime: info.Created, UID: os.Getuid(), GID: os.Getgid(), Size: size,
			WriteTo: write,
		})
		w.Header().Set("Content-Type", "application/zstd")
		w.Header().Set(api.HeaderZone, h.ZoneRecord.Name)
		w.Header().Set(api.HeaderServer, h.Self.Name)
		w.WriteHeader(http.StatusOK)
		started = true
		_, err := backup.Pack(w, info, sources, nil)
		return err
	})
	if err != nil {
		if !started {
			return err
		}
		// The status is sent; only breaking the stream tells the client.
		h.Log.Error("backup stream failed", "actor", actor, "err", err)
		panic(http.ErrAbortHandler)
	}
	h.Log.Info("backup taken", "actor", actor, "files", len(sources))
	return nil
}

func (h *Handlers) postRestore(w http.ResponseWriter, r *http.Request, actor string) error {
	if !h.restoreMu.TryLock() {
		return errkind.New(errkind.Exists, "another restore is running on this server")
	}
	defer h.restoreMu.Unlock()
	dryRun := r.URL.Query().Get("dry_run") == "1"
	p := h.Paths
	staging, err := os.MkdirTemp(p.Home, restore.StagingPrefix)
	if err != nil {
		return fmt.Errorf("restore staging area: %w", err)
	}
	defer os.RemoveAll(staging)

	// What the restore changes is read from the live tree while the
	// backup is unpacked, not after.
	live := restore.ScanLive(r.Context(), p.Home, backupIncludes(), backupExcluded)
	defer live.Stop()
	m, err := backup.Unpack(r.Body, staging, nil)
	if err != nil {
		return errkind.Wrap(errkind.Invalid, fmt.Errorf("backup refused, nothing restored: %w", err))
	}
	if err := sameMajor(m.Info.ZonekitVersion, version.String()); err != nil {
		return err
	}
	// Everything a start needs is checked before anything moves: a
	// restore that leaves a server unable to start has lost its old state.
	if err := restore.CheckStaged(staging); err != nil {
		return errkind.Wrap(errkind.Invalid, fmt.Errorf("backup refused, nothing restored: %w", err))
	}
	changes, err := live.Changes(m)
	if err != nil {
		return err
	}
	res := api.RestoreResult{DryRun: dryRun, Zone: m.Info.Zone, Server: m.Info.Server, ZonekitVersion: m.Info.ZonekitVersion,
		Created: m.Info.Created, Files: len(m.Entries), Changes: changes}
	if !dryRun {
		// Replication stops first: its log goes with the store it
		// describes, and this process must not apply entries to a store
		// that is being replaced. The restarted server starts replication
		// afresh from the restored store: it never leads a cluster of its
		// own unless told to (docs/cluster.md).
		if rep := h.Replica(); rep != nil {
			// Restoring the zone's only server over itself: it leads
			// again at its restart. In any other case (a scratch zone on
			// new hardware, a zone of several servers) the restored server
			// waits for the zone's other servers, which may be alive.
			if members, err := rep.Members(); err == nil && len(members) == 1 && members[0].ID == h.Self.ID &&
				m.Info.ZoneID == h.ZoneRecord.ID && h.onlyServer() {
				marker := filepath.Join(staging, "data", filepath.Base(p.RecoverMarker()))
				if err := os.WriteFile(marker, []byte("restored the zone's only server\n"), 0o600); err != nil {
					return fmt.Errorf("restore: %w", err)
				}
			}
			rep.Shutdown()
		}
		// From here this process holds state that is not the one on
		// disk (or no replication): it serves nothing until restarted.
		h.Restored()
		if err := restore.Swap(p, staging, failpoint.Crash); err != nil {
			h.Log.Error("restore failed", "actor", actor, "err", err)
			return fmt.Errorf("%w; restart the zone server (%s)", err, RestartCommand)
		}
		res.Restart = RestartCommand
		h.Log.Warn("server restored from backup; restart required", "actor", actor, "zone", m.Info.Zone, "server", m.Info.Server, "backup_created", m.Info.Created)
	}
	if dryRun {
		httpapi.WriteJSON(w, http.StatusOK, res)
		return nil
	}
	answerNow(w, res)
	// The swap is committed: removing the previous configuration tree
	// can take a while and is left out of the answer. A restart before it
	// is done finishes it (restore.Recover).
	go func() {
		if err := restore.Cleanup(p, failpoint.Crash); err != nil {
			h.Log.Error("restore cleanup", "err", err)
		}
	}()
	return nil
}

// answerNow writes a restore's answer whole, with its length, and flushes
// it to the client before the cleanup starts: the cleanup may end this
// process (a crash, a failpoint) before the handler has returned, and the
// client must have its answer by then, not an unfinished response.
func answerNow(w http.ResponseWriter, res api.RestoreResult) {
	b, err := json.Marshal(res)
	if err != nil {
		httpapi.WriteJSON(w, http.StatusOK, res)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	http.NewResponseController(w).Flush()
}

// onlyServer reports whether the zone lists no server but this one.
func (h *Handlers) onlyServer() bool {
	servers, err := h.Zone.Servers()
	return err == nil && len(servers) == 1 && servers[0].ID == h.Self.ID
}

// sameMajor refuses a backup from another major version.
func sameMajor(backupVersion, ours string) error {
	major := func(v string) string {
		v = strings.TrimPrefix(v, "v")
		m, _, _ := strings.Cut(v, ".")
		return m
	}
	if major(backupVersion) != major(ours) {
		return errkind.New(errkind.Invalid, "backup is from zonekit %s and this server runs %s: restore it with zonekit %s.x", backupVersion, ours, major(backupVersion))
	}
	return nil
}
