//go:build !windows

package zac

import "context"

// asService: only Windows has a service manager that needs zac's help;
// systemd and launchd run `zac agent` as it is.
func asService(context.Context, func(context.Context) error) (bool, error) { return false, nil }
