package daemon

import (
	"bytes"
	"time"

	"zonekit/internal/config"
	"zonekit/internal/proc"
)

// Status describes the background server.
type Status = proc.Status

// spec is the background zone server of home p.
func spec(p config.Paths, exe string) proc.Spec {
	return proc.Spec{
		Title: "the zone server", Name: "zone server",
		PidFile: p.PidFile(), OutFile: p.OutFile(),
		Exe: exe, Args: []string{"serve", "--home", p.Home},
		Ours:   func(cmdline []byte) bool { return bytes.Contains(cmdline, []byte("serve")) },
		Prefix: "zconfigure: ",
	}
}

// ReadStatus reads the pid file and checks that its process is alive and a
// zone server, so a stale file after a crash reads as stopped.
func ReadStatus(p config.Paths) Status { return proc.ReadStatus(spec(p, "")) }

// Start launches `zconfigure serve` in the background and waits until it
// listens or fails; a failure carries the server's own last words.
func Start(p config.Paths, exe string, wait time.Duration) (Status, error) {
	if err := p.CheckZone(); err != nil {
		return Status{}, err
	}
	return proc.Start(spec(p, exe), wait)
}

// Stop sends SIGTERM and waits for the server to finish its requests and exit.
func Stop(p config.Paths, wait time.Duration) (Status, error) {
	return proc.Stop(spec(p, ""), wait)
}
