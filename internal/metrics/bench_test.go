package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHTTPHandler is the middleware's cost per request on top of a
// ServeMux route (labels, histogram, byte count): what every API call
// and every fragment served by net/http pays.
func BenchmarkHTTPHandler(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /content/{id}/{file}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) })
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"counted", NewHTTP(NewRegistry("bench")).Handler("content", mux)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/content/1234/1234-1", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}
