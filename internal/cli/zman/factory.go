package zman

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/credstore"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/store"
	"zonekit/internal/ui"
	"zonekit/internal/zone"
)

// Global holds zman's global flags.
type Global struct {
	User     string
	Password string
	Host     string
	Port     int
	CACert   string
	Output   string
	Verbose  bool
	Debug    bool
	// AllowExpiredCA reaches a server whose zone CA has expired, to
	// remint it at once.
	AllowExpiredCA bool
	flags          *pflag.FlagSet
}

// AddFlags registers the global flags.
func (g *Global) AddFlags(fs *pflag.FlagSet) {
	g.flags = fs
	fs.StringVarP(&g.User, "User", "U", "", "administrator name (or ZMAN_USER)")
	fs.StringVarP(&g.Password, "Password", "P", "", "administrator password (or ZMAN_PASSWORD; prefer the variable, argv is visible to other users)")
	fs.StringVar(&g.Host, "host", "", "zone server host name or address, or several separated by commas to try in turn (or ZMAN_HOST; default localhost)")
	fs.IntVar(&g.Port, "port", 0, "zone server HTTPS port (or ZMAN_PORT; default the local zone's, else 443)")
	fs.StringVar(&g.CACert, "cacert", "", "zone CA certificate file (or ZMAN_CACERT; default the local zone's)")
	fs.StringVarP(&g.Output, "output", "o", "table", "output format: table or json")
	fs.BoolVarP(&g.Verbose, "verbose", "V", false, "say which server and credential are used")
	fs.BoolVar(&g.Debug, "debug", false, "trace API requests on stderr")
	fs.BoolVar(&g.AllowExpiredCA, "allow-expired-ca", false, "trust the server as of the last minute the zone CA was valid, once it has expired (to remint it at once)")
}

// Factory gives commands what they need: streams, a prompter, and an
// authenticated API client, all decided once here.
type Factory struct {
	IO       *ui.IOStreams
	Prompter ui.Prompter
	Global   *Global
	// CredentialDir overrides where stored credentials live (tests).
	CredentialDir string

	admin       string // who the client authenticates as, for per-administrator notices
	expiryNoted bool
	staleNoted  bool
	bases       []string // every server --host names, in the order to try
	localHome   string   // the zone home zman runs in, when --host was not given
}

// NewFactory returns a factory on the given streams.
func NewFactory(io *ui.IOStreams) *Factory {
	return &Factory{IO: io, Prompter: ui.NewPrompter(io), Global: &Global{}}
}

// Format returns the -o format.
func (f *Factory) Format() (ui.Format, error) { return ui.ParseFormat(f.Global.Output) }

