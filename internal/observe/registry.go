package observe

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Metric types, as the text format's TYPE lines name them.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
	Summary   = "summary"
)

// Family is one metric family as a scrape writes it.
type Family struct {
	Name, Help, Type string
	Samples          []Sample // in the order written
}

// Sample is one line of a family: Suffix is "" or "_bucket", "_sum",
// "_count" for histograms and summaries.
type Sample struct {
	Suffix string
	Labels []Label // written sorted by name, then Extra
	Extra  *Label  // le or quantile, written last
	Value  float64
}

// Label is a label's name and value.
type Label struct{ Name, Value string }

// Registry holds a daemon's metrics and writes them in Prometheus's text
// exposition format (version 0.0.4), families sorted by name as
// client_golang writes them. The zero Registry is empty and ready to use.
type Registry struct {
	mu         sync.Mutex
	collectors []func(emit func(Family))
}

// Collect adds c, which emits its families at each scrape.
func (r *Registry) Collect(c func(emit func(Family))) {
	r.mu.Lock()
	r.collectors = append(r.collectors, c)
	r.mu.Unlock()
}

// GaugeFunc adds a gauge without labels whose value f gives at each scrape.
func (r *Registry) GaugeFunc(name, help string, labels []Label, f func() float64) {
	r.Collect(func(emit func(Family)) {
		emit(Family{Name: name, Help: help, Type: Gauge, Samples: []Sample{{Labels: labels, Value: f()}}})
	})
}

// Gather returns every family, sorted by name; a name that two collectors
// emit is an error (the page would be invalid).
func (r *Registry) Gather() ([]Family, error) {
	r.mu.Lock()
	cs := slices.Clone(r.collectors)
	r.mu.Unlock()
	var fams []Family
	for _, c := range cs {
		c(func(f Family) { fams = append(fams, f) })
	}
	slices.SortStableFunc(fams, func(a, b Family) int { return cmp.Compare(a.Name, b.Name) })
	for i := 1; i < len(fams); i++ {
		if fams[i].Name == fams[i-1].Name {
			return nil, fmt.Errorf("metric family %s collected twice", fams[i].Name)
		}
	}
	return fams, nil
}

