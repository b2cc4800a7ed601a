package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// A handler behind the access log can flush its answer before it returns
// (a restore's answer goes out before its cleanup).
func TestStatusRecorderFlushes(t *testing.T) {
	w := httptest.NewRecorder()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	rec.Write([]byte("answer"))
	if err := http.NewResponseController(rec).Flush(); err != nil || !w.Flushed {
		t.Errorf("Flush through the access log's recorder: %v, flushed %v", err, w.Flushed)
	}
}