// endpoint resolves the server address and CA: flags, then ZMAN_*
// variables (through viper), then the local zone home, then defaults.
func (f *Factory) endpoint() (string, []*x509.Certificate, error) {
	v := viper.New()
	v.SetEnvPrefix("ZMAN")
	for _, k := range []string{"host", "port", "cacert"} {
		v.BindEnv(k)
		if f.Global.flags != nil {
			v.BindPFlag(k, f.Global.flags.Lookup(k))
		}
	}
	home := config.Paths{Home: config.ResolveHome("")}
	v.SetDefault("host", "localhost")
	v.SetDefault("port", 443)
	if cfg, err := config.LoadServer(home); err == nil {
		v.SetDefault("port", cfg.Port)
	}
	if _, err := os.Stat(home.CACert()); err == nil {
		v.SetDefault("cacert", home.CACert())
	}
	host, port, caPath := v.GetString("host"), v.GetInt("port"), v.GetString("cacert")
	// On a zone server with no --host, the zone's other servers stand in
	// when this one is down (see reachable).
	f.localHome = ""
	hostGiven := os.Getenv("ZMAN_HOST") != ""
	if fl := f.Global.flags; fl != nil && fl.Lookup("host") != nil && fl.Lookup("host").Changed {
		hostGiven = true
	}
	if !hostGiven {
		if _, err := os.Stat(home.Store()); err == nil {
			f.localHome = home.Home
		}
	}
	if caPath == "" {
		return "", nil, errkind.New(errkind.Usage, "no zone CA certificate: pass --cacert FILE (or set ZMAN_CACERT); it is conf/zone-ca.pem in the zone server's home")
	}
	// The file may hold several CAs (the current and a future one, during
	// a change of CA): all are trusted.
	data, err := os.ReadFile(caPath)
	var cas []*x509.Certificate
	if err == nil {
		if cas, err = pki.ParseCertificates(data); err != nil {
			err = fmt.Errorf("zone CA certificate %s: %w", caPath, err)
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, errkind.New(errkind.Usage, "no zone CA certificate at %s: pass --cacert FILE (or set ZMAN_CACERT); it is conf/zone-ca.pem in the zone server's home", caPath)
	}
	if err != nil {
		return "", nil, errkind.Wrap(errkind.Usage, err)
	}
	if port < 1 || port > 65535 {
		return "", nil, errkind.New(errkind.Usage, "--port %d is not a port", port)
	}
	f.bases = nil
	for _, h := range strings.Split(host, ",") {
		if h = strings.TrimSpace(h); h != "" {
			f.bases = append(f.bases, "https://"+net.JoinHostPort(h, strconv.Itoa(port)))
		}
	}
	if len(f.bases) == 0 {
		return "", nil, errkind.New(errkind.Usage, "--host is empty")
	}
	return f.bases[0], cas, nil
}

// reachable returns the first of the servers --host names that accepts a
// connection, so that a command goes to a live server of the zone when
// the first one is down; on a zone server without --host, the zone's
// other servers when the local one is down. Only the connection is tried:
// a request is never sent twice.
func (f *Factory) reachable() string {
	if len(f.bases) == 1 && f.localHome == "" {
		return f.bases[0]
	}
	if len(f.bases) > 1 {
		if b, ok := f.firstAnswering(f.bases); ok {
			return b
		}
		return f.bases[0]
	}
	// One server, the local one: a failure is reported as before unless
	// the zone has other servers to try.
	if u, err := client.ParseServerURL(f.bases[0]); err == nil {
		if probe(u.Host) == nil {
			return f.bases[0]
		}
	}
	if others := localPeers(f.localHome); len(others) > 0 {
		fmt.Fprintf(f.IO.ErrOut, "zman: the zone server here does not answer; trying the zone's other servers\n")
		if b, ok := f.firstAnswering(others); ok {
			return b
		}
	}
	return f.bases[0]
}

// firstAnswering tries each server in turn and returns the first that
// completes a TLS handshake within probeWait. A server that accepts the
// connection but never completes the handshake (frozen, overloaded) is
// passed over: no request has been sent to it, so trying the next one is
// safe.
func (f *Factory) firstAnswering(bases []string) (string, bool) {
	for _, b := range bases {
		u, err := client.ParseServerURL(b)
		if err != nil {
			continue
		}
		if err := probe(u.Host); err != nil {
			fmt.Fprintf(f.IO.ErrOut, "zman: %s does not answer (%v)\n", u.Host, err)
			continue
		}
		return b, true
	}
	return "", false
}

// probeWait bounds the connection and TLS handshake of a probe.
const probeWait = 3 * time.Second

// probe connects to host and completes a TLS handshake. The certificate is
// not judged here (the request that follows does, with a clear message):
// only whether the server answers.
func probe(host string) error {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: probeWait}, Config: &tls.Config{InsecureSkipVerify: true}}
	ctx, cancel := context.WithTimeout(context.Background(), probeWait)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no TLS handshake within %s", probeWait)
		}
		return err
	}
	return conn.Close()
}

