package server

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLoopStartStop(t *testing.T) {
	var running, starts atomic.Int32
	l := NewLoop("test", func(ctx context.Context) {
		starts.Add(1)
		running.Add(1)
		<-ctx.Done()
		running.Add(-1)
	})
	l.Stop() // never started: nothing to do
	ctx := context.Background()
	l.Start(ctx)
	l.Start(ctx) // already running
	l.Stop()
	if running.Load() != 0 {
		t.Error("Stop returned before the loop did")
	}
	if starts.Load() != 1 {
		t.Errorf("the loop ran %d times; want once", starts.Load())
	}
	l.Stop() // stopped already

	// A loop ends with the context it was started with, too.
	ctx2, cancel := context.WithCancel(context.Background())
	l2 := NewLoop("test", func(ctx context.Context) { <-ctx.Done() })
	l2.Start(ctx2)
	cancel()
	l2.Stop()
}

func TestStopLoopsInReverseOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	mk := func(name string) *Loop {
		return NewLoop(name, func(ctx context.Context) {
			<-ctx.Done()
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
		})
	}
	loops := []*Loop{mk("a"), mk("b"), mk("c")}
	StartLoops(context.Background(), loops)
	StopLoops(loops) // each waited for before the next is stopped
	if len(order) != 3 || order[0] != "c" || order[1] != "b" || order[2] != "a" {
		t.Errorf("loops returned in order %v; want c b a", order)
	}
}
