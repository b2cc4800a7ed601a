package config

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
)

// Server is the zone server's resolved configuration.
type Server struct {
	ServerID                string
	Address                 string // listen address; empty means all interfaces
	Port                    int
	LogLevel                string
	RegistrationRequiresKey bool
	ShutdownTimeout         time.Duration
	ContentPort             int           // plain-HTTP port for package fragments; 0 for none
	ScrubInterval           time.Duration // between scrubs of stored content; 0 for none
	OCS                     OCS
	Cluster                 Cluster
	// MetricsAddress is host:port of the plain-HTTP listener serving
	// /metrics, /healthz and /readyz; empty for none.
	MetricsAddress string
}

// Cluster configures store replication between the zone's Primary Servers.
type Cluster struct {
	// Advertise is host:port where peers reach this server; empty for
	// server.address (or the server's name) and server.port.
	Advertise string
	// Join is the zone server a joined server asks, at its first start,
	// to make it a member (set by zconfigure -c JoinZone).
	Join string
	// HeartbeatTimeout is how long a follower waits for the leader before
	// it calls an election.
	HeartbeatTimeout time.Duration
	// Bootstrap forces a server without replication state to start a
	// cluster of its own even though the store lists other servers (every
	// server of the zone lost its replication log).
	Bootstrap bool
}

// OCS configures the endpoint for OCS Inventory NG agents (/ocsinventory).
type OCS struct {
	Enabled           bool
	Networks          []*net.IPNet // allowed client networks; empty for any
	User              string       // HTTP Basic user the agents are configured with (--user)
	PasswordFile      string       // file holding their password (--password)
	RequireClientCert bool         // over HTTPS, a client certificate from the zone CA
	PrologFreq        int          // hours between an agent's contacts
	InventoryEvery    int          // hours between inventories asked of an agent
}

// Property describes one settable configuration property.
type Property struct {
	Name    string
	Default string
	Help    string
	check   func(string) error
}

// Properties lists what `zconfigure -D name=value` may set, in display order.
func Properties() []Property {
	return []Property{
		{"server.id", "", "this server's identity in the zone (set by NewZone)", nonEmpty},
		{"server.address", "", "address to listen on; empty for all", anyValue},
		{"server.port", "443", "HTTPS port of the zone server", port},
		{"log.level", "info", "debug, info, warn or error", oneOf("debug", "info", "warn", "error")},
		{"registration.require-key", "false", "refuse registrations without a registration key", boolean},
		{"server.shutdown-timeout", "30s", "how long in-flight requests may run after SIGTERM", duration},
		{"server.content-port", "0", "plain-HTTP port serving package fragments (80 for OCS agents); 0 for none", portOrZero},
		{"ocs.enabled", "true", "answer OCS Inventory NG agents at /ocsinventory", boolean},
		{"ocs.networks", "", "comma-separated networks (CIDR) OCS agents may connect from; empty for any", cidrList},
		{"ocs.user", "", "HTTP Basic user OCS agents must send (their --user); empty for none", anyValue},
		{"ocs.password-file", "", "file holding the password OCS agents must send (their --password)", anyValue},
		{"ocs.require-client-cert", "false", "over HTTPS, require OCS agents to present a certificate from the zone CA", boolean},
		{"ocs.prolog-freq", "10", "hours between an OCS agent's contacts (PROLOG_FREQ)", positiveInt},
		{"ocs.inventory-hours", "24", "hours between the inventories asked of an OCS agent", positiveInt},
		{"cluster.advertise", "", "host:port where the zone's other servers reach this one; empty for server.address or the server's name, and server.port", anyValue},
		{"cluster.join", "", "zone server (https://host:port) a joined server asks to make it a member at its first start (set by JoinZone)", anyValue},
		{"cluster.heartbeat-timeout", "1s", "how long a server waits for the replication leader before it calls an election", duration},
		{"content.scrub-interval", "168h", "how often the zone server re-reads its stored packages and images to find damaged copies (and repair them from a peer); 0 never", duration},
		{"metrics.address", "", "host:port serving Prometheus metrics, /healthz and /readyz over plain HTTP (127.0.0.1:9443, say); empty for none", hostPortOrEmpty},
		{"cluster.bootstrap", "false", "start a new replication cluster of this server alone although the zone lists others (all lost their replication logs)", boolean},
	}
}

func anyValue(string) error { return nil }
func nonEmpty(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}
func port(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return nil
}
func portOrZero(s string) error {
	if s == "0" {
		return nil
	}
	return port(s)
}
func hostPortOrEmpty(s string) error {
	if s == "" {
		return nil
	}
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (127.0.0.1:9443, or :9443 for every address)", s)
	}
	return port(p)
}
func boolean(s string) error {
	if _, err := strconv.ParseBool(s); err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	return nil
}
func duration(s string) error {
	if _, err := time.ParseDuration(s); err != nil {
		return fmt.Errorf("%q is not a duration like 30s", s)
	}
	return nil
}
func oneOf(vals ...string) func(string) error {
	return func(s string) error {
		for _, v := range vals {
			if s == v {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(vals, ", "))
	}
}

// ParseAssignment splits and validates "name=value".
func ParseAssignment(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return "", "", errkind.New(errkind.Usage, "-D %q: want name=value", s)
	}
	value = strings.TrimSpace(value)
	for _, p := range Properties() {
		if p.Name == name {
			if err := p.check(value); err != nil {
				return "", "", errkind.New(errkind.Usage, "-D %s: %v", name, err)
			}
			return name, value, nil
		}
	}
	return "", "", errkind.New(errkind.Usage, "-D %s: unknown property (zconfigure -l lists them)", name)
}

