package backuprestore

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/errkind"
)

func TestSameMajor(t *testing.T) {
	for _, tc := range []struct {
		backup, ours string
		ok           bool
	}{
		{"0.1.0-dev", "0.1.0-dev", true},
		{"0.1.0", "0.9.3", true},
		{"v1.2.3", "1.0.0", true},
		{"1.0.0", "0.1.0-dev", false},
		{"2.0.0", "1.9.9", false},
	} {
		err := sameMajor(tc.backup, tc.ours)
		if (err == nil) != tc.ok {
			t.Errorf("sameMajor(%q, %q) = %v, want ok=%v", tc.backup, tc.ours, err, tc.ok)
		}
		if err != nil && errkind.Of(err) != errkind.Invalid {
			t.Errorf("sameMajor(%q, %q): kind %v, want Invalid (exit 1)", tc.backup, tc.ours, errkind.Of(err))
		}
	}
}

// unwrapping stands for the server's access-log wrapper of the
// ResponseWriter.
type unwrapping struct{ http.ResponseWriter }

func (u unwrapping) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// A restore's answer reaches the client whole while the handler has not
// returned: the cleanup after it may end the process first.
func TestAnswerNowBeforeTheHandlerReturns(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerNow(unwrapping{w}, api.RestoreResult{Zone: "Acme", Server: "srv1", Files: 3, Restart: RestartCommand})
		<-release // a process killed here has answered already
	}))
	defer srv.Close()
	defer close(release)
	done := make(chan error, 1)
	var res api.RestoreResult
	go func() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body) // to the announced length, not to the handler's end
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || res.Zone != "Acme" || res.Files != 3 || res.Restart != RestartCommand {
			t.Errorf("answer %+v, %v", res, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no complete answer while the handler runs")
	}
}
