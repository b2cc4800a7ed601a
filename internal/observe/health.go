package observe

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Check is one condition of readiness; Check returns why it fails.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Health answers /healthz and /readyz.
type Health struct {
	// Ready lists what /readyz checks, in order.
	Ready []Check
	// Timeout bounds each check (default 2s): a load balancer's probe
	// must not hang on a stuck store.
	Timeout time.Duration
}

// Healthz answers 200 while the process serves HTTP at all: it is alive.
func (h *Health) Healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// Readyz runs every check and answers 200 when all pass, else 503; the
// body has one line per check as Kubernetes' /readyz?verbose does
// ("[+]store ok", "[-]leader failed: ...").
func (h *Health) Readyz(w http.ResponseWriter, r *http.Request) {
	failed, body := h.Run(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if failed > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "%sreadyz check failed\n", body)
		return
	}
	fmt.Fprintf(w, "%sok\n", body)
}

// Run runs the checks; it returns how many failed and the report.
func (h *Health) Run(ctx context.Context) (failed int, report string) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var b strings.Builder
	for _, c := range h.Ready {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.Check(cctx)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(&b, "[-]%s failed: %s\n", c.Name, oneLine(err.Error()))
			continue
		}
		fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
	}
	return failed, b.String()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// Mount adds GET /healthz and GET /readyz to mux.
func (h *Health) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.Healthz)
	mux.HandleFunc("GET /readyz", h.Readyz)
}
