package observe

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// userHZ is the kernel's clock ticks per second in /proc (USER_HZ),
// 100 on every architecture Linux exposes to user space, as procfs has it.
const userHZ = 100

func processStats() []procStat {
	var out []procStat
	add := func(name, help, typ string, v float64) { out = append(out, procStat{name, help, typ, v}) }
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		// The command name in parentheses may hold spaces: the fields
		// start after the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			// f[0] is field 3 (state) of proc(5).
			field := func(n int) float64 {
				if n-3 >= len(f) {
					return 0
				}
				v, _ := strconv.ParseFloat(f[n-3], 64)
				return v
			}
			if len(f) >= 22 {
				add("process_cpu_seconds_total", procCPUHelp, Counter, (field(14)+field(15))/userHZ)
				add("process_virtual_memory_bytes", procVsizeHelp, Gauge, field(23))
				add("process_resident_memory_bytes", procRSSHelp, Gauge, field(24)*float64(os.Getpagesize()))
				if boot, ok := bootTime(); ok {
					add("process_start_time_seconds", procStartHelp, Gauge, boot+field(22)/userHZ)
				}
			}
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		add("process_open_fds", procOpenFDsHelp, Gauge, float64(len(ents)))
	}
	if files, space, ok := limits(); ok {
		add("process_max_fds", procMaxFDsHelp, Gauge, files)
		add("process_virtual_memory_max_bytes", procMaxVsizeHelp, Gauge, space)
	}
	if in, out_, ok := ipOctets(); ok {
		add("process_network_receive_bytes_total", procNetInHelp, Counter, in)
		add("process_network_transmit_bytes_total", procNetOutHelp, Counter, out_)
	}
	return out
}

// bootTime is btime of /proc/stat: when the system booted, Unix time.
func bootTime() (float64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n, err == nil
		}
	}
	return 0, false
}

// limits reads the soft limits on open files and address space from
// /proc/self/limits; "unlimited" is the largest uint64, as procfs reads it.
func limits() (files, space float64, ok bool) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return 0, 0, false
	}
	soft := func(line string) (float64, bool) {
		f := strings.Fields(line)
		// "Max open files  1024  4096  files": the soft limit is the
		// first field after the name, which has 3 words.
		if len(f) < 4 {
			return 0, false
		}
		if f[3] == "unlimited" {
			return float64(^uint64(0)), true
		}
		v, err := strconv.ParseFloat(f[3], 64)
		return v, err == nil
	}
	var gotFiles, gotSpace bool
	for line := range strings.Lines(string(b)) {
		switch {
		case strings.HasPrefix(line, "Max open files "):
			files, gotFiles = soft(line)
		case strings.HasPrefix(line, "Max address space "):
			space, gotSpace = soft(line)
		}
	}
	return files, space, gotFiles && gotSpace
}

// ipOctets reads IpExt's InOctets and OutOctets of /proc/self/net/netstat
// (the process's network namespace), as procfs does.
func ipOctets() (in, out float64, ok bool) {
	b, err := os.ReadFile("/proc/self/net/netstat")
	if err != nil {
		return 0, 0, false
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "IpExt: ") || !strings.HasPrefix(lines[i+1], "IpExt: ") {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		var gotIn, gotOut bool
		for j := 1; j < len(names) && j < len(values); j++ {
			switch names[j] {
			case "InOctets":
				in, _ = strconv.ParseFloat(values[j], 64)
				gotIn = true
			case "OutOctets":
				out, _ = strconv.ParseFloat(values[j], 64)
				gotOut = true
			}
		}
		return in, out, gotIn && gotOut
	}
	return 0, 0, false
}