func parseCIDRs(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			if ip := net.ParseIP(f); ip != nil && ip.To4() != nil {
				f += "/32"
			} else {
				f += "/128"
			}
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a network (want CIDR such as 10.0.0.0/8)", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func cidrList(s string) error {
	_, err := parseCIDRs(s)
	return err
}

func positiveInt(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("%q: want a whole number of at least 1", s)
	}
	return nil
}

func newViper() *viper.Viper {
	v := viper.New()
	for _, p := range Properties() {
		v.SetDefault(p.Name, p.Default)
	}
	return v
}

// LoadServer reads the home's configuration file; environment variables
// ZONEKIT_SERVER_PORT and the like override it.
func LoadServer(p Paths) (Server, error) {
	props, err := ReadProperties(p)
	if err != nil {
		return Server{}, err
	}
	v := newViper()
	v.SetEnvPrefix("ZONEKIT")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	m := make(map[string]any, len(props))
	for k, val := range props {
		m[k] = val
	}
	if err := v.MergeConfigMap(m); err != nil {
		return Server{}, fmt.Errorf("read %s: %w", p.ConfigFile(), err)
	}
	var s Server
	for _, prop := range Properties() {
		if err := prop.check(v.GetString(prop.Name)); err != nil && prop.Name != "server.id" {
			return Server{}, fmt.Errorf("%s: %s: %v", p.ConfigFile(), prop.Name, err)
		}
	}
	s.ServerID = v.GetString("server.id")
	s.Address = v.GetString("server.address")
	s.Port = v.GetInt("server.port")
	s.LogLevel = v.GetString("log.level")
	s.RegistrationRequiresKey = v.GetBool("registration.require-key")
	s.ShutdownTimeout = v.GetDuration("server.shutdown-timeout")
	s.ContentPort = v.GetInt("server.content-port")
	s.ScrubInterval = v.GetDuration("content.scrub-interval")
	s.OCS = OCS{Enabled: v.GetBool("ocs.enabled"), User: v.GetString("ocs.user"), PasswordFile: v.GetString("ocs.password-file"),
		RequireClientCert: v.GetBool("ocs.require-client-cert"), PrologFreq: v.GetInt("ocs.prolog-freq"), InventoryEvery: v.GetInt("ocs.inventory-hours")}
	s.OCS.Networks, _ = parseCIDRs(v.GetString("ocs.networks"))
	s.Cluster = Cluster{Advertise: v.GetString("cluster.advertise"), Join: v.GetString("cluster.join"),
		HeartbeatTimeout: v.GetDuration("cluster.heartbeat-timeout"), Bootstrap: v.GetBool("cluster.bootstrap")}
	s.MetricsAddress = v.GetString("metrics.address")
	if s.OCS.User != "" && s.OCS.PasswordFile == "" {
		return Server{}, fmt.Errorf("%s: ocs.user is set but ocs.password-file is not", p.ConfigFile())
	}
	return s, nil
}

// ReadProperties returns the explicitly set properties of the file, if any.
// The file is read here rather than by viper's dotenv codec, which refuses
// names with '-' such as registration.require-key.
func ReadProperties(p Paths) (map[string]string, error) {
	data, err := os.ReadFile(p.ConfigFile())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p.ConfigFile(), err)
	}
	return ParseProperties(p.ConfigFile(), data)
}

// CheckProperties checks every property a start reads: a known value for
// each, and a server.id. name is the file's name, for messages.
func CheckProperties(name string, props map[string]string) error {
	for _, prop := range Properties() {
		v, ok := props[prop.Name]
		if !ok {
			v = prop.Default
		}
		if err := prop.check(v); err != nil {
			return fmt.Errorf("%s: %s: %v", name, prop.Name, err)
		}
	}
	return nil
}

// ParseProperties reads a configuration file's content; file names it in
// messages.
func ParseProperties(file string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return nil, fmt.Errorf("%s:%d: want name=value", file, i+1)
		}
		out[name] = strings.TrimSpace(value)
	}
	return out, nil
}

// WriteProperties replaces the configuration file atomically, keys sorted
// so that the file diffs well.
func WriteProperties(p Paths, props map[string]string) error {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# zonekit zone server configuration; change with: zconfigure -D name=value\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, props[k])
	}
	return atomicfile.WriteFile(p.ConfigFile(), b.Bytes(), 0o644)
}

// SetProperties validates "name=value" assignments and writes them to the file.
func SetProperties(p Paths, assignments []string) error {
	props, err := ReadProperties(p)
	if err != nil {
		return err
	}
	for _, a := range assignments {
		name, value, err := ParseAssignment(a)
		if err != nil {
			return err
		}
		props[name] = value
	}
	return WriteProperties(p, props)
}
