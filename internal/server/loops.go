package server

import (
	"context"
	"sync"

	"zonekit/internal/server/certificates"
)

// A Loop is one of the server's background loops (certificate changes,
// cluster join, content replication, scrub): a value its owner, the
// daemon, starts once the server answers and stops before the store is
// closed.
type Loop struct {
	name string
	run  func(context.Context)

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewLoop makes a loop of run, which must return when its context ends.
func NewLoop(name string, run func(context.Context)) *Loop {
	return &Loop{name: name, run: run}
}

// Name says what the loop does, for logs.
func (l *Loop) Name() string { return l.name }

// Start runs the loop in its own goroutine until Stop is called or ctx
// ends. Starting a running loop does nothing.
func (l *Loop) Start(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return
	}
	ctx, l.cancel = context.WithCancel(ctx)
	l.done = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		l.run(ctx)
	}(l.done)
}

// Stop ends the loop and waits for it to return, so that nothing it does
// outlives its owner; a loop never started, or stopped already, is left
// as it is.
func (l *Loop) Stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	<-done
}

// Loops returns the server's background loops, in the order to start
// them; each is a new value, started by the caller (see Serve).
func (s *Server) Loops() []*Loop {
	loops := []*Loop{NewLoop("peers file", s.peersFileLoop), NewLoop("certificate changes", certificates.Loop{Changes: s.changes, DeviceCA: s.devCA, Stopped: s.restored.Load}.Run)}
	if s.rep != nil {
		// Through replication, which needs this server answering its peers.
		loops = append(loops, NewLoop("cluster membership", s.cluster.StartReplicating))
	}
	return append(loops, NewLoop("content replication", s.content.Run), NewLoop("content scrub", s.content.ScrubLoop))
}

// StartLoops starts loops in order.
func StartLoops(ctx context.Context, loops []*Loop) {
	for _, l := range loops {
		l.Start(ctx)
	}
}

// StopLoops stops loops in the reverse order, waiting for each.
func StopLoops(loops []*Loop) {
	for i := len(loops) - 1; i >= 0; i-- {
		loops[i].Stop()
	}
}
