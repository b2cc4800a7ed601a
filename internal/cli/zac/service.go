package zac

import "context"

// runUntilStopped runs the agent loop until it ends or stop is closed (a
// service manager's Stop or Shutdown), which cancels its context as
// SIGTERM does on Unix; running is called once the loop has started. It
// is the part of the Windows service glue (service_windows.go) that any
// host can test.
func runUntilStopped(ctx context.Context, run func(context.Context) error, stop <-chan struct{}, running func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	running()
	select {
	case err := <-done:
		return err
	case <-stop:
		cancel()
		return <-done
	}
}
