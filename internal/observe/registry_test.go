package observe_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"zonekit/internal/metrics"
	"zonekit/internal/observe"
)

// serve answers a few requests through both HTTP middlewares: the same
// mux, the same requests.
func serve(t *testing.T, handlers ...func(string, http.Handler) http.Handler) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /content/{id}/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("twelve bytes"))
	})
	for _, h := range handlers {
		hh := h("satellite-content", mux)
		for _, p := range []string{"/content/1/1-1", "/content/2/2-7", "/content/2/missing", "/nothing", "/content/a\"b\\c/x"} {
			hh.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
		}
	}
}

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

// parse reads a page with Prometheus's own text parser.
func parse(t *testing.T, text string) map[string]*familyInfo {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the page: %v\n%s", err, text)
	}
	out := map[string]*familyInfo{}
	for name, f := range fams {
		fi := &familyInfo{typ: f.GetType().String(), help: f.GetHelp()}
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			fi.series = append(fi.series, strings.Join(ls, ","))
			if h := m.GetHistogram(); h != nil {
				b := h.GetBucket()
				if len(b) == 0 || b[len(b)-1].GetCumulativeCount() > h.GetSampleCount() {
					t.Errorf("%s: buckets and count disagree", name)
				}
			}
		}
		slices.Sort(fi.series)
		out[name] = fi
	}
	return out
}

type familyInfo struct {
	typ, help string
	series    []string
}

// The satellite's page (observe) has every family, type, help text and
// series that the same daemon's registry on client_golang has.
func TestPageMatchesClientGolang(t *testing.T) {
	certs := func() []observe.Cert {
		return []observe.Cert{
			{Kind: "device", Name: "sat1", NotAfter: time.Unix(2e9, 0)},
			{Kind: "ca", Name: "zonekit zone CA Acme", NotAfter: time.Unix(1.9e9, 0)},
			{Kind: "ca", Name: "zonekit zone CA Acme", NotAfter: time.Unix(1.9e9, 0)},
			{Kind: "satellite", Name: "expired \"old\" \\ one", NotAfter: time.Unix(1e9, 0)},
		}
	}
	now := func() time.Time { return time.Unix(1.8e9, 0) }

	reg := observe.NewRegistry("satellite")
	h := observe.NewHTTP(reg)
	reg.Collect(observe.CertExpiry(certs, now))

	preg := metrics.NewRegistry("satellite")
	ph := metrics.NewHTTP(preg)
	preg.MustRegister(&metrics.CertExpiry{Certs: certs, Now: now})

	serve(t, h.Handler, ph.Handler)
	obs, pobs := h.Observer("satellite-content", "GET /content/{id}/{file}"), ph.Observer("satellite-content", "GET /content/{id}/{file}")
	for _, o := range []func(string, int, int64, time.Duration){obs, pobs} {
		o("GET", 200, 1<<20, 3*time.Millisecond)
		o("BREW", 200, 0, time.Millisecond)
	}

	text := page(t, observe.Handler(reg, nil))
	ptext := page(t, metrics.Handler(preg, nil))
	got, want := parse(t, text), parse(t, ptext)
	for name, w := range want {
		g := got[name]
		switch {
		case g == nil:
			t.Errorf("family %s missing", name)
		case g.typ != w.typ || g.help != w.help:
			t.Errorf("family %s: %s %q, want %s %q", name, g.typ, g.help, w.typ, w.help)
		case !slices.Equal(g.series, w.series):
			t.Errorf("family %s: series\n%q\nwant\n%q", name, g.series, w.series)
		}
	}
	for name := range got {
		if want[name] == nil {
			t.Errorf("family %s is not client_golang's", name)
		}
	}
	// Where the values do not depend on time or the runtime, the lines
	// are the same bytes.
	lines := func(s string) []string {
		var out []string
		for l := range strings.Lines(s) {
			if regexp.MustCompile(`^(zonekit_(http_requests_total|http_response_bytes_total|certificate_|build_info)|go_info|# (HELP|TYPE) zonekit_)`).MatchString(l) {
				out = append(out, l)
			}
		}
		return out
	}
	if g, w := lines(text), lines(ptext); !slices.Equal(g, w) {
		t.Errorf("lines differ:\n%s\nwant\n%s", strings.Join(g, ""), strings.Join(w, ""))
	}
	// The values of the runtime and process: same magnitude.
	for _, name := range []string{"process_max_fds", "go_sched_gomaxprocs_threads", "go_gc_gogc_percent", "go_gc_gomemlimit_bytes", "process_virtual_memory_max_bytes"} {
		if g, w := value(t, text, name), value(t, ptext, name); g != w {
			t.Errorf("%s = %v, client_golang says %v", name, g, w)
		}
	}
	if g, w := value(t, text, "process_start_time_seconds"), value(t, ptext, "process_start_time_seconds"); g < w-1 || g > w+1 {
		t.Errorf("process_start_time_seconds = %v, client_golang says %v", g, w)
	}
	if g := value(t, text, "process_resident_memory_bytes"); g < 1<<20 {
		t.Errorf("process_resident_memory_bytes = %v", g)
	}

	if path, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool is not installed (apt-get install prometheus): the page was checked with Prometheus's parser only")
	}
}

func value(t *testing.T, text, name string) float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	f := fams[name]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("no single %s", name)
	}
	m := f.Metric[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("%s is neither gauge nor counter", name)
	return 0
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
			if err := reg.WriteText(&b); err != nil {
				t.Error(err)
			}
			parse(t, b.String())
		}
	})
	wg.Wait()
	var b bytes.Buffer
	reg.WriteText(&b)
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

// A name two collectors emit is refused rather than written twice.
func TestDuplicateFamily(t *testing.T) {
	reg := &observe.Registry{}
	reg.GaugeFunc("x", "one", nil, func() float64 { return 1 })
	reg.GaugeFunc("x", "two", nil, func() float64 { return 2 })
	if err := reg.WriteText(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "collected twice") {
		t.Errorf("err = %v", err)
	}
}
