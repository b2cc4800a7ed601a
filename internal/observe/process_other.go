//go:build !linux && !darwin && !windows

package observe

// processStats reports nothing where client_golang's process collector
// reports nothing either.
func processStats() []procStat { return nil }
