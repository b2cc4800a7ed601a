//go:build unix

package spk

import "syscall"

// killPid kills a process a test left running.
func killPid(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
