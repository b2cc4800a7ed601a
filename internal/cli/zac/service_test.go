package zac

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The service manager's Stop cancels the agent loop's context and waits
// for it to end; a loop that ends by itself ends the service.
func TestRunUntilStopped(t *testing.T) {
	stop := make(chan struct{})
	started := false
	loop := func(ctx context.Context) error {
		<-ctx.Done()
		return nil // the loop's clean end after SIGTERM or Stop
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		close(stop)
	}()
	if err := runUntilStopped(context.Background(), loop, stop, func() { started = true }); err != nil || !started {
		t.Fatalf("stopped: %v, running reported %v", err, started)
	}
	boom := errors.New("not registered")
	err := runUntilStopped(context.Background(), func(context.Context) error { return boom }, make(chan struct{}), func() {})
	if !errors.Is(err, boom) {
		t.Fatalf("a loop that fails: %v", err)
	}
}
