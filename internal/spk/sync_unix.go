//go:build unix && !linux

package spk

import "syscall"

// syncPaths flushes every file system (no syncfs here).
func syncPaths([]string) { syscall.Sync() }
