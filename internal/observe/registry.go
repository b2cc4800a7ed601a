package observe

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	vm "github.com/VictoriaMetrics/metrics"

	"zonekit/internal/version"
)

// Metric types, as the text format's TYPE lines name them.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
)

// Registry holds a daemon's metric families and writes its page in
// Prometheus's text format (version 0.0.4). The series are
// github.com/VictoriaMetrics/metrics counters, gauges and histograms,
// which also writes them.
//
// Each family has a metrics.Set of its own, whose lines the registry
// writes after the family's HELP and TYPE lines: that library writes no
// help texts (its metadata, metrics.ExposeMetadata, is a HELP line with
// the name alone, for every family of the process at once), and the
// zonekit families say what they count (docs/metrics.md).
// metrics.ExposeMetadata stays off: on, it would write a second, empty,
// HELP line for each of them.
//
// The zero Registry is empty and ready to use.
type Registry struct {
	process bool // write the go_* and process_* metrics (NewRegistry)

	mu       sync.Mutex
	names    map[string]bool
	families []func(io.Writer)
}

// NewRegistry returns a daemon's registry: zonekit_build_info and the Go
// runtime and process metrics that metrics.WriteProcessMetrics and
// WriteFDMetrics (process_open_fds, process_max_fds) write; program is
// the daemon's name.
func NewRegistry(program string) *Registry {
	r := &Registry{process: true}
	r.NewFamily(BuildInfoName, BuildInfoHelp, Gauge).
		NewGauge(BuildInfoName+Labels("program", program, "version", version.String()), func() float64 { return 1 })
	return r
}

// NewFamily adds the family name and returns the set that holds its
// series: each named name or name{labels} (Labels), of the type typ.
// A name added twice panics: the page would be invalid.
func (r *Registry) NewFamily(name, help, typ string) *vm.Set {
	s := vm.NewSet()
	r.add(func(w io.Writer) {
		var b bytes.Buffer
		s.WritePrometheus(&b)
		if b.Len() > 0 {
			WriteHeader(w, name, help, typ)
			w.Write(b.Bytes())
		}
	}, name)
	return s
}

// AddWriter adds the families names, which write writes at each scrape,
// each after its WriteHeader (series that change from one scrape to the
// next, such as the certificates' time left).
func (r *Registry) AddWriter(write func(w io.Writer), names ...string) {
	r.add(write, names...)
}

func (r *Registry) add(write func(io.Writer), names ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names = map[string]bool{}
	}
	for _, n := range names {
		if r.names[n] {
			panic(fmt.Sprintf("observe: metric family %s added twice", n))
		}
		r.names[n] = true
	}
	r.families = append(r.families, write)
}

// WriteHeader writes a family's HELP and TYPE lines.
func WriteHeader(w io.Writer, name, help, typ string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, helpEscaper.Replace(help), name, typ)
}

// WritePrometheus writes the page: the families in the order they were
// added, then (NewRegistry) the library's go_* and process_* metrics.
func (r *Registry) WritePrometheus(w io.Writer) {
	r.mu.Lock()
	families := r.families
	r.mu.Unlock()
	for _, f := range families {
		f(w)
	}
	if r.process {
		vm.WriteProcessMetrics(w)
		vm.WriteFDMetrics(w)
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// Labels returns the label set {n1="v1",n2="v2"} of the names and values
// in pairs, the values escaped as the text format wants; names must be
// in the order of the page (sorted, by convention).
func Labels(pairs ...string) string {
	if len(pairs)%2 != 0 {
		panic("observe: Labels takes names and values in pairs")
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(pairs[i])
		b.WriteString(`="`)
		labelEscaper.WriteString(&b, pairs[i+1])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// Handler serves GET /metrics from r and, with h, /healthz and /readyz;
// at most 4 scrapes at once, as the zone server's promhttp handler.
func Handler(r *Registry, h *Health) http.Handler {
	mux := http.NewServeMux()
	inflight := make(chan struct{}, 4)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, req *http.Request) {
		select {
		case inflight <- struct{}{}:
			defer func() { <-inflight }()
		default:
			http.Error(w, "too many concurrent scrapes", http.StatusServiceUnavailable)
			return
		}
		var b bytes.Buffer
		r.WritePrometheus(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(b.Bytes())
	})
	if h != nil {
		h.Mount(mux)
	}
	mux.HandleFunc("/", NotFound)
	return mux
}
