package observe

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// processMemoryCounters is PROCESS_MEMORY_COUNTERS_EX (psapi.h).
type processMemoryCounters struct {
	_                          uint32
	PageFaultCount             uint32
	PeakWorkingSetSize         uintptr
	WorkingSetSize             uintptr
	QuotaPeakPagedPoolUsage    uintptr
	QuotaPagedPoolUsage        uintptr
	QuotaPeakNonPagedPoolUsage uintptr
	QuotaNonPagedPoolUsage     uintptr
	PagefileUsage              uintptr
	PeakPagefileUsage          uintptr
	PrivateUsage               uintptr
}

// processStats reports what client_golang reports on Windows: CPU, start
// time, private bytes as the virtual size, the working set as the
// resident size, and handles as file descriptors.
func processStats() []procStat {
	var out []procStat
	add := func(name, help, typ string, v float64) { out = append(out, procStat{name, help, typ, v}) }
	h := windows.CurrentProcess()
	var start, exit, kernel, user windows.Filetime
	if windows.GetProcessTimes(h, &start, &exit, &kernel, &user) != nil {
		return nil
	}
	seconds := func(ft windows.Filetime) float64 {
		return float64(uint64(ft.HighDateTime)<<32+uint64(ft.LowDateTime)) / 1e7
	}
	add("process_start_time_seconds", procStartHelp, Gauge, float64(start.Nanoseconds()/1e9))
	add("process_cpu_seconds_total", procCPUHelp, Counter, seconds(kernel)+seconds(user))
	var mem processMemoryCounters
	if r, _, _ := windows.NewLazySystemDLL("psapi.dll").NewProc("GetProcessMemoryInfo").Call(
		uintptr(h), uintptr(unsafe.Pointer(&mem)), unsafe.Sizeof(mem)); r == 1 {
		add("process_virtual_memory_bytes", procVsizeHelp, Gauge, float64(mem.PrivateUsage))
		add("process_resident_memory_bytes", procRSSHelp, Gauge, float64(mem.WorkingSetSize))
	}
	var handles uint32
	if r, _, _ := windows.NewLazySystemDLL("kernel32.dll").NewProc("GetProcessHandleCount").Call(
		uintptr(h), uintptr(unsafe.Pointer(&handles))); r == 1 {
		add("process_open_fds", procOpenFDsHelp, Gauge, float64(handles))
		// Windows has a fixed limit, not one per process.
		add("process_max_fds", procMaxFDsHelp, Gauge, 16*1024*1024)
	}
	return out
}
