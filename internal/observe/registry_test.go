package observe_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"zonekit/internal/observe"
	"zonekit/internal/version"
)

func page(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	return rec.Body.String()
}

// parse reads a page with Prometheus's own text parser and checks that
// each histogram's +Inf bucket is its count.
func parse(t *testing.T, text string) {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the page: %v\n%s", err, text)
	}
	for name, f := range fams {
		for _, m := range f.Metric {
			if h := m.GetHistogram(); h != nil {
				b := h.GetBucket()
				if len(b) > 0 && b[len(b)-1].GetCumulativeCount() > h.GetSampleCount() {
					t.Errorf("%s: buckets and count disagree", name)
				}
			}
		}
	}
}

// libraryLint is what `promtool check metrics` says of the go_* and
// process_* metrics metrics.WriteProcessMetrics writes: they have no
// HELP line (docs/metrics.md).
var libraryLint = regexp.MustCompile(`^(go|process)_\w+ no help text$`)

// promtool runs `promtool check metrics` on text: it must parse, and
// every lint complaint must be one of libraryLint's.
func promtool(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed (apt-get install prometheus): the page was checked with Prometheus's parser only")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	// promtool exits 3 for lint problems alone, 1 when it cannot parse.
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for l := range strings.Lines(string(out)) {
		if !libraryLint.MatchString(strings.TrimSpace(l)) {
			t.Errorf("promtool check metrics: %s", l)
		}
	}
}

// zonekitPart is the page's zonekit_* families, which come first; the
// rest is the library's go_* and process_* metrics.
func zonekitPart(t *testing.T, text string) string {
	t.Helper()
	var b strings.Builder
	rest := false
	for l := range strings.Lines(text) {
		ours := strings.HasPrefix(l, "zonekit_") || strings.HasPrefix(l, "# HELP zonekit_") || strings.HasPrefix(l, "# TYPE zonekit_")
		switch {
		case ours && rest:
			t.Errorf("zonekit line after the library's: %s", l)
		case ours:
			b.WriteString(l)
		default:
			rest = true
		}
	}
	return b.String()
}

// A satellite's page: our families with our help texts, their series
// (label values escaped), then the Go runtime and process metrics;
// Prometheus's parser and promtool accept it.
func TestPage(t *testing.T) {
	certs := func() []observe.Cert {
		return []observe.Cert{
			{Kind: "device", Name: "sat1", NotAfter: time.Unix(2e9, 0)},
			{Kind: "ca", Name: "zonekit zone CA Acme", NotAfter: time.Unix(1.9e9, 0)},
			{Kind: "ca", Name: "zonekit zone CA Acme", NotAfter: time.Unix(1.9e9, 0)},
			{Kind: "satellite", Name: "expired \"old\" \\ one\nline 2", NotAfter: time.Unix(1e9, 0)},
			{Kind: "satellite", Name: "not loaded"},
		}
	}
	now := func() time.Time { return time.Unix(1.8e9, 0) }

	reg := observe.NewRegistry("satellite")
	h := observe.NewHTTP(reg)
	reg.AddCertExpiry(certs, now)
	obs := h.Observer("satellite-content", "GET /content/{id}/{file}")
	obs("GET", 200, 1<<20, 3*time.Millisecond)
	obs("GET", 200, 100, 500*time.Microsecond)
	obs("BREW", 200, 0, time.Millisecond)
	obs("GET", 404, 19, 400*time.Second)

	text := page(t, observe.Handler(reg, nil))
	parse(t, text)
	promtool(t, text)

	le := func(method string, counts ...int) string {
		var b strings.Builder
		for i, ub := range []string{"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300", "+Inf"} {
			fmt.Fprintf(&b, "zonekit_http_request_duration_seconds_bucket{listener=\"satellite-content\",method=\"%s\",route=\"/content/{id}/{file}\",le=\"%s\"} %d\n", method, ub, counts[min(i, len(counts)-1)])
		}
		return b.String()
	}
	want := `# HELP zonekit_build_info Always 1; the labels name the zonekit version and the daemon.
# TYPE zonekit_build_info gauge
zonekit_build_info{program="satellite",version="` + version.String() + `"} 1
# HELP zonekit_http_requests_total HTTP requests answered, by listener, method, route pattern and status code.
# TYPE zonekit_http_requests_total counter
zonekit_http_requests_total{code="200",listener="satellite-content",method="GET",route="/content/{id}/{file}"} 2
zonekit_http_requests_total{code="200",listener="satellite-content",method="OTHER",route="/content/{id}/{file}"} 1
zonekit_http_requests_total{code="404",listener="satellite-content",method="GET",route="/content/{id}/{file}"} 1
# HELP zonekit_http_request_duration_seconds Time from a request's arrival to the end of its answer, by listener, method and route pattern.
# TYPE zonekit_http_request_duration_seconds histogram
` + le("GET", 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3) +
		`zonekit_http_request_duration_seconds_sum{listener="satellite-content",method="GET",route="/content/{id}/{file}"} ` + fmt.Sprintf("%g", 0.003+0.0005+400) + `
zonekit_http_request_duration_seconds_count{listener="satellite-content",method="GET",route="/content/{id}/{file}"} 3
` + le("OTHER", 1) +
		`zonekit_http_request_duration_seconds_sum{listener="satellite-content",method="OTHER",route="/content/{id}/{file}"} 0.001
zonekit_http_request_duration_seconds_count{listener="satellite-content",method="OTHER",route="/content/{id}/{file}"} 1
# HELP zonekit_http_response_bytes_total Bytes of response bodies sent, by listener and route pattern (content fragments included).
# TYPE zonekit_http_response_bytes_total counter
zonekit_http_response_bytes_total{listener="satellite-content",route="/content/{id}/{file}"} 1048695
# HELP zonekit_certificate_not_after_timestamp_seconds When the certificate expires (Unix time).
# TYPE zonekit_certificate_not_after_timestamp_seconds gauge
zonekit_certificate_not_after_timestamp_seconds{kind="ca",name="zonekit zone CA Acme"} 1.9e+09
zonekit_certificate_not_after_timestamp_seconds{kind="device",name="sat1"} 2e+09
zonekit_certificate_not_after_timestamp_seconds{kind="satellite",name="expired \"old\" \\ one\nline 2"} 1e+09
# HELP zonekit_certificate_expires_in_seconds Seconds until the certificate expires; negative once it has.
# TYPE zonekit_certificate_expires_in_seconds gauge
zonekit_certificate_expires_in_seconds{kind="ca",name="zonekit zone CA Acme"} 1e+08
zonekit_certificate_expires_in_seconds{kind="device",name="sat1"} 2e+08
zonekit_certificate_expires_in_seconds{kind="satellite",name="expired \"old\" \\ one\nline 2"} -8e+08
# HELP zonekit_certificate_expired 1 if the certificate has expired, else 0.
# TYPE zonekit_certificate_expired gauge
zonekit_certificate_expired{kind="ca",name="zonekit zone CA Acme"} 0
zonekit_certificate_expired{kind="device",name="sat1"} 0
zonekit_certificate_expired{kind="satellite",name="expired \"old\" \\ one\nline 2"} 1
`
	if got := zonekitPart(t, text); got != want {
		t.Errorf("zonekit families:\n%s\nwant\n%s", got, want)
	}

	// The library's runtime and process metrics follow.
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "go_gc_duration_seconds_count"} {
		if !regexp.MustCompile(`(?m)^` + name + ` \d`).MatchString(text) {
			t.Errorf("page lacks %s", name)
		}
	}
	if runtime.GOOS == "linux" {
		for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds"} {
			if !regexp.MustCompile(`(?m)^` + name + ` \d`).MatchString(text) {
				t.Errorf("page lacks %s", name)
			}
		}
	}
}

