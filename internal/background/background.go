// Package background runs a server's fire-and-forget work (recording an
// agent's contact, telling a peer about a damaged copy, a scrub a peer
// asked for) within bounds: at most a fixed number of tasks at once, a
// context that the server's shutdown cancels, and a Close that waits for
// the tasks, so none outlives the store it writes to.
package background

import (
	"context"
	"sync"
)

// Group is a bounded set of background tasks. The zero value is not
// usable; make one with New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex // orders Go's wg.Add before Close's wg.Wait
	closed bool
}

// New makes a group running at most limit tasks at once.
func New(limit int) *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{ctx: ctx, cancel: cancel, slots: make(chan struct{}, max(limit, 1))}
}

// Go runs f in its own goroutine with the group's context, unless limit
// tasks are running already or the group is closed: then f is not run and
// Go returns false, for the caller to log or refuse (a burst of requests
// never turns into as many goroutines).
func (g *Group) Go(f func(ctx context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	select {
	case g.slots <- struct{}{}:
	default:
		return false
	}
	g.wg.Add(1)
	go func() {
		defer func() { <-g.slots; g.wg.Done() }()
		f(g.ctx)
	}()
	return true
}

// Close refuses new tasks, cancels the context of the running ones and
// waits until they return, or until ctx is done (its error is returned
// then, and the tasks are left to notice the cancellation).
func (g *Group) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
