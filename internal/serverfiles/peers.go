package serverfiles

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"zonekit/internal/atomicfile"
)

// The peers file (config.Paths.PeersFile) is how zman, on a zone
// server's machine, finds the zone's other servers while the local one
// is down: the zone server writes their addresses there when it starts
// and when the zone's servers change, and zman reads it without linking
// the zone store.

// peersFile is the file's content.
type peersFile struct {
	// Peers are the other servers' addresses (host:port), as they
	// reach each other.
	Peers []string `json:"peers"`
}

// maxPeersFile bounds what ReadPeers reads.
const maxPeersFile = 1 << 20

// WritePeers replaces the peers file at path with addrs, atomically: a
// reader sees the old list or the new one, never a part.
func WritePeers(path string, addrs []string) error {
	data, err := json.MarshalIndent(peersFile{Peers: append([]string{}, addrs...)}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the zone's peers to %s: %w", path, err)
	}
	return nil
}

// ReadPeers returns the addresses in the peers file at path; a missing
// file is an empty list (a server that never started, or a single one).
func ReadPeers(path string) ([]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPeersFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxPeersFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPeersFile)
	}
	var pf peersFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pf.Peers, nil
}