// The middleware counts by the ServeMux pattern that matched, "unmatched"
// when none did, with the status and body bytes.
func TestHandlerCounts(t *testing.T) {
	reg := &observe.Registry{}
	h := observe.NewHTTP(reg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /content/{id}/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("twelve bytes"))
	})
	hh := h.Handler("satellite-auth", mux)
	for _, p := range []string{"/content/1/1-1", "/content/2/2-7", "/content/2/missing", "/nothing", "/content/a\"b\\c/x"} {
		hh.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	text := page(t, observe.Handler(reg, nil))
	parse(t, text)
	promtool(t, text)
	for _, want := range []string{
		`zonekit_http_requests_total{code="200",listener="satellite-auth",method="GET",route="/content/{id}/{file}"} 3`,
		`zonekit_http_requests_total{code="404",listener="satellite-auth",method="GET",route="/content/{id}/{file}"} 1`,
		`zonekit_http_requests_total{code="404",listener="satellite-auth",method="GET",route="unmatched"} 1`,
		`zonekit_http_response_bytes_total{listener="satellite-auth",route="/content/{id}/{file}"} 55`,
		`zonekit_http_request_duration_seconds_count{listener="satellite-auth",method="GET",route="/content/{id}/{file}"} 4`,
		`zonekit_http_request_duration_seconds_bucket{listener="satellite-auth",method="GET",route="unmatched",le="+Inf"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("page lacks %s", want)
		}
	}
	// A bare registry has no runtime metrics.
	if strings.Contains(text, "go_") || strings.Contains(text, "process_") {
		t.Errorf("a zero Registry wrote the process metrics:\n%s", text)
	}
}

// Series counted from many goroutines while pages are written stay
// consistent, and the counts add up.
func TestConcurrentCounting(t *testing.T) {
	reg := &observe.Registry{}
	h := observe.NewHTTP(reg)
	obs := h.Observer("satellite-content", "GET /content/{id}/{file}")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 1000 {
				obs("GET", 200+i%2, 10, time.Duration(j)*time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			var b bytes.Buffer
			reg.WritePrometheus(&b)
			parse(t, b.String())
		}
	})
	wg.Wait()
	var b bytes.Buffer
	reg.WritePrometheus(&b)
	for _, want := range []string{
		`zonekit_http_requests_total{code="200",listener="satellite-content",method="GET",route="/content/{id}/{file}"} 4000`,
		`zonekit_http_requests_total{code="201",listener="satellite-content",method="GET",route="/content/{id}/{file}"} 4000`,
		`zonekit_http_response_bytes_total{listener="satellite-content",route="/content/{id}/{file}"} 80000`,
		`zonekit_http_request_duration_seconds_bucket{listener="satellite-content",method="GET",route="/content/{id}/{file}",le="+Inf"} 8000`,
		`zonekit_http_request_duration_seconds_count{listener="satellite-content",method="GET",route="/content/{id}/{file}"} 8000`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("page lacks %s", want)
		}
	}
}

// A family added twice is refused rather than written twice.
func TestDuplicateFamily(t *testing.T) {
	reg := &observe.Registry{}
	reg.NewFamily("x", "one", observe.Gauge)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "added twice") {
			t.Errorf("recover() = %v", r)
		}
	}()
	reg.AddWriter(func(io.Writer) {}, "x")
}

// Label values are escaped as the text format wants.
func TestLabels(t *testing.T) {
	got := observe.Labels("kind", "ca", "name", "a \"b\" \\ c\nd")
	if want := `{kind="ca",name="a \"b\" \\ c\nd"}`; got != want {
		t.Errorf("Labels = %s, want %s", got, want)
	}
}
