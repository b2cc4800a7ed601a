package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"zonekit/internal/atomicfile"
)

// The four services, by their command-line names.
const (
	Imaging   = "pbserv"
	ProxyDHCP = "proxydhcp"
	TFTP      = "tftp"
	Policy    = "zmgprebootpolicy"
)

// Services lists the services in the order status prints them.
func Services() []string { return []string{Imaging, ProxyDHCP, TFTP, Policy} }

// Default ports of the services whose port the reference does not fix.
const (
	DefaultPolicyPort  = 8069
	DefaultImagingPort = 8070
)

// Layout is where the preboot services keep their files under a zonekit
// home.
type Layout struct{ Home string }

func (l Layout) Dir() string     { return filepath.Join(l.Home, "conf", "preboot") }
func (l Layout) LogDir() string  { return filepath.Join(l.Home, "logs", "preboot") }
func (l Layout) RunDir() string  { return filepath.Join(l.Home, "data", "preboot") }
func (l Layout) Images() string  { return filepath.Join(l.Home, "data", "images") }
func (l Layout) MenuDir() string { return filepath.Join(l.Dir(), "menus") }

// File is a service's configuration file.
func (l Layout) File(service string) string { return filepath.Join(l.Dir(), service+".conf") }

// Log is a service's default log file.
func (l Layout) Log(service string) string { return filepath.Join(l.LogDir(), service+".log") }

// PidFile is written by a running service.
func (l Layout) PidFile(service string) string { return filepath.Join(l.RunDir(), service+".pid") }

// TokenKeyFile is the imaging service's key for task tokens (private).
func (l Layout) TokenKeyFile() string { return filepath.Join(l.RunDir(), "imaging-token.key") }

// StatsFile holds the imaging service's statistics since it started.
func (l Layout) StatsFile() string { return filepath.Join(l.RunDir(), "pbserv.stats.json") }

func logLevelHelp(levels []string) []string {
	return append([]string{"Which events are logged: a message is written when its priority is at", "most this level. A high level on a busy server fills the log quickly."}, levels...)
}

func levels04() []string {
	return []string{
		"  0 critical: service start, stop and critical events",
		"  1 warning: also warnings and failed client transactions",
		"  2 transaction: also every completed client transaction",
		"  3 request: also every client request with its options, and why one was ignored",
		"  4 debugging: also every packet received, decoded",
	}
}

const sizeHelp = "Past this size in MB the log file is deleted and restarted."

// Spec returns the specification of a service's configuration file, its
// defaults resolved against the layout.
func (l Layout) Spec(service string) (*Spec, error) {
	spec, err := l.spec(service)
	if err != nil {
		return nil, err
	}
	spec.Params = append(spec.Params, Param{Name: "MetricsAddress", Kind: Listen, Commented: true, Help: []string{
		"zonekit: address:port serving Prometheus metrics, /healthz and /readyz",
		"over plain HTTP (each service its own, such as 127.0.0.1:9102). Empty: none.",
		"Read at start only."}})
	return spec, nil
}

