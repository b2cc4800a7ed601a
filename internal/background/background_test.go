package background

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestBounded: no more than limit tasks run at once; the rest are refused,
// not queued as goroutines.
func TestBounded(t *testing.T) {
	g := New(3)
	release := make(chan struct{})
	var running atomic.Int32
	started := 0
	for i := 0; i < 100; i++ {
		if g.Go(func(context.Context) { running.Add(1); <-release; running.Add(-1) }) {
			started++
		}
	}
	if started != 3 {
		t.Fatalf("%d tasks started; want 3", started)
	}
	close(release)
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d tasks still running after Close", n)
	}
	if g.Go(func(context.Context) { t.Error("ran after Close") }) {
		t.Error("Go after Close = true")
	}
}

// TestCloseCancels: Close cancels the running tasks' context and waits for
// them to return.
func TestCloseCancels(t *testing.T) {
	g := New(2)
	var returned atomic.Bool
	started := make(chan struct{})
	g.Go(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // still waited for
		returned.Store(true)
	})
	<-started
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Error("Close returned before the task")
	}
}

// TestCloseDeadline: a task that ignores its context does not hold Close
// past the caller's deadline (here: already passed).
func TestCloseDeadline(t *testing.T) {
	g := New(1)
	release := make(chan struct{})
	defer close(release)
	g.Go(func(context.Context) { <-release })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Close(ctx); err != context.Canceled {
		t.Errorf("Close = %v; want the caller's cancellation", err)
	}
}
