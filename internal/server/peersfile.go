package server

import (
	"context"
	"slices"
	"time"

	"zonekit/internal/serverfiles"
)

// peersPoll is how often the zone's servers are looked at for a change
// to the peers file: a bbolt read, cheap.
const peersPoll = time.Second

// peersFileLoop keeps the peers file (config.Paths.PeersFile) in step
// with the zone's servers: written at once, then whenever the other
// servers' addresses change (here, or applied from a peer), so that zman
// on this machine finds them while this server is down.
func (s *Server) peersFileLoop(ctx context.Context) {
	var last []string
	written := false
	tick := time.NewTicker(peersPoll)
	defer tick.Stop()
	for {
		peers, err := s.peerAddrs()
		switch {
		case err != nil:
			s.log.Warn("peers file: read the zone's servers", "err", err)
		case !written || !slices.Equal(peers, last):
			if err := serverfiles.WritePeers(s.opts.Paths.PeersFile(), peers); err != nil {
				s.log.Warn("peers file", "err", err)
			} else {
				last, written = peers, true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// peerAddrs lists the addresses of the zone's other servers, as zman
// reached them from the store: those with an address of their own.
func (s *Server) peerAddrs() ([]string, error) {
	servers, err := s.db.Servers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sv := range servers {
		if sv.ID == s.self.ID || sv.Address == "" {
			continue
		}
		out = append(out, sv.Address)
	}
	return out, nil
}
