package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ZoneServer is the zone server's metric set. The core makes one and
// hands it to the areas that count what they do.
type ZoneServer struct {
	Registry *prometheus.Registry
	HTTP     *HTTP
	// Registrations and Refreshes count device registrations and
	// refreshes by result ("ok", "error").
	Registrations *prometheus.CounterVec
	Refreshes     *prometheus.CounterVec
	// Backups and Restores time server backups and restores by result.
	Backups  *prometheus.HistogramVec
	Restores *prometheus.HistogramVec
}

// NewZoneServer makes the zone server's registry and metrics.
func NewZoneServer() *ZoneServer {
	reg := NewRegistry("zoneserver")
	m := &ZoneServer{
		Registry: reg,
		HTTP:     NewHTTP(reg),
		Registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "registrations_total",
			Help: "Device registrations answered by this server, by result (ok, error).",
		}, []string{"result"}),
		Refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "refreshes_total",
			Help: "Device refreshes answered by this server, by result (ok, error).",
		}, []string{"result"}),
		Backups: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "backup_duration_seconds",
			Help:    "Duration of server backups streamed by this server, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14), // 0.1s to about 14 minutes
		}, []string{"result"}),
		Restores: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "restore_duration_seconds",
			Help:    "Duration of server restores run by this server, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}, []string{"result"}),
	}
	for _, v := range []*prometheus.CounterVec{m.Registrations, m.Refreshes} {
		// Both results exist from the start, so that rate() sees the first one.
		v.WithLabelValues("ok")
		v.WithLabelValues("error")
	}
	reg.MustRegister(m.Registrations, m.Refreshes, m.Backups, m.Restores)
	return m
}

// Result is the result label of err.
func Result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Deployments reports deployments by status, read from the store at most
// once per MinInterval (a scan of every deployment).
type Deployments struct {
	// Counts returns the number of deployments per status.
	Counts      func() (map[string]int, error)
	MinInterval time.Duration // default 15s

	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

var deploymentsDesc = prometheus.NewDesc(Namespace+"_deployments",
	"Package deployments in the zone by status (waiting, notified, success, error).", []string{"status"}, nil)

// DeploymentStatuses are the status label's values, always reported.
var DeploymentStatuses = []string{"waiting", "notified", "success", "error"}

// Describe implements prometheus.Collector.
func (d *Deployments) Describe(ch chan<- *prometheus.Desc) { ch <- deploymentsDesc }

// Collect implements prometheus.Collector.
func (d *Deployments) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	every := d.MinInterval
	if every <= 0 {
		every = 15 * time.Second
	}
	if d.counts == nil || time.Since(d.at) >= every {
		c, err := d.Counts()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(deploymentsDesc, err)
			return
		}
		d.counts, d.at = c, time.Now()
	}
	for _, s := range DeploymentStatuses {
		ch <- prometheus.MustNewConstMetric(deploymentsDesc, prometheus.GaugeValue, float64(d.counts[s]), s)
	}
}

// Count counts err's result in c and returns err.
func Count(c *prometheus.CounterVec, err error) error {
	c.WithLabelValues(Result(err)).Inc()
	return err
}

// Timed observes the time since start in h under err's result and
// returns err.
func Timed(h *prometheus.HistogramVec, start time.Time, err error) error {
	h.WithLabelValues(Result(err)).Observe(time.Since(start).Seconds())
	return err
}
