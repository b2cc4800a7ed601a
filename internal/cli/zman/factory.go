package zman

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"zonekit/internal/atomicfile"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/cli/settings"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/credstore"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/serverfiles"
	"zonekit/internal/ui"
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
	// PasswordFrom is the administrator password's file, variable or
	// command (--password-file, --password-env, --password-command).
	PasswordFrom cmdutil.PasswordFlags
	// Context names the saved context to use (--context, ZMAN_CONTEXT,
	// else the one context-use chose).
	Context string
	flags   *pflag.FlagSet
}

// AddFlags registers the global flags.
func (g *Global) AddFlags(fs *pflag.FlagSet) {
	g.flags = fs
	fs.StringVarP(&g.User, "User", "U", "", "administrator name (or ZMAN_USER)")
	fs.StringVarP(&g.Password, "Password", "P", "", "administrator password (or ZMAN_PASSWORD; prefer --password-file or the variable, argv is visible to other users)")
	g.PasswordFrom.AddFlags(fs, "")
	fs.StringVar(&g.Context, "context", "", "use the saved context NAME (or ZMAN_CONTEXT; default the one context-use chose)")
	fs.StringVar(&g.Host, "host", "", "zone server host name or address, or several separated by commas to try in turn (or ZMAN_HOST; default localhost)")
	fs.IntVar(&g.Port, "port", 0, "zone server HTTPS port (or ZMAN_PORT; default the local zone's, else 443)")
	fs.StringVar(&g.CACert, "cacert", "", "zone CA certificate file (or ZMAN_CACERT; default the local zone's)")
	fs.StringVarP(&g.Output, "output", "o", "table", "output format: table or json (piped, listings are tab-separated rows without headers)")
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

	running     *cobra.Command // the command being run, for flagHint
	admin       string         // who the client authenticates as, for per-administrator notices
	expiryNoted bool
	staleNoted  bool
}

// NewFactory returns a factory on the given streams.
func NewFactory(io *ui.IOStreams) *Factory {
	return &Factory{IO: io, Prompter: ui.NewPrompter(io), Global: &Global{}}
}

// Format returns the -o format.
func (f *Factory) Format() (ui.Format, error) { return ui.ParseFormat(f.Global.Output) }

// target is where zman's requests go, resolved once per command by
// resolve: the servers to try in order, the zone CA, and where the
// address came from (for the message when none answers).
type target struct {
	bases []string            // https://host:port of every server to try, in order
	cas   []*x509.Certificate // the zone CA (and a future one during a change)
	// localHome is the zone home zman runs in when no server was named:
	// its other servers stand in when the local one is down.
	localHome string
	// serverName is the name the local server's certificate is verified
	// as, when its configured listen address is not among its names.
	serverName string
	source     string // "--host", "ZMAN_HOST", "server.address of the zone in HOME", "the default"
}

// settings binds zman's global settings (flags, then ZMAN_* variables)
// in one viper instance: the one place they are read.
func (f *Factory) settings() *viper.Viper {
	return settings.Bind(f.Global.flags, "ZMAN", map[string]string{
		"host": "host", "port": "port", "cacert": "cacert", "user": "User", "password": "Password", "context": "context"})
}

// activeContext returns the saved context in use and its name, if any:
// --context, else ZMAN_CONTEXT, else the current one of the contexts file.
func (f *Factory) activeContext() (string, *credstore.Context, error) {
	name := f.settings().GetString("context")
	all, err := credstore.LoadContexts(f.CredentialDir)
	if err != nil {
		return "", nil, err
	}
	if name == "" {
		name = all.Current
	}
	if name == "" {
		return "", nil, nil
	}
	c, err := all.Get(name)
	if err != nil {
		return "", nil, err
	}
	return name, &c, nil
}

// withContext lays a saved context's values under v's flags and
// variables: they beat the local zone home and the defaults only.
func withContext(v *viper.Viper, c *credstore.Context) {
	if c == nil {
		return
	}
	for k, val := range map[string]string{"host": c.Host, "cacert": c.CACert, "user": c.User} {
		if val != "" {
			v.SetDefault(k, val)
		}
	}
	if c.Port != 0 {
		v.SetDefault("port", c.Port)
	}
}

