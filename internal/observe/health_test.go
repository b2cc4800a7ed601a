package observe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRoute(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "unmatched",
		"/ocsinventory":           "/ocsinventory",
		"GET /api/v1/devices/{r}": "/api/v1/devices/{r}",
	} {
		if got := Route(in); got != want {
			t.Errorf("Route(%q) = %q, want %q", in, got, want)
		}
	}
	if Method("BREW") != "OTHER" || Method("GET") != "GET" {
		t.Error("methods outside the standard set must collapse to OTHER")
	}
}

func TestReadyz(t *testing.T) {
	down := errors.New("no leader\nknown")
	h := &Health{Ready: []Check{
		{Name: "store", Check: func(context.Context) error { return nil }},
		{Name: "replication", Check: func(context.Context) error { return down }},
	}}
	rec := httptest.NewRecorder()
	h.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	want := "[+]store ok\n[-]replication failed: no leader known\nreadyz check failed\n"
	if rec.Body.String() != want {
		t.Errorf("body %q, want %q", rec.Body.String(), want)
	}
	down = nil
	h.Ready[1].Check = func(context.Context) error { return down }
	rec = httptest.NewRecorder()
	h.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusOK || !strings.HasSuffix(rec.Body.String(), "\nok\n") {
		t.Errorf("status %d body %q, want 200 ending in ok", rec.Code, rec.Body.String())
	}
}

func TestReadyzCheckTimesOut(t *testing.T) {
	h := &Health{Timeout: 10 * time.Millisecond, Ready: []Check{{Name: "store", Check: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}}}
	failed, report := h.Run(context.Background())
	if failed != 1 || !strings.Contains(report, "[-]store failed: context deadline exceeded") {
		t.Errorf("failed %d, report %q", failed, report)
	}
}