// WriteText writes every family in the text format; families without
// samples are left out, as client_golang leaves them.
func (r *Registry) WriteText(w io.Writer) error {
	fams, err := r.Gather()
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	var b []byte
	for _, f := range fams {
		if len(f.Samples) == 0 {
			continue
		}
		b = append(b[:0], "# HELP "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.Help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = append(b, f.Type...)
		b = append(b, '\n')
		for _, s := range f.Samples {
			b = append(b, f.Name...)
			b = append(b, s.Suffix...)
			labels := s.Labels
			if len(labels) > 1 && !slices.IsSortedFunc(labels, byName) {
				labels = slices.Clone(labels)
				slices.SortFunc(labels, byName)
			}
			if s.Extra != nil {
				labels = append(labels[:len(labels):len(labels)], *s.Extra)
			}
			for i, l := range labels {
				if i == 0 {
					b = append(b, '{')
				} else {
					b = append(b, ',')
				}
				b = append(b, l.Name...)
				b = append(b, `="`...)
				b = appendEscaped(b, l.Value, true)
				b = append(b, '"')
			}
			if len(labels) > 0 {
				b = append(b, '}')
			}
			b = append(b, ' ')
			b = appendFloat(b, s.Value)
			b = append(b, '\n')
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func byName(a, b Label) int { return cmp.Compare(a.Name, b.Name) }

// appendEscaped escapes a HELP text (backslash, newline) or a label value
// (also the double quote).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat writes a value as client_golang does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
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
		var b strings.Builder
		if err := r.WriteText(&b); err != nil {
			http.Error(w, "gather metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, b.String())
	})
	if h != nil {
		h.Mount(mux)
	}
	mux.HandleFunc("/", NotFound)
	return mux
}

// CounterVec is a counter family with labels.
type CounterVec struct {
	labels []string
	mu     sync.RWMutex
	series map[string]*CounterValue
}

// CounterValue is one series of a CounterVec.
type CounterValue struct {
	labels []Label
	bits   atomic.Uint64 // float64
}

// Inc adds 1.
func (c *CounterValue) Inc() { c.Add(1) }

// Add adds v, which must not be negative.
func (c *CounterValue) Add(v float64) {
	if v < 0 {
		panic("observe: a counter cannot decrease")
	}
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Value is the counter's value.
func (c *CounterValue) Value() float64 { return math.Float64frombits(c.bits.Load()) }

// NewCounterVec adds a counter family with the label names labels.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{labels: labels, series: map[string]*CounterValue{}}
	r.Collect(func(emit func(Family)) {
		f := Family{Name: name, Help: help, Type: Counter}
		for _, s := range sortedSeries(&c.mu, c.series) {
			f.Samples = append(f.Samples, Sample{Labels: s.labels, Value: s.Value()})
		}
		emit(f)
	})
	return c
}

// With returns the series of the label values, in the order of the names.
func (c *CounterVec) With(values ...string) *CounterValue {
	return series(&c.mu, c.series, c.labels, values, func(l []Label) *CounterValue { return &CounterValue{labels: l} })
}

// HistogramVec is a histogram family with labels.
type HistogramVec struct {
	buckets []float64
	labels  []string
	mu      sync.RWMutex
	series  map[string]*HistogramValue
}

// HistogramValue is one series of a HistogramVec.
type HistogramValue struct {
	labels  []Label
	upper   []float64
	counts  []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumBits atomic.Uint64
}

// Observe counts v.
func (h *HistogramValue) Observe(v float64) {
	h.counts[sort.SearchFloat64s(h.upper, v)].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Count is how many values were observed.
func (h *HistogramValue) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// NewHistogramVec adds a histogram family with the bucket upper bounds
// buckets (sorted, without +Inf) and the label names labels.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if !slices.IsSorted(buckets) {
		panic("observe: histogram buckets must be sorted")
	}
	h := &HistogramVec{buckets: slices.Clone(buckets), labels: labels, series: map[string]*HistogramValue{}}
	r.Collect(func(emit func(Family)) {
		f := Family{Name: name, Help: help, Type: Histogram}
		for _, s := range sortedSeries(&h.mu, h.series) {
			// _count is the +Inf bucket as read here, so the two agree
			// while requests are being counted.
			var cum uint64
			for i := range s.counts {
				cum += s.counts[i].Load()
				le := "+Inf"
				if i < len(s.upper) {
					le = strconv.FormatFloat(s.upper[i], 'g', -1, 64)
				}
				f.Samples = append(f.Samples, Sample{Suffix: "_bucket", Labels: s.labels, Extra: &Label{"le", le}, Value: float64(cum)})
			}
			f.Samples = append(f.Samples,
				Sample{Suffix: "_sum", Labels: s.labels, Value: math.Float64frombits(s.sumBits.Load())},
				Sample{Suffix: "_count", Labels: s.labels, Value: float64(cum)})
		}
		emit(f)
	})
	return h
}

// With returns the series of the label values, in the order of the names.
func (h *HistogramVec) With(values ...string) *HistogramValue {
	return series(&h.mu, h.series, h.labels, values, func(l []Label) *HistogramValue {
		return &HistogramValue{labels: l, upper: h.buckets, counts: make([]atomic.Uint64, len(h.buckets)+1)}
	})
}

// series finds or makes the series of values in m.
func series[T comparable](mu *sync.RWMutex, m map[string]T, names, values []string, newSeries func([]Label) T) T {
	if len(values) != len(names) {
		panic(fmt.Sprintf("observe: %d label values for %d labels %q", len(values), len(names), names))
	}
	key := strings.Join(values, "\xff")
	mu.RLock()
	s := m[key]
	mu.RUnlock()
	var none T
	if s != none {
		return s
	}
	mu.Lock()
	defer mu.Unlock()
	if s = m[key]; s == none {
		labels := make([]Label, len(names))
		for i := range names {
			labels[i] = Label{names[i], values[i]}
		}
		slices.SortFunc(labels, byName)
		s = newSeries(labels)
		m[key] = s
	}
	return s
}

// sortedSeries returns m's series sorted by their labels, as client_golang
// writes them.
func sortedSeries[T interface{ labelSet() []Label }](mu *sync.RWMutex, m map[string]T) []T {
	mu.RLock()
	out := make([]T, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	mu.RUnlock()
	slices.SortFunc(out, func(a, b T) int {
		la, lb := a.labelSet(), b.labelSet()
		for i := range min(len(la), len(lb)) {
			if c := cmp.Compare(la[i].Value, lb[i].Value); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(la), len(lb))
	})
	return out
}

func (c *CounterValue) labelSet() []Label   { return c.labels }
func (h *HistogramValue) labelSet() []Label { return h.labels }
