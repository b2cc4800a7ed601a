package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zonekit/internal/metrics"
	"zonekit/internal/zone"
)

// Metrics is this server's metric set (registry, HTTP and area counters).
func (s *Server) Metrics() *metrics.ZoneServer { return s.metrics }

// Health is what /healthz and /readyz answer, on the HTTPS port and on the
// metrics listener.
func (s *Server) Health() *metrics.Health { return s.health }

// setupMetrics registers the collectors that read this server's state
// at each scrape; replication's comes with SetReplica.
func (s *Server) setupMetrics() {
	if s.metrics == nil {
		s.metrics = metrics.NewZoneServer()
	}
	s.metrics.Registry.MustRegister(
		&metrics.CertExpiry{Certs: s.certificatesWatched, Now: s.now},
		&metrics.Deployments{Counts: s.deploymentCounts},
	)
	s.health = &metrics.Health{Ready: []metrics.Check{
		{Name: "store", Check: s.readyStore},
		{Name: "replication", Check: s.readyLeader},
		{Name: "certificates", Check: s.readyCertificates},
	}}
}

// certificatesWatched are the zone CA, this server's certificate as
// loaded and every server certificate the zone records.
func (s *Server) certificatesWatched() []metrics.Cert {
	st := s.trust.Load()
	out := []metrics.Cert{{Kind: "ca", Name: st.ca.Subject.CommonName, NotAfter: st.ca.NotAfter}}
	if st.leaf != nil {
		out = append(out, metrics.Cert{Kind: "server", Name: s.self.Name, NotAfter: st.leaf.NotAfter})
	}
	if servers, err := s.db.Servers(); err == nil {
		for _, sv := range servers {
			out = append(out, metrics.Cert{Kind: "server", Name: sv.Name, NotAfter: sv.CertNotAfter})
		}
	}
	return out
}

func (s *Server) deploymentCounts() (map[string]int, error) {
	byPkg, err := s.db.DeploymentStatusCounts()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, c := range byPkg {
		out["waiting"] += c.NotNotified
		out["notified"] += c.Notified
		out["success"] += c.Success
		out["error"] += c.Error
	}
	return out, nil
}

// replicationMetrics reports the replica's state and, on the leader,
// each member's lag behind it.
func (s *Server) replicationMetrics() *metrics.Replication {
	return &metrics.Replication{
		Now: s.now,
		Status: func() metrics.ReplicaStatus {
			st := s.rep.Status()
			return metrics.ReplicaStatus{State: st.State, LeaderID: st.LeaderID, Term: st.Term, LastIndex: st.LastIndex,
				CommitIndex: st.CommitIndex, Applied: st.Applied, LastContact: st.LastContact}
		},
		Followers: func(ctx context.Context) []metrics.Follower {
			members, err := s.rep.Members()
			if err != nil {
				return nil
			}
			servers, err := s.db.Servers()
			if err != nil {
				return nil
			}
			byID := map[string]zone.Server{}
			for _, sv := range servers {
				byID[sv.ID] = sv
			}
			var ask []zone.Server
			for _, m := range members {
				if m.ID == s.self.ID {
					continue
				}
				sv, ok := byID[m.ID]
				if !ok {
					sv = zone.Server{ID: m.ID, Name: m.ID}
				}
				sv.Address = m.Address // where replication reaches it
				ask = append(ask, sv)
			}
			got := s.cluster.ReplicationOf(ctx, ask)
			out := make([]metrics.Follower, 0, len(ask))
			for _, sv := range ask {
				f := metrics.Follower{Name: sv.Name}
				if st := got[sv.ID]; st != nil {
					f.Up, f.Applied = true, st.Applied
				}
				out = append(out, f)
			}
			return out
		},
	}
}

func (s *Server) readyStore(context.Context) error {
	if s.restored.Load() {
		return errors.New("restored from a backup: restart the zone server")
	}
	if _, err := s.db.Zone(); err != nil {
		return fmt.Errorf("zone store: %w", err)
	}
	return nil
}

func (s *Server) readyLeader(context.Context) error {
	if s.rep == nil {
		return errors.New("replication has not started")
	}
	if id, _ := s.rep.Leader(); id == "" {
		return errors.New("no replication leader known: writes cannot be made")
	}
	return nil
}

func (s *Server) readyCertificates(context.Context) error {
	st := s.trust.Load()
	now := s.now()
	if now.After(st.ca.NotAfter) {
		return fmt.Errorf("the zone CA expired on %s", st.ca.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(st.leaf.NotBefore) {
		return fmt.Errorf("this server's certificate is valid only from %s", st.leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(st.leaf.NotAfter) {
		return fmt.Errorf("this server's certificate expired on %s", st.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
