package zone

import (
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"unicode"

	"zonekit/internal/errkind"
)

// DeviceFilter picks devices by what the zone knows of them: their record
// and the inventory their agent reported. Every field given must match.
// It is the rule of assignment filters (zman package-assign --software
// ...) and of dynamic groups (zman group-create --software ...).
type DeviceFilter struct {
	OS          string `json:"os,omitempty"`           // substring of the device's OS, case-insensitive
	NamePattern string `json:"name_pattern,omitempty"` // shell pattern on the device name
	// Software is a shell pattern on an installed software's name
	// (case-insensitive); Version, with it, constrains that software's
	// version: "1.2.3" (exactly), "<2", "<=2.1", ">1.0", ">=1.4", "!=3".
	Software string `json:"software,omitempty"`
	Version  string `json:"version,omitempty"`
	// IPRange is a CIDR prefix (10.1.0.0/16) or a range (10.1.2.10-10.1.2.99)
	// that the device's address or inventory IP falls in.
	IPRange string `json:"ip_range,omitempty"`
}

// Empty says whether the filter picks nothing by itself.
func (f DeviceFilter) Empty() bool { return f == DeviceFilter{} }

// Check refuses a filter that cannot be evaluated, with a message naming
// the flag.
func (f DeviceFilter) Check() error {
	if _, err := path.Match(f.NamePattern, ""); err != nil {
		return errkind.New(errkind.Usage, "name pattern %q is not valid", f.NamePattern)
	}
	if _, err := path.Match(strings.ToLower(f.Software), ""); err != nil {
		return errkind.New(errkind.Usage, "software pattern %q is not valid", f.Software)
	}
	if f.Version != "" && f.Software == "" {
		return errkind.New(errkind.Usage, "a version needs a software name: the version of which software?")
	}
	if f.Version != "" {
		if _, _, err := parseConstraint(f.Version); err != nil {
			return err
		}
	}
	if f.IPRange != "" {
		if _, err := parseRange(f.IPRange); err != nil {
			return err
		}
	}
	return nil
}

// Match says whether dev, with its inventory (nil when its agent sent
// none), passes the filter. A software or IP condition on a device the
// zone knows nothing of is not met.
func (f DeviceFilter) Match(dev Device, inv *Inventory) bool {
	if f.OS != "" && !strings.Contains(strings.ToLower(dev.OS), strings.ToLower(f.OS)) {
		return false
	}
	if f.NamePattern != "" {
		if ok, _ := path.Match(f.NamePattern, dev.Name); !ok {
			return false
		}
	}
	if f.Software != "" && !f.softwareMatch(inv) {
		return false
	}
	if f.IPRange != "" {
		r, err := parseRange(f.IPRange)
		if err != nil {
			return false
		}
		var ips []string
		if dev.Address != "" {
			ips = append(ips, hostOf(dev.Address))
		}
		if inv != nil && inv.IP != "" {
			ips = append(ips, inv.IP)
		}
		in := false
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil && r.contains(a.Unmap()) {
				in = true
			}
		}
		if !in {
			return false
		}
	}
	return true
}

func (f DeviceFilter) softwareMatch(inv *Inventory) bool {
	if inv == nil {
		return false
	}
	pat := strings.ToLower(f.Software)
	for _, sw := range inv.Software {
		if ok, _ := path.Match(pat, strings.ToLower(sw.Name)); !ok {
			continue
		}
		if f.Version == "" {
			return true
		}
		op, want, _ := parseConstraint(f.Version)
		c := compareVersions(sw.Version, want)
		switch op {
		case "=":
			if c == 0 {
				return true
			}
		case "!=":
			if c != 0 {
				return true
			}
		case "<":
			if c < 0 {
				return true
			}
		case "<=":
			if c <= 0 {
				return true
			}
		case ">":
			if c > 0 {
				return true
			}
		case ">=":
			if c >= 0 {
				return true
			}
		}
	}
	return false
}

func parseConstraint(s string) (op, version string, err error) {
	s = strings.TrimSpace(s)
	for _, o := range []string{"<=", ">=", "!=", "<", ">", "="} {
		if v, ok := strings.CutPrefix(s, o); ok {
			op, s = o, strings.TrimSpace(v)
			break
		}
	}
	if op == "" {
		op = "="
	}
	if s == "" {
		return "", "", errkind.New(errkind.Usage, "version %q: want a version, with <, <=, >, >=, = or != before it", s)
	}
	return op, s, nil
}

// compareVersions compares dotted versions as package managers roughly
// do: runs of digits as numbers, other runs as text ("1.10" > "1.9",
// "2.0-rc1" < "2.0-rc2"); a version that is a prefix of another is the
// smaller.
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, y := pa[i], pb[i]
		nx, ex := strconv.ParseUint(x, 10, 64)
		ny, ey := strconv.ParseUint(y, 10, 64)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
		case x != y:
			return strings.Compare(x, y)
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	return 0
}

func versionParts(v string) []string {
	var out []string
	cur, digits := "", false
	for _, r := range v {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			if cur != "" {
				out = append(out, cur)
			}
			cur = ""
			continue
		}
		d := unicode.IsDigit(r)
		if cur != "" && d != digits {
			out = append(out, cur)
			cur = ""
		}
		cur, digits = cur+string(r), d
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

type ipRange struct{ from, to netip.Addr }

func (r ipRange) contains(a netip.Addr) bool {
	return a.BitLen() == r.from.BitLen() && a.Compare(r.from) >= 0 && a.Compare(r.to) <= 0
}

func parseRange(s string) (ipRange, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		b := p.Addr().AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			b[i/8] |= 0x80 >> (i % 8) // the host bits set: the last address
		}
		last, _ := netip.AddrFromSlice(b)
		return ipRange{p.Addr().Unmap(), last.Unmap()}, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(from))
		b, err2 := netip.ParseAddr(strings.TrimSpace(to))
		if err1 == nil && err2 == nil && a.BitLen() == b.BitLen() && a.Compare(b) <= 0 {
			return ipRange{a.Unmap(), b.Unmap()}, nil
		}
	}
	return ipRange{}, errkind.New(errkind.Usage, "IP range %q: want a prefix (10.1.0.0/16) or a range (10.1.2.10-10.1.2.99)", s)
}

// hostOf takes the host of a device address (host:port, [v6]:port or a
// bare host).
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.Trim(addr, "[]")
}

// Matching lists the devices f matches now, reading the inventory only
// when f asks about software or addresses.
func (d *DB) Matching(f DeviceFilter) ([]string, error) {
	devs, err := d.Devices()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, dev := range devs {
		var inv *Inventory
		if f.Software != "" || f.IPRange != "" {
			if inv, err = d.Inventory(dev.ID); err != nil {
				return nil, err
			}
		}
		if f.Match(dev, inv) {
			out = append(out, dev.ID)
		}
	}
	return out, nil
}
