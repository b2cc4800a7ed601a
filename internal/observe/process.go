package observe

// The process_* families, with client_golang's names and help texts.
const (
	procCPUHelp      = "Total user and system CPU time spent in seconds."
	procOpenFDsHelp  = "Number of open file descriptors."
	procMaxFDsHelp   = "Maximum number of open file descriptors."
	procVsizeHelp    = "Virtual memory size in bytes."
	procMaxVsizeHelp = "Maximum amount of virtual memory available in bytes."
	procRSSHelp      = "Resident memory size in bytes."
	procStartHelp    = "Start time of the process since unix epoch in seconds."
	procNetInHelp    = "Number of bytes received by the process over the network."
	procNetOutHelp   = "Number of bytes sent by the process over the network."
)

// Process emits what client_golang's process collector reports on this
// operating system (process_cpu_seconds_total, process_open_fds, ...); a
// value the system does not give is left out, as there.
func Process(emit func(Family)) {
	for _, s := range processStats() {
		emit(Family{Name: s.name, Help: s.help, Type: s.typ, Samples: []Sample{{Value: s.value}}})
	}
}

type procStat struct {
	name, help, typ string
	value           float64
}
