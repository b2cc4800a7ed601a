package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHTTPCountsByRoutePattern(t *testing.T) {
	reg := NewRegistry("test")
	h := NewHTTP(reg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /content/{id}/{file}", func(w http.ResponseWriter, r *http.Request) {
		// io.CopyN takes the ReaderFrom path, as http.ServeContent does.
		io.CopyN(w, strings.NewReader("twelve bytes"), 12)
	})
	// Served in this goroutine: the counters move after the handler
	// returns, which a client over the network may not wait for.
	handler := h.Handler("content", mux)
	var readFroms int
	for _, p := range []string{"/content/1/1-1", "/content/2/2-7", "/nothing"} {
		w := &readFromRecorder{ResponseRecorder: httptest.NewRecorder(), calls: &readFroms}
		handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
	}
	if readFroms != 2 {
		t.Errorf("ReadFrom reached the connection's writer %d times, want 2 (sendfile)", readFroms)
	}
	want := `
# HELP zonekit_http_requests_total HTTP requests answered, by listener, method, route pattern and status code.
# TYPE zonekit_http_requests_total counter
zonekit_http_requests_total{code="200",listener="content",method="GET",route="/content/{id}/{file}"} 2
zonekit_http_requests_total{code="404",listener="content",method="GET",route="unmatched"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "zonekit_http_requests_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(h.bytes.WithLabelValues("content", "/content/{id}/{file}")); got != 24 {
		t.Errorf("bytes served = %v, want 24", got)
	}
	if n := testutil.CollectAndCount(h.duration); n != 2 {
		t.Errorf("%d duration series, want 2", n)
	}
}

func TestCertExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &CertExpiry{Now: func() time.Time { return now }, Certs: func() []Cert {
		return []Cert{
			{Kind: "ca", Name: "Acme CA", NotAfter: now.Add(time.Hour)},
			{Kind: "server", Name: "s1", NotAfter: now.Add(-time.Minute)},
			{Kind: "server", Name: "s1", NotAfter: now.Add(time.Hour)}, // the same again: once
			{Kind: "server", Name: "new", NotAfter: time.Time{}},       // not known yet: left out
		}
	}}
	want := `
# HELP zonekit_certificate_expired 1 if the certificate has expired, else 0.
# TYPE zonekit_certificate_expired gauge
zonekit_certificate_expired{kind="ca",name="Acme CA"} 0
zonekit_certificate_expired{kind="server",name="s1"} 1
# HELP zonekit_certificate_expires_in_seconds Seconds until the certificate expires; negative once it has.
# TYPE zonekit_certificate_expires_in_seconds gauge
zonekit_certificate_expires_in_seconds{kind="ca",name="Acme CA"} 3600
zonekit_certificate_expires_in_seconds{kind="server",name="s1"} -60
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "zonekit_certificate_expired", "zonekit_certificate_expires_in_seconds"); err != nil {
		t.Error(err)
	}
}

func TestReplicationLag(t *testing.T) {
	c := &Replication{
		Status: func() ReplicaStatus {
			return ReplicaStatus{State: "Leader", LeaderID: "a", Term: 3, CommitIndex: 100, Applied: 100}
		},
		Followers: func(context.Context) []Follower {
			return []Follower{{Name: "s3", Up: false}, {Name: "s2", Up: true, Applied: 90}}
		},
	}
	want := `
# HELP zonekit_replication_follower_lag_entries Leader only: entries committed on the leader that the follower has not applied.
# TYPE zonekit_replication_follower_lag_entries gauge
zonekit_replication_follower_lag_entries{follower="s2"} 10
# HELP zonekit_replication_follower_up Leader only: 1 if the follower answered the leader's status call, else 0.
# TYPE zonekit_replication_follower_up gauge
zonekit_replication_follower_up{follower="s2"} 1
zonekit_replication_follower_up{follower="s3"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "zonekit_replication_follower_lag_entries", "zonekit_replication_follower_up"); err != nil {
		t.Error(err)
	}
}

func TestDeploymentsReadAtMostOncePerInterval(t *testing.T) {
	reads := 0
	d := &Deployments{MinInterval: time.Hour, Counts: func() (map[string]int, error) {
		reads++
		return map[string]int{"success": reads}, nil
	}}
	testutil.CollectAndCount(d)
	testutil.CollectAndCount(d)
	if reads != 1 {
		t.Errorf("%d store reads for two scrapes within the interval, want 1", reads)
	}
}

// An Observer counts as Handler does, under the pattern's route.
func TestObserver(t *testing.T) {
	h := NewHTTP(NewRegistry("test"))
	obs := h.Observer("content", "GET /content/{id}/{file}")
	obs("GET", 200, 100, time.Millisecond)
	obs("GET", 200, 50, time.Millisecond)
	obs("HEAD", 304, 0, time.Millisecond)
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"content", "GET", "/content/{id}/{file}", "200"}, 2},
		{[]string{"content", "HEAD", "/content/{id}/{file}", "304"}, 1},
	} {
		if got := testutil.ToFloat64(h.requests.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("%v: %v requests, want %v", c.labels, got, c.want)
		}
	}
	if got := testutil.ToFloat64(h.bytes.WithLabelValues("content", "/content/{id}/{file}")); got != 150 {
		t.Errorf("%v bytes, want 150", got)
	}
}

// readFromRecorder is a ResponseRecorder with the io.ReaderFrom of a
// plain connection's writer.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	calls *int
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	*r.calls++
	return io.Copy(r.ResponseRecorder, src)
}