// localPeers lists the other servers of the zone at home, read from its
// store: possible only while its own zone server is down (it holds the
// store otherwise), which is exactly when they are needed.
func localPeers(home string) []string {
	p := config.Paths{Home: home}
	st, err := store.Open(p.Store(), store.Options{ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if err != nil {
		return nil
	}
	defer st.Close()
	cfg, _ := config.LoadServer(p)
	servers, err := zone.New(st, nil).Servers()
	if err != nil {
		return nil
	}
	var out []string
	for _, sv := range servers {
		if sv.ID == cfg.ServerID || sv.Address == "" {
			continue
		}
		out = append(out, "https://"+sv.Address)
	}
	return out
}

// Client returns a client authenticated as an administrator.
func (f *Factory) Client() (*client.Client, error) {
	base, cas, err := f.endpoint()
	if err != nil {
		return nil, err
	}
	// A stored credential is filed under the first server named; it is
	// valid on every server of the zone.
	auth, who, err := f.credentials(base, true)
	if err != nil {
		return nil, err
	}
	base = f.reachable()
	f.admin = strings.TrimSuffix(who, " (stored credential)")
	if f.Global.Verbose {
		fmt.Fprintf(f.IO.ErrOut, "zman: %s as %s (zone CA SHA-256 %s)\n", base, who, pki.Fingerprint(cas[0], "sha256"))
	}
	c, err := f.newClient(base, cas, auth)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (f *Factory) newClient(base string, cas []*x509.Certificate, auth func(*http.Request)) (*client.Client, error) {
	o := client.Options{BaseURL: base, CA: cas[0], MoreCAs: cas[1:], Auth: auth, Observe: f.watchExpiry(), AllowExpiredCA: f.Global.AllowExpiredCA}
	if f.Global.Debug {
		o.Trace = f.IO.ErrOut
	}
	return client.New(o)
}

// credentials picks flags, environment, a stored credential (if allowed),
// then a prompt; without a terminal a missing value is an error.
func (f *Factory) credentials(base string, allowStored bool) (func(*http.Request), string, error) {
	user := cmdutil.FlagOrEnv(f.Global.flags, "User", "ZMAN_USER")
	pass := cmdutil.FlagOrEnv(f.Global.flags, "Password", "ZMAN_PASSWORD")
	if user == "" && pass == "" && allowStored {
		if c, ok, err := credstore.New(f.CredentialDir).Get(base); err != nil {
			return nil, "", err
		} else if ok {
			return client.Bearer(c.Token), c.Admin + " (stored credential)", nil
		}
	}
	if user == "" {
		if !f.IO.CanPrompt() {
			return nil, "", ui.RequiredErrorHint("-U/--User (or ZMAN_USER)", "or store a credential with 'zman admin-store-credential'")
		}
		var err error
		if user, err = f.Prompter.Input("Administrator:", ""); err != nil {
			return nil, "", err
		}
	}
	if pass == "" {
		if !f.IO.CanPrompt() {
			return nil, "", ui.RequiredError("-P/--Password (or ZMAN_PASSWORD)")
		}
		var err error
		if pass, err = f.Prompter.Password("Password for " + user + ":"); err != nil {
			return nil, "", err
		}
	}
	return client.Basic(user, pass), user, nil
}

// done tells the outcome of a command that changes something: v as JSON
// with -o json (scripts read fields, never sentences), else the sentence.
func (f *Factory) done(v any, format string, args ...any) error {
	fm, err := f.Format()
	if err != nil {
		return err
	}
	if fm == ui.FormatJSON {
		return ui.JSON(f.IO.Out, v)
	}
	_, err = fmt.Fprintf(f.IO.Out, format, args...)
	return err
}

// print writes v as JSON, or the table made by rows.
func (f *Factory) print(v any, headers []string, rows func() [][]string) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(f.IO.Out, v)
	}
	return ui.Table(f.IO.Out, headers, rows())
}

// withClient runs fn with an authenticated client and closes it afterwards.
func (f *Factory) withClient(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

func decodeJSON(r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("malformed answer from the zone server: %w", err)
	}
	return nil
}
