//go:build windows

package zac

import (
	"context"

	"golang.org/x/sys/windows/svc"
)

// serviceName is the Windows service the pack's install.cmd creates.
const serviceName = "zonekit-agent"

// asService runs the agent loop under the Windows service control manager
// when zac was started by it (install.cmd's `sc create zonekit-agent`):
// the manager's Stop and Shutdown end the loop between steps. ok is false
// when zac runs from a console, and the caller runs the loop itself.
func asService(ctx context.Context, run func(context.Context) error) (ok bool, err error) {
	if is, err := svc.IsWindowsService(); err != nil || !is {
		return false, err
	}
	h := &serviceHandler{ctx: ctx, run: run}
	if err := svc.Run(serviceName, h); err != nil {
		return true, err
	}
	return true, h.err
}

type serviceHandler struct {
	ctx context.Context
	run func(context.Context) error
	err error
}

func (h *serviceHandler) Execute(args []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	s <- svc.Status{State: svc.StartPending}
	stop := make(chan struct{})
	go func() {
		for c := range r {
			switch c.Cmd {
			case svc.Interrogate:
				s <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				s <- svc.Status{State: svc.StopPending}
				close(stop)
				return
			}
		}
	}()
	h.err = runUntilStopped(h.ctx, h.run, stop, func() {
		s <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	})
	if h.err != nil {
		return false, 1
	}
	return false, 0
}
