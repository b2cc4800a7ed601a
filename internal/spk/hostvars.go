package spk

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"strings"
	"time"
)

// Built-in host variables: every package may refer to them without
// declaring them, and none may declare or set them. They describe the
// machine the package runs on.
var builtinVars = map[string]string{
	"HOST_NAME":       "the host name, without its domain",
	"HOST_FQDN":       "the fully qualified name (the resolver's canonical name, else the host name)",
	"HOST_OS":         "the operating system (linux, windows, darwin)",
	"HOST_OS_ID":      "the os-release ID (debian, rhel, ...)",
	"HOST_OS_VERSION": "the os-release VERSION_ID",
	"HOST_ARCH":       "the CPU architecture (amd64, arm64)",
	"HOST_IP":         "the first global unicast address (IPv4 first)",
	"HOST_IPS":        "every global unicast address, separated by spaces",
}

// BuiltinVars describes the built-in host variables.
func BuiltinVars() map[string]string {
	out := make(map[string]string, len(builtinVars))
	for k, v := range builtinVars {
		out[k] = v
	}
	return out
}

// Values returns the host variables a package refers to (HOST_FQDN asks
// the resolver, with a 2 s bound, only when it is used).
func (h Host) Values(p *Package) Values {
	logic, _ := json.Marshal(p)
	uses := func(name string) bool { return strings.Contains(string(logic), "%"+name+"%") }
	out := Values{}
	if h.Vars != nil {
		for k, v := range h.Vars {
			out[k] = v
		}
		return out
	}
	name, _ := os.Hostname()
	short, _, _ := strings.Cut(name, ".")
	out["HOST_NAME"] = short
	out["HOST_FQDN"] = name
	if uses("HOST_FQDN") && !strings.Contains(name, ".") {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if cname, err := net.DefaultResolver.LookupCNAME(ctx, name); err == nil && cname != "" {
			out["HOST_FQDN"] = strings.TrimSuffix(cname, ".")
		}
		cancel()
	}
	id, _, version := h.osRelease()
	out["HOST_OS"], out["HOST_OS_ID"], out["HOST_OS_VERSION"], out["HOST_ARCH"] = h.GOOS, id, version, runtime.GOARCH
	var v4, v6 []string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				v4 = append(v4, ipn.IP.String())
			} else {
				v6 = append(v6, ipn.IP.String())
			}
		}
	}
	all := append(v4, v6...)
	out["HOST_IPS"] = strings.Join(all, " ")
	if len(all) > 0 {
		out["HOST_IP"] = all[0]
	} else {
		out["HOST_IP"] = ""
	}
	return out
}
