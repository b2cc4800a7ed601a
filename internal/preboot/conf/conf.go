// Package conf reads and writes the preboot services' .conf files: one
// "Name = Value" per line, '#' comments (whole lines, or after a value
// following a space), every parameter listed in the
// file with its default, and the ones the reference leaves commented out
// written as comments. A parameter present with an empty value takes its
// default, as the reference says.
package conf

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"zonekit/internal/errkind"
)

// Kind is the type of a parameter's value.
type Kind int

const (
	String   Kind = iota
	Int           // an integer in [Min, Max]
	IP            // an IPv4 or IPv6 address
	HostPort      // an address, optionally with ":port"
	YesNo         // YES or NO (any case)
	Path          // a file or directory path
	Listen        // an IP address with ":port", to listen on
)

// Param describes one configuration parameter.
type Param struct {
	Name      string
	Default   string
	Kind      Kind
	Min, Max  int
	Commented bool     // written commented out in a new file
	Help      []string // comment lines written above it
}

// Spec is one service's configuration file.
type Spec struct {
	Service string // the service name used on the command line
	Title   string // a line for the file header
	Params  []Param
}

// Values are a parsed configuration, every parameter present.
type Values struct {
	spec *Spec
	m    map[string]string
	set  map[string]bool
}

func (s *Spec) param(name string) *Param {
	for i := range s.Params {
		if strings.EqualFold(s.Params[i].Name, name) {
			return &s.Params[i]
		}
	}
	return nil
}

// Defaults returns the values of a file that sets nothing.
func (s *Spec) Defaults() *Values {
	v := &Values{spec: s, m: map[string]string{}, set: map[string]bool{}}
	for _, p := range s.Params {
		v.m[p.Name] = p.Default
	}
	return v
}

// Parse reads a configuration file. Names are matched without regard to
// case; an unknown name or a bad value is an error naming its line.
func (s *Spec) Parse(data []byte) (*Values, error) {
	v := s.Defaults()
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, errkind.New(errkind.Invalid, "line %d: %q is not Name = Value", n, line)
		}
		name, val = strings.TrimSpace(name), stripComment(strings.TrimSpace(val))
		p := s.param(name)
		if p == nil {
			return nil, errkind.New(errkind.Invalid, "line %d: unknown parameter %q for %s", n, name, s.Service)
		}
		if val == "" {
			continue
		}
		if err := p.Check(val); err != nil {
			return nil, errkind.New(errkind.Invalid, "line %d: %v", n, err)
		}
		v.m[p.Name] = val
		v.set[p.Name] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return v, nil
}

// stripComment removes a trailing comment from a value: a '#' that
// follows a space or tab starts one, so "69  # the port" is 69. A
// '#' inside a word (a path such as /srv/tftp#1) stays.
func stripComment(val string) string {
	for i := 1; i < len(val); i++ {
		if val[i] == '#' && (val[i-1] == ' ' || val[i-1] == '\t') {
			return strings.TrimSpace(val[:i])
		}
	}
	if val != "" && val[0] == '#' {
		return "" // "Name = # comment": no value, the default
	}
	return val
}

// Check validates one value for p.
func (p *Param) Check(val string) error {
	switch p.Kind {
	case Int:
		i, err := strconv.Atoi(val)
		if err != nil || i < p.Min || i > p.Max {
			return fmt.Errorf("%s must be a whole number from %d to %d (got %q)", p.Name, p.Min, p.Max, val)
		}
	case IP:
		if _, err := netip.ParseAddr(val); err != nil {
			return fmt.Errorf("%s must be an IP address (got %q)", p.Name, val)
		}
	case HostPort:
		host := val
		if h, port, err := net.SplitHostPort(val); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%s: bad port in %q", p.Name, val)
			}
			host = h
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%s must be an IP address, optionally with :port (got %q)", p.Name, val)
		}
	case Listen:
		h, port, err := net.SplitHostPort(val)
		if err != nil {
			return fmt.Errorf("%s must be an IP address with :port, such as 127.0.0.1:9102 (got %q)", p.Name, val)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s: bad port in %q", p.Name, val)
		}
		if _, err := netip.ParseAddr(h); err != nil && h != "" {
			return fmt.Errorf("%s must be an IP address with :port, such as 127.0.0.1:9102 (got %q)", p.Name, val)
		}
	case YesNo:
		if !strings.EqualFold(val, "yes") && !strings.EqualFold(val, "no") {
			return fmt.Errorf("%s must be YES or NO (got %q)", p.Name, val)
		}
	}
	return nil
}

func (v *Values) get(name string) string {
	val, ok := v.m[name]
	if !ok {
		panic("conf: no parameter " + name + " in " + v.spec.Service) // a programming error
	}
	return val
}

// String returns a parameter's value.
func (v *Values) String(name string) string { return v.get(name) }

// Int returns an integer parameter (or 0 when it is empty).
func (v *Values) Int(name string) int {
	i, _ := strconv.Atoi(v.get(name))
	return i
}

// Bool is true for YES and for a non-zero number.
func (v *Values) Bool(name string) bool {
	s := v.get(name)
	return strings.EqualFold(s, "yes") || (s != "" && s != "0" && !strings.EqualFold(s, "no"))
}

// Set sets a value after checking it; tests and commands use it.
func (v *Values) Set(name, val string) error {
	p := v.spec.param(name)
	if p == nil {
		return errkind.New(errkind.Usage, "unknown parameter %q for %s", name, v.spec.Service)
	}
	if val != "" {
		if err := p.Check(val); err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
	} else {
		val = p.Default
	}
	v.m[p.Name] = val
	v.set[p.Name] = true
	return nil
}

// IsSet reports whether the file gave the parameter a value.
func (v *Values) IsSet(name string) bool { return v.set[name] }

// Render writes a new configuration file: a header, then each parameter
// with its help, commented out where the reference ships it so.
func (s *Spec) Render() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n#\n", s.Title)
	b.WriteString("# One \"Name = Value\" per line. A parameter with no value takes its\n")
	b.WriteString("# default; a commented-out one is at its default. Apply changes with\n")
	fmt.Fprintf(&b, "# 'pbserv %s force-reload'.\n", s.Service)
	for _, p := range s.Params {
		b.WriteString("\n")
		for _, h := range p.Help {
			fmt.Fprintf(&b, "# %s\n", h)
		}
		if p.Commented {
			b.WriteString("#")
		}
		fmt.Fprintf(&b, "%s = %s\n", p.Name, p.Default)
	}
	return b.Bytes()
}
