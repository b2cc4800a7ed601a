//go:build windows

package spk

import "os"

// killPid kills a process a test left running.
func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
