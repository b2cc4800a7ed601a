//go:build unix

package fileserve

import "syscall"

func defaultMaxOpen() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 4*4096 {
		return max(int(rl.Cur/4), 16)
	}
	return 4096
}