// hostSource says where an explicitly named server came from, or "" when
// none was named.
func (f *Factory) hostSource() string {
	if fl := f.Global.flags; fl != nil && fl.Lookup("host") != nil && fl.Lookup("host").Changed {
		return "--host"
	}
	if os.Getenv("ZMAN_HOST") != "" {
		return "ZMAN_HOST"
	}
	return ""
}

// resolve finds the server address and CA: flags, then ZMAN_* variables,
// then the local zone home (its configured listen address and port),
// then defaults.
func (f *Factory) resolve() (*target, error) {
	v := f.settings()
	home := config.Paths{Home: config.ResolveHome("")}
	t := &target{source: f.hostSource()}
	ctxName, saved, err := f.activeContext()
	if err != nil {
		return nil, err
	}
	v.SetDefault("host", "localhost")
	v.SetDefault("port", 443)
	var cfg config.Server
	haveZone := false
	if c, err := config.LoadServer(home); err == nil {
		cfg, haveZone = c, true
		v.SetDefault("port", cfg.Port)
	}
	if _, err := os.Stat(home.CACert()); err == nil {
		v.SetDefault("cacert", home.CACert())
	}
	withContext(v, saved)
	if t.source == "" && saved != nil && saved.Host != "" {
		t.source = "context " + ctxName
	}
	host, port, caPath := v.GetString("host"), v.GetInt("port"), v.GetString("cacert")
	if t.source == "" {
		t.source = "the default"
		if haveZone {
			t.source = "the zone in " + home.Home
			// The local server listens where its configuration says; a
			// wildcard address is reached at localhost.
			if a := cfg.Address; a != "" && !isWildcard(a) {
				host = a
				t.source = "server.address of the zone in " + home.Home
				t.serverName = localServerName(home, a)
			}
		}
		// On a zone server with no server named, the zone's other
		// servers stand in when this one is down (see pick).
		if _, err := os.Stat(home.Store()); err == nil {
			t.localHome = home.Home
		}
	}
	if caPath == "" {
		return nil, errkind.New(errkind.Usage, "no zone CA certificate: pass --cacert FILE (or set ZMAN_CACERT); it is conf/zone-ca.pem in the zone server's home")
	}
	// The file may hold several CAs (the current and a future one, during
	// a change of CA): all are trusted.
	data, err := os.ReadFile(caPath)
	if err == nil {
		if t.cas, err = pki.ParseCertificates(data); err != nil {
			err = fmt.Errorf("zone CA certificate %s: %w", caPath, err)
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, errkind.New(errkind.Usage, "no zone CA certificate at %s: pass --cacert FILE (or set ZMAN_CACERT); it is conf/zone-ca.pem in the zone server's home", caPath)
	}
	if err != nil {
		return nil, errkind.Wrap(errkind.Usage, err)
	}
	if port < 1 || port > 65535 {
		return nil, errkind.New(errkind.Usage, "--port %d is not a port", port)
	}
	for _, h := range strings.Split(host, ",") {
		if h = strings.TrimSpace(h); h != "" {
			t.bases = append(t.bases, "https://"+net.JoinHostPort(h, strconv.Itoa(port)))
		}
	}
	if len(t.bases) == 0 {
		return nil, errkind.New(errkind.Usage, "--host is empty")
	}
	return t, nil
}

func isWildcard(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsUnspecified()
}

// localServerName is the name to verify the local server's certificate
// as when addr (its listen address) is not one of the certificate's
// names: its first DNS name. "" keeps addr.
func localServerName(home config.Paths, addr string) string {
	data, err := os.ReadFile(home.ServerCert())
	if err != nil {
		return ""
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil || len(certs) == 0 || certs[0].VerifyHostname(addr) == nil || len(certs[0].DNSNames) == 0 {
		return ""
	}
	return certs[0].DNSNames[0]
}

// reachHint is what an "cannot reach" error adds: what was tried, from
// where, and how to point zman at another server.
func (t *target) reachHint() string {
	var hosts []string
	for _, b := range t.bases {
		hosts = append(hosts, strings.TrimPrefix(b, "https://"))
	}
	return fmt.Sprintf("tried %s (from %s); name another server with --host HOST --port PORT (or ZMAN_HOST, ZMAN_PORT)", strings.Join(hosts, ", "), t.source)
}

// pick returns the first of the servers t names that accepts a
// connection, so that a command goes to a live server of the zone when
// the first one is down; on a zone server without --host, the zone's
// other servers when the local one is down. Only the connection is tried:
// a request is never sent twice.
func (f *Factory) pick(t *target) string {
	if len(t.bases) == 1 && t.localHome == "" {
		return t.bases[0]
	}
	if len(t.bases) > 1 {
		if b, ok := f.firstAnswering(t.bases); ok {
			return b
		}
		return t.bases[0]
	}
	// One server, the local one: a failure is reported as before unless
	// the zone has other servers to try.
	if u, err := client.ParseServerURL(t.bases[0]); err == nil {
		if probe(u.Host) == nil {
			return t.bases[0]
		}
	}
	if others := localPeers(t.localHome); len(others) > 0 {
		fmt.Fprintf(f.IO.ErrOut, "zman: the zone server here does not answer; trying the zone's other servers\n")
		if b, ok := f.firstAnswering(others); ok {
			t.serverName = "" // another server, verified by its own name
			return b
		}
	}
	return t.bases[0]
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

// localPeers lists the other servers of the zone at home, as its zone
// server last wrote them (serverfiles.WritePeers): they are needed while
// it is down.
func localPeers(home string) []string {
	addrs, err := serverfiles.ReadPeers(config.Paths{Home: home}.PeersFile())
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		out = append(out, "https://"+a)
	}
	return out
}

// Client returns a client authenticated as an administrator.
func (f *Factory) Client() (*client.Client, error) {
	t, err := f.resolve()
	if err != nil {
		return nil, err
	}
	// A stored credential is filed under the first server named; it is
	// valid on every server of the zone.
	auth, who, err := f.credentials(t.bases[0], true)
	if err != nil {
		return nil, err
	}
	base := f.pick(t)
	f.admin = strings.TrimSuffix(who, " (stored credential)")
	if f.Global.Verbose {
		fmt.Fprintf(f.IO.ErrOut, "zman: %s as %s (zone CA SHA-256 %s)\n", base, who, pki.Fingerprint(t.cas[0], "sha256"))
	}
	return f.newClient(t, base, auth)
}

func (f *Factory) newClient(t *target, base string, auth func(*http.Request)) (*client.Client, error) {
	o := client.Options{BaseURL: base, CA: t.cas[0], MoreCAs: t.cas[1:], Auth: auth, Observe: f.watchExpiry(),
		AllowExpiredCA: f.Global.AllowExpiredCA, ServerName: t.serverName, ReachHint: t.reachHint()}
	if f.Global.Debug {
		o.Trace = f.IO.ErrOut
	}
	return client.New(o)
}

// credentials picks flags, environment, a stored credential (if allowed),
// then a prompt; without a terminal a missing value is an error.
func (f *Factory) credentials(base string, allowStored bool) (func(*http.Request), string, error) {
	v := f.settings()
	_, saved, err := f.activeContext()
	if err != nil {
		return nil, "", err
	}
	withContext(v, saved)
	user, pass := v.GetString("user"), v.GetString("password")
	// A password source flag beats ZMAN_PASSWORD; beside -P it is a mistake.
	from := f.Global.PasswordFrom
	if from.Given() {
		if fl := f.Global.flags; fl != nil && fl.Changed("Password") {
			return nil, "", errkind.New(errkind.Usage, "give the password one way only: -P/--Password or %s", from.Names())
		}
		pass = ""
	} else if pass == "" && saved != nil {
		// The context's password source, below flags and ZMAN_PASSWORD.
		from.File, from.Command = saved.PasswordFile, saved.PasswordCommand
	}
	if pass == "" && !from.Given() && allowStored {
		if c, ok, err := credstore.New(f.CredentialDir).Get(base); err != nil {
			return nil, "", err
		} else if ok && (user == "" || user == c.Admin) {
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
		var err error
		pass, err = from.Read(context.Background(), f.IO, f.Prompter, "Password for "+user+":", "",
			"the password (--password-file, --password-env, --password-command, or -P/ZMAN_PASSWORD)", false)
		if err != nil {
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

// print writes v as JSON, or the listing made by rows (a table on a
// terminal, tab-separated fields when piped).
func (f *Factory) print(v any, headers []string, rows func() [][]string) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(f.IO.Out, v)
	}
	return ui.Listing(f.IO.Out, f.IO.OutTTY, headers, rows())
}

// printReport writes v as JSON, or the table made by rows, padded even
// when piped: for reports that mix sentences and a table.
func printReport(f *Factory, format ui.Format, v any, headers []string, rows func() [][]string) error {
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
	return f.flagHint(fn(ctx, c))
}

// flagHint adds to a zone server's refusal the flags of the running
// command that set the request fields it names: the server speaks of
// content_url or the prefetch interval, API clients other than zman having
// no flags; zman adds "(--content-url)".
func (f *Factory) flagHint(err error) error {
	var se *client.StatusError
	if err == nil || f.running == nil || !errors.As(err, &se) {
		return err
	}
	msg := strings.ToLower(se.Message)
	var hints []string
	f.running.Flags().VisitAll(func(fl *pflag.Flag) {
		if !strings.Contains(fl.Name, "-") {
			return // one word (os, group, name) would match ordinary prose
		}
		if strings.Contains(msg, strings.ReplaceAll(fl.Name, "-", "_")) || strings.Contains(msg, strings.ReplaceAll(fl.Name, "-", " ")) {
			hints = append(hints, "--"+fl.Name)
		}
	})
	if len(hints) == 0 {
		return err
	}
	return &hinted{err: err, hint: strings.Join(hints, ", ")}
}

// hinted is an error with zman's flag hint after it; kind and status
// stay those of err.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + " (zman: " + h.hint + ")" }
func (h *hinted) Unwrap() error { return h.err }

// refuseOverwrite fails, before any work, when path exists and --force
// was not given: a backup or an exported CA is never replaced by mistake.
func refuseOverwrite(path string, force bool) error {
	if force {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return existsError(path)
	}
	return nil
}

func existsError(path string) error {
	return errkind.New(errkind.Exists, "%s already exists: give --force to replace it", path)
}

// commitOnce puts out at its path, replacing an existing file only with
// force; a file that appeared meanwhile is kept and reported.
func commitOnce(out *atomicfile.File, path string, force bool) error {
	if force {
		return out.Commit()
	}
	err := out.CommitNew()
	if errors.Is(err, fs.ErrExist) {
		return existsError(path)
	}
	return err
}

// confirmDelete asks before deleting what on a terminal; without one, or
// in a script, --yes says it. Nothing ever waits on stdin that is not a
// terminal.
func (f *Factory) confirmDelete(yes bool, what string) error {
	if yes {
		return nil
	}
	if !f.IO.CanPrompt() {
		return ui.RequiredError("--yes (to delete " + what + ")")
	}
	ok, err := f.Prompter.Confirm("Delete "+what+"?", false)
	if err != nil {
		return err
	}
	if !ok {
		return errkind.New(errkind.Cancelled, "nothing deleted")
	}
	return nil
}

// addYes registers --yes on a command that deletes.
func addYes(cmd *cobra.Command, yes *bool) {
	cmd.Flags().BoolVarP(yes, "yes", "y", false, "delete without asking (required when not running interactively)")
}

func decodeJSON(r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("malformed answer from the zone server: %w", err)
	}
	return nil
}
