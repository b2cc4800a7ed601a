// Package config resolves where zonekit keeps its files and reads the zone
// server's configuration file into a plain struct.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"zonekit/internal/errkind"
	"zonekit/internal/homedir"
)

// HomeEnv names the environment variable that sets the zone server's home.
const HomeEnv = "ZONEKIT_HOME"

// Paths lays out a zone server's home directory.
type Paths struct{ Home string }

// ResolveHome picks the zone home from a flag value, then $ZONEKIT_HOME,
// then /var/opt/zonekit for root or ~/.local/share/zonekit.
func ResolveHome(flag string) string {
	return homedir.Resolve(flag, HomeEnv, "/var/opt/zonekit", "zonekit")
}

func (p Paths) Conf() string       { return filepath.Join(p.Home, "conf") }
func (p Paths) Security() string   { return filepath.Join(p.Home, "conf", "security") }
func (p Paths) Data() string       { return filepath.Join(p.Home, "data") }
func (p Paths) Logs() string       { return filepath.Join(p.Home, "logs") }
func (p Paths) RemintRepo() string { return filepath.Join(p.Home, "remint-repo") }
func (p Paths) ContentRepo() string {
	return filepath.Join(p.Home, "data", "content-repo")
}

// ConfigFile is the zone server's properties file.
func (p Paths) ConfigFile() string { return filepath.Join(p.Conf(), "zoneserver.conf") }

// Store is the bbolt zone store.
func (p Paths) Store() string { return filepath.Join(p.Data(), "zone.db") }

// Raft holds this server's replication log and snapshots.
func (p Paths) Raft() string { return filepath.Join(p.Data(), "raft") }

// RecoverMarker is the one-shot order, left by 'zconfigure -c
// RecoverCluster' (or a restore of a zone's only server), to start a new
// replication cluster of this server alone at the next start.
func (p Paths) RecoverMarker() string { return filepath.Join(p.Data(), "raft-recover") }

// CACert is the zone CA certificate (public; zman and install packs read it).
func (p Paths) CACert() string { return filepath.Join(p.Conf(), "zone-ca.pem") }

// CAKey is the zone CA's private key; only the CertAuth server has one.
func (p Paths) CAKey() string { return filepath.Join(p.Security(), "zone-ca.key") }

// ServerCert is this server's TLS certificate chain.
func (p Paths) ServerCert() string { return filepath.Join(p.Conf(), "server.pem") }

// ServerKey is this server's TLS private key.
func (p Paths) ServerKey() string { return filepath.Join(p.Security(), "server.key") }

// PidFile is written by a running zone server and removed when it stops.
func (p Paths) PidFile() string { return filepath.Join(p.Data(), "zoneserver.pid") }

// PeersFile lists the zone's other servers, written by the zone server
// (serverfiles.WritePeers) for zman to reach them while it is down.
func (p Paths) PeersFile() string { return filepath.Join(p.Data(), "peers.json") }

// LogFile is the zone server's structured log.
func (p Paths) LogFile() string { return filepath.Join(p.Logs(), "zoneserver.log") }

// OutFile receives a background server's stdout and stderr.
func (p Paths) OutFile() string { return filepath.Join(p.Logs(), "zoneserver.out") }

// CheckZone reports a clear error when the home holds no zone.
func (p Paths) CheckZone() error {
	if _, err := os.Stat(p.Store()); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errkind.New(errkind.NotFound, "no zone in %s: create one with 'zconfigure -c NewZone' or set --home/%s", p.Home, HomeEnv)
		}
		return fmt.Errorf("zone home %s: %w", p.Home, err)
	}
	return nil
}

// Layout creates the home's directories with their permissions.
func (p Paths) Layout() error {
	dirs := []struct {
		path string
		mode os.FileMode
	}{
		{p.Home, 0o755}, {p.Conf(), 0o755}, {p.Security(), 0o700},
		{p.Data(), 0o750}, {p.ContentRepo(), 0o750}, {p.Logs(), 0o750}, {p.RemintRepo(), 0o700},
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("create %s: %w", d.path, err)
		}
		// MkdirAll honours the umask; the security directory must be 0700 regardless.
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", d.path, err)
		}
	}
	return nil
}
