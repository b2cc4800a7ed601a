package metrics

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReplicaStatus is a server's view of store replication.
type ReplicaStatus struct {
	State       string // Leader, Follower, Candidate, Shutdown
	LeaderID    string
	Term        uint64
	LastIndex   uint64
	CommitIndex uint64
	Applied     uint64
	LastContact time.Time // followers: last word from the leader
}

// Follower is what the leader learns of one follower.
type Follower struct {
	Name    string
	Up      bool   // it answered
	Applied uint64 // its applied index, when Up
}

// Replication reports this server's replication state and, on the
// leader, each follower's lag (entries committed here it has not applied).
type Replication struct {
	Status func() ReplicaStatus
	// Followers asks the other servers for their applied index (on the
	// leader only; bounded by ctx).
	Followers func(ctx context.Context) []Follower
	Now       func() time.Time // nil for the wall clock
}

// ReplicaStates are the state label's values.
var ReplicaStates = []string{"Leader", "Follower", "Candidate", "Shutdown"}

var (
	replStateDesc = prometheus.NewDesc(Namespace+"_replication_state",
		"1 for this server's replication state (Leader, Follower, Candidate, Shutdown), 0 for the others.", []string{"state"}, nil)
	replHasLeaderDesc = prometheus.NewDesc(Namespace+"_replication_has_leader",
		"1 if this server knows a replication leader, else 0.", nil, nil)
	replTermDesc = prometheus.NewDesc(Namespace+"_replication_term",
		"The replication term this server is in.", nil, nil)
	replLastDesc = prometheus.NewDesc(Namespace+"_replication_last_log_index",
		"Index of the last entry in this server's replication log.", nil, nil)
	replCommitDesc = prometheus.NewDesc(Namespace+"_replication_commit_index",
		"Index of the last entry this server knows committed.", nil, nil)
	replAppliedDesc = prometheus.NewDesc(Namespace+"_replication_applied_index",
		"Index of the last entry applied to this server's store.", nil, nil)
	replContactDesc = prometheus.NewDesc(Namespace+"_replication_last_contact_seconds",
		"Followers: seconds since the leader was last heard from.", nil, nil)
	replFollowerUpDesc = prometheus.NewDesc(Namespace+"_replication_follower_up",
		"Leader only: 1 if the follower answered the leader's status call, else 0.", []string{"follower"}, nil)
	replFollowerLagDesc = prometheus.NewDesc(Namespace+"_replication_follower_lag_entries",
		"Leader only: entries committed on the leader that the follower has not applied.", []string{"follower"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Replication) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{replStateDesc, replHasLeaderDesc, replTermDesc, replLastDesc, replCommitDesc,
		replAppliedDesc, replContactDesc, replFollowerUpDesc, replFollowerLagDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Replication) Collect(ch chan<- prometheus.Metric) {
	st := c.Status()
	for _, s := range ReplicaStates {
		v := 0.0
		if s == st.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(replStateDesc, prometheus.GaugeValue, v, s)
	}
	has := 0.0
	if st.LeaderID != "" {
		has = 1
	}
	ch <- prometheus.MustNewConstMetric(replHasLeaderDesc, prometheus.GaugeValue, has)
	ch <- prometheus.MustNewConstMetric(replTermDesc, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(replLastDesc, prometheus.GaugeValue, float64(st.LastIndex))
	ch <- prometheus.MustNewConstMetric(replCommitDesc, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(replAppliedDesc, prometheus.GaugeValue, float64(st.Applied))
	if !st.LastContact.IsZero() {
		now := time.Now()
		if c.Now != nil {
			now = c.Now()
		}
		ch <- prometheus.MustNewConstMetric(replContactDesc, prometheus.GaugeValue, now.Sub(st.LastContact).Seconds())
	}
	if st.State != "Leader" || c.Followers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	fs := c.Followers(ctx)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	for _, f := range fs {
		up := 0.0
		if f.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(replFollowerUpDesc, prometheus.GaugeValue, up, f.Name)
		if f.Up {
			lag := 0.0
			if st.CommitIndex > f.Applied {
				lag = float64(st.CommitIndex - f.Applied)
			}
			ch <- prometheus.MustNewConstMetric(replFollowerLagDesc, prometheus.GaugeValue, lag, f.Name)
		}
	}
}
