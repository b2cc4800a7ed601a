package replica

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// Nudges while a barrier runs share one more barrier after it, never none
// (the barrier in flight may predate their commit) and never one each.
func TestNudgerCoalesces(t *testing.T) {
	started := make(chan int, 10)
	release := make(chan struct{})
	var calls atomic.Int32
	u := nudger{barrier: func() {
		started <- int(calls.Add(1))
		<-release
	}}
	u.nudge()
	if n := <-started; n != 1 {
		t.Fatalf("barrier %d started first", n)
	}
	for i := 0; i < 5; i++ { // commits while the first barrier is on its way
		u.nudge()
	}
	release <- struct{}{}
	if n := <-started; n != 2 {
		t.Fatalf("barrier %d started second", n)
	}
	release <- struct{}{}
	u.nudge() // after both: a barrier of its own
	if n := <-started; n != 3 {
		t.Fatalf("barrier %d started third", n)
	}
	close(release) // any further barrier runs through
	for u.running.Load() {
		runtime.Gosched()
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d barriers: five nudges during one barrier need one more, not five", n)
	}
}
