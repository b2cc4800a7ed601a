package agent

import (
	"io"
	"testing"
	"time"

	"zonekit/internal/api"
)

// A CPK deployment's steps get the zone's execution timeout, and the
// zone's secret names are masked whatever the package says.
func TestCPKProcessorTakesTheZoneSettings(t *testing.T) {
	e := &engine{a: New(t.TempDir()), cfg: api.DownloadConfig{ExecutionTimeout: 7}}
	p := e.cpkProcessor(io.Discard, []string{"PASSWD"})
	if p.StepTimeout != 7*time.Minute || len(p.SecretNames) != 1 || p.StateDir != e.a.SPKStateDir() {
		t.Fatalf("%+v", p)
	}
	e.cfg.ExecutionTimeout = 0
	if p := e.cpkProcessor(io.Discard, nil); p.StepTimeout != 120*time.Minute {
		t.Fatalf("default: %v", p.StepTimeout)
	}
}
