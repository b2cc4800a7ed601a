package observe

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// processStats reports what client_golang reports on macOS built without
// cgo: no memory sizes (they need task_info) and no network counters.
func processStats() []procStat {
	var out []procStat
	add := func(name, help, typ string, v float64) { out = append(out, procStat{name, help, typ, v}) }
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		add("process_cpu_seconds_total", procCPUHelp, Counter, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	}
	if d, err := os.Open("/dev/fd"); err == nil {
		// Readdirnames, not ReadDir: a kqueue descriptor fails stat(2).
		names, err := d.Readdirnames(0)
		d.Close()
		if err == nil {
			add("process_open_fds", procOpenFDsHelp, Gauge, float64(len(names)-1)) // less the one reading /dev/fd
		}
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		add("process_max_fds", procMaxFDsHelp, Gauge, float64(lim.Cur))
	}
	if syscall.Getrlimit(syscall.RLIMIT_AS, &lim) == nil {
		add("process_virtual_memory_max_bytes", procMaxVsizeHelp, Gauge, float64(lim.Cur))
	}
	if procs, err := unix.SysctlKinfoProcSlice("kern.proc.pid", os.Getpid()); err == nil && len(procs) == 1 {
		add("process_start_time_seconds", procStartHelp, Gauge, float64(procs[0].Proc.P_starttime.Nano()/1e9))
	}
	return out
}