func (l Layout) spec(service string) (*Spec, error) {
	switch service {
	case Imaging:
		return &Spec{Service: Imaging, Title: "zonekit imaging service (pbserv) configuration", Params: []Param{
			{Name: "EnableLogging", Default: "YES", Kind: YesNo, Help: []string{"YES writes a log of every request (source, type, time, result); NO writes none.", "Log file: " + l.Log(Imaging)}},
			{Name: "IPAddress", Kind: IP, Commented: true, Help: []string{"The address imaging uses for all communication (a cluster's virtual", "address, or one NIC of several). Empty: listen on every address."}},
			{Name: "LIBRARY_NAME", Kind: Path, Commented: true, Help: []string{"The imaging library to load. zonekit's imaging is built in; a value", "here is logged as ignored."}},
			{Name: "PrebootServiceLogFileSize", Default: "15", Kind: Int, Min: 1, Max: 4096, Help: []string{sizeHelp}},
			{Name: "ImagingPort", Default: fmt.Sprint(DefaultImagingPort), Kind: Int, Min: 1, Max: 65535, Help: []string{"zonekit: the TCP port of the imaging service (image upload and download)."}},
			{Name: "ImageDirectory", Default: l.Images(), Kind: Path, Help: []string{"zonekit: where images are stored."}},
			{Name: "MaxImageSize", Default: "1024", Kind: Int, Min: 1, Max: 1 << 20, Commented: true, Help: []string{"zonekit: the largest image accepted, in GiB. An upload is refused too when", "it would not fit in ImageDirectory's free space."}},
		}}, nil
	case ProxyDHCP:
		return &Spec{Service: ProxyDHCP, Title: "zonekit proxy DHCP service configuration (RFC 2131, RFC 2132, PXE 2.1)", Params: []Param{
			{Name: "LocalDHCPFlag", Default: "0", Kind: Int, Min: 0, Max: 1, Help: []string{"1 when the subnet's DHCP server runs on this server: the proxy then leaves", "port 67 to it (which must send option 60 \"PXEClient\") and answers on 4011 only."}},
			{Name: "LocalInterface", Kind: IP, Commented: true, Help: []string{"The address the proxy uses, for servers with several interfaces.", "Empty: every interface, answering from the one a request came in on."}},
			{Name: "NovellPolicyEngine", Kind: HostPort, Commented: true, Help: []string{"Where the preboot policy service runs (address[:port], default port " + fmt.Sprint(DefaultPolicyPort) + ").", "Empty: this server. iPXE clients are sent its boot script."}},
			{Name: "NBPx86", Default: "undionly.kpxe", Help: []string{"The boot file offered to x86 BIOS clients (option 93 = 0)."}},
			{Name: "NBPx64", Default: "ipxe.efi", Help: []string{"zonekit: the boot file offered to x86-64 UEFI clients (option 93 = 7 or 9)."}},
			{Name: "NBParm64", Default: "ipxe-arm64.efi", Help: []string{"zonekit: the boot file offered to ARM64 UEFI clients (option 93 = 11, or 19", "for UEFI HTTP boot)."}},
			{Name: "TFTPServer", Kind: IP, Commented: true, Help: []string{"zonekit: the TFTP server clients load boot files from. Empty: this server."}},
			{Name: "MenuTimeout", Default: "2", Kind: Int, Min: 0, Max: 255, Help: []string{"Seconds the F8 boot menu waits before choosing its first entry (this", "server and its boot file). 0 shows no menu."}},
			{Name: "ProxyLogLevel", Default: "2", Kind: Int, Min: 0, Max: 4, Help: logLevelHelp(levels04())},
			{Name: "ProxyLogFile", Default: l.Log(ProxyDHCP), Kind: Path, Commented: true, Help: []string{"The log file."}},
			{Name: "ProxyLogFileSize", Default: "15", Kind: Int, Min: 1, Max: 4096, Help: []string{sizeHelp}},
			{Name: "ProxyDHCPPort", Default: "67", Kind: Int, Min: 1, Max: 65535, Commented: true, Help: []string{"zonekit: the DHCP port (tests move it)."}},
			{Name: "ProxyPXEPort", Default: "4011", Kind: Int, Min: 1, Max: 65535, Commented: true, Help: []string{"zonekit: the PXE boot server port."}},
		}}, nil
	case TFTP:
		return &Spec{Service: TFTP, Title: "zonekit TFTP service configuration (RFC 1350, 2347, 2348, 2349, 7440)", Params: []Param{
			{Name: "TFTPInterface", Kind: IP, Commented: true, Help: []string{"The address for all TFTP communication, for servers with several", "interfaces. Empty: every address, each transfer answering from the", "address its request came to."}},
			{Name: "TransferBlockSize", Default: "1428", Kind: Int, Min: 512, Max: 4428, Commented: true, Help: []string{"The largest data block sent or accepted (RFC 2348), 512 to 4428; 1428", "for Ethernet. Clients that ask for nothing get 512."}},
			{Name: "TimeoutInterval", Default: "1", Kind: Int, Min: 1, Max: 60, Commented: true, Help: []string{"Seconds to wait for an acknowledgement before resending, 1 to 60: the", "start value of an adaptive timeout. A client may ask for another (RFC 2349)."}},
			{Name: "TFTPDirectory", Default: "/srv/tftp", Kind: Path, Commented: true, Help: []string{"The only directory clients can read from or write to; every path is", "relative to it, and nothing outside it (.., symbolic links) is reachable.", "The service does not start if it does not exist."}},
			{Name: "TFTPAllowWrites", Default: "0", Kind: Int, Min: 0, Max: 1, Help: []string{"1 lets clients place new files in TFTPDirectory."}},
			{Name: "TFTPAllowOverwrites", Default: "0", Kind: Int, Min: 0, Max: 1, Help: []string{"1 lets clients overwrite existing files (needs TFTPAllowWrites = 1)."}},
			{Name: "TFTPLogLevel", Default: "2", Kind: Int, Min: 0, Max: 4, Commented: true, Help: logLevelHelp(levels04())},
			{Name: "TFTPLogFile", Default: l.Log(TFTP), Kind: Path, Commented: true, Help: []string{"The log file."}},
			{Name: "TFTPLogFileSize", Default: "15", Kind: Int, Min: 1, Max: 4096, Commented: true, Help: []string{sizeHelp}},
			{Name: "TFTPPort", Default: "69", Kind: Int, Min: 1, Max: 65535, Commented: true, Help: []string{"zonekit: the UDP port of the service."}},
			{Name: "TFTPMaxTransfers", Default: "256", Kind: Int, Min: 1, Max: 10000, Commented: true, Help: []string{"zonekit: transfers served at once; further requests are told to retry later."}},
			{Name: "TFTPMaxClientTransfers", Default: "8", Kind: Int, Min: 1, Max: 10000, Commented: true, Help: []string{"zonekit: transfers one client address may have at once, so that a", "misbehaving client cannot take every slot."}},
			{Name: "TFTPClientSilence", Default: "15", Kind: Int, Min: 1, Max: 600, Commented: true, Help: []string{"zonekit: seconds a transfer waits for a client that stopped answering", "before it gives up and frees its slot."}},
			{Name: "TFTPMaxWindowSize", Default: "64", Kind: Int, Min: 1, Max: 1024, Commented: true, Help: []string{"zonekit: the largest window (RFC 7440) granted to a client."}},
		}}, nil
	case Policy:
		return &Spec{Service: Policy, Title: "zonekit preboot policy service configuration", Params: []Param{
			{Name: "LocalInterface", Kind: IP, Commented: true, Help: []string{"The address the policy service uses, for servers with several interfaces."}},
			{Name: "PolicyLogLevel", Default: "2", Kind: Int, Min: 0, Max: 4, Help: logLevelHelp([]string{
				"  0 nothing is logged",
				"  1 critical: service start, stop and errors",
				"  2 normal: also every completed client request",
				"  3 debug: also what helps troubleshooting",
				"  4 complete: everything; not for normal operation"})},
			{Name: "PolicyLogFile", Default: l.Log(Policy), Kind: Path, Commented: true, Help: []string{"The log file."}},
			{Name: "PolicyLogFileSize", Default: "15", Kind: Int, Min: 1, Max: 4096, Help: []string{sizeHelp}},
			{Name: "PrebootServer", Kind: HostPort, Commented: true, Help: []string{"The imaging server (address[:port]) that resolves policies.", "Empty: this server."}},
			{Name: "EnableAMTSupport", Default: "No", Kind: YesNo, Commented: true, Help: []string{"Intel AMT support; not supported (a YES is logged as ignored)."}},
			{Name: "PolicyPort", Default: fmt.Sprint(DefaultPolicyPort), Kind: Int, Min: 1, Max: 65535, Help: []string{"zonekit: the HTTP port iPXE clients fetch their boot script from."}},
		}}, nil
	}
	return nil, fmt.Errorf("unknown preboot service %q (want one of pbserv, proxydhcp, tftp, zmgprebootpolicy)", service)
}

// Load reads a service's configuration file; a missing file means every
// default.
func (l Layout) Load(service string) (*Values, error) {
	spec, err := l.Spec(service)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(l.File(service))
	if errors.Is(err, os.ErrNotExist) {
		return spec.Defaults(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", l.File(service), err)
	}
	v, err := spec.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.File(service), err)
	}
	return v, nil
}

// WriteDefault writes a service's configuration file with every default
// unless one exists; it reports whether it wrote one.
func (l Layout) WriteDefault(service string) (bool, error) {
	spec, err := l.Spec(service)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(l.File(service)); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(l.Dir(), 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", l.Dir(), err)
	}
	return true, atomicfile.WriteFile(l.File(service), spec.Render(), 0o644)
}
