package zconfigure

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/agentpack"
	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/store"
	"zonekit/internal/ui"
	"zonekit/internal/version"
	"zonekit/internal/zone"
)

// PackOptions are the inputs both pack actions share.
type PackOptions struct {
	*Options
	ZacDir    string
	BuildFrom string
	Platforms []string
	Servers   []string
}

func (o *PackOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.ZacDir, "zac-dir", "", "directory of prebuilt zac binaries named zac-OS-ARCH[.exe] (make agents)")
	f.StringVar(&o.BuildFrom, "build-from", "", "zonekit source `DIR` to cross-build zac from with the Go toolchain")
	f.StringArrayVar(&o.Platforms, "platform", nil, "build for `OS/ARCH` only (repeatable; default linux/amd64, linux/arm64, windows/amd64)")
	f.StringArrayVar(&o.Servers, "server", nil, "zone server `URL` for the packs, https://HOST:PORT (repeatable; default the zone's servers)")
}

const packsHelp = `Where zac comes from: with --build-from SOURCE, zac is cross-built
from the zonekit source tree with the Go toolchain (CGO_ENABLED=0, one
build per platform, cached under data/agent-packs/.build). Otherwise
zac-OS-ARCH (zac-windows-amd64.exe) is taken from --zac-dir, else from
the agents/ directory beside zconfigure ('make agents' writes bin/agents/);
for this server's own platform the zac beside zconfigure or on $PATH does.

The packs go to data/agent-packs/ with SHA256SUMS and manifest.json, and
the zone server offers them at https://SERVER:PORT/zenworks-setup. On a
Linux device, as root, in a login script or by hand:

  sh zonekit-agent-linux-amd64.sh -q
  dpkg -i zonekit-agent_VERSION_amd64.deb

Both install zac, place the zone CA as the agent's cacert.pem, register the
device when it is not registered and enable the zonekit-agent service; a
second run does nothing and exits 0. Windows: unzip and run install.cmd.`

func newCreatePacks(opts *Options, runF func(*PackOptions) error) *cobra.Command {
	o := &PackOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "CreateExtractorPacks",
		Short: "Build the default agent install packs (zac, zone CA, server list) for every platform",
		Long: `Build the default agent install packs: per platform an installer that
carries zac, the zone CA certificate (conf/zone-ca.pem) and the zone's
server list. Linux (amd64, arm64) gets a self-contained shell installer
and a .deb, Windows (amd64) a zip with install.cmd. Run it again after a
change of the zone CA or of the servers; custom packs are rebuilt with
'zconfigure -c RebuildCustomPacks'.

` + packsHelp,
		Example: `  zconfigure -c CreateExtractorPacks -Z
  zconfigure -c CreateExtractorPacks --zac-dir /srv/zonekit/agents
  zconfigure -c CreateExtractorPacks --build-from ~/src/zonekit --platform linux/arm64`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return createPacksRun(o)
		},
	}
	o.flags(cmd)
	return cmd
}

func createPacksRun(o *PackOptions) error {
	p := o.Paths()
	spec, err := o.spec(p, agentpack.Custom{})
	if err != nil {
		return err
	}
	m, err := agentpack.Build(agentpack.DefaultDir(p), spec)
	if err != nil {
		return err
	}
	return o.report(p, m, "/zenworks-setup/")
}

// RebuildOptions are the RebuildCustomPacks action's inputs.
type RebuildOptions struct {
	PackOptions
	Name     string
	Key      string
	Interval time.Duration
	Delete   string
}

func newRebuildPacks(opts *Options, runF func(*RebuildOptions) error) *cobra.Command {
	o := &RebuildOptions{PackOptions: PackOptions{Options: opts}}
	cmd := &cobra.Command{
		Use:   "RebuildCustomPacks",
		Short: "Define a custom agent pack (registration key, servers, agent interval) or rebuild them all",
		Long: `Custom packs carry options the administrator set: a registration key
(which also puts the device in the key's group, see 'zman
registration-key-create -g'), their own server list, the agent's refresh
interval, their platforms. The definitions live in conf/agent-packs.json.

  --name NAME [--key KEY] [--interval D] [--server URL] [--platform P]
      define pack NAME (or change its options) and build it
  (no --name)
      rebuild every defined pack, e.g. after a change of the zone CA
  --delete NAME
      remove pack NAME and its files

` + packsHelp,
		Example: `  zconfigure -c RebuildCustomPacks --name branch --key branch-office --interval 5m
  zconfigure -c RebuildCustomPacks -Z`,
		Annotations: map[string]string{actionAnnotation: "yes"},
		Args:        cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return rebuildPacksRun(o, cmd.Flags().Changed("interval"))
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "custom pack `NAME` to define or change, and build")
	f.StringVarP(&o.Key, "key", "k", "", "registration key the pack registers devices with")
	f.DurationVar(&o.Interval, "interval", 0, "the agent service's refresh interval (default 10m)")
	f.StringVar(&o.Delete, "delete", "", "remove the custom pack `NAME`")
	return cmd
}

func rebuildPacksRun(o *RebuildOptions, intervalSet bool) error {
	p := o.Paths()
	if err := p.CheckZone(); err != nil {
		return err
	}
	list, err := agentpack.LoadCustom(p)
	if err != nil {
		return err
	}
	find := func(name string) int {
		for i, c := range list {
			if c.Name == name {
				return i
			}
		}
		return -1
	}
	if o.Delete != "" {
		i := find(o.Delete)
		if i < 0 {
			return errkind.New(errkind.NotFound, "no custom pack %q", o.Delete)
		}
		list = append(list[:i], list[i+1:]...)
		if err := agentpack.SaveCustom(p, list); err != nil {
			return err
		}
		if err := agentpack.Remove(agentpack.CustomDir(p, o.Delete)); err != nil {
			return err
		}
		fmt.Fprintf(o.IO.Out, "Removed custom pack %s.\n", o.Delete)
		return nil
	}
	todo := list
	if o.Name != "" {
		if !agentpack.ValidName(o.Name) {
			return errkind.New(errkind.Usage, "--name %q: use letters, digits, '-', '_' and '.'", o.Name)
		}
		i := find(o.Name)
		if i < 0 {
			list = append(list, agentpack.Custom{Name: o.Name})
			i = len(list) - 1
		}
		c := &list[i]
		if o.Key != "" {
			c.RegKey = o.Key
		}
		if intervalSet {
			if o.Interval <= 0 {
				return errkind.New(errkind.Usage, "--interval must be positive")
			}
			c.Interval = o.Interval.String()
		}
		if len(o.Servers) > 0 {
			c.Servers = o.Servers
		}
		if len(o.Platforms) > 0 {
			c.Platforms = o.Platforms
		}
		todo = []agentpack.Custom{*c}
	} else if o.Key != "" || intervalSet {
		return errkind.New(errkind.Usage, "--key and --interval need --name NAME (the pack they belong to)")
	}
	if len(todo) == 0 {
		fmt.Fprintln(o.IO.Out, "No custom packs are defined; define one with --name NAME [--key KEY].")
		return nil
	}
	for _, c := range todo {
		po := o.PackOptions
		if len(c.Platforms) > 0 && o.Name == "" {
			po.Platforms = c.Platforms
		}
		if len(c.Servers) > 0 {
			po.Servers = c.Servers
		}
		spec, err := po.spec(p, c)
		if err != nil {
			return fmt.Errorf("custom pack %s: %w", c.Name, err)
		}
		m, err := agentpack.Build(agentpack.CustomDir(p, c.Name), spec)
		if err != nil {
			return fmt.Errorf("custom pack %s: %w", c.Name, err)
		}
		if err := o.report(p, m, "/zenworks-setup/custom/"+c.Name+"/"); err != nil {
			return err
		}
	}
	// The definition is kept only once its pack has been built.
	return agentpack.SaveCustom(p, list)
}

// spec gathers what goes into a set of packs: the zone CA, the server
// list, the zac binaries.
func (o *PackOptions) spec(p config.Paths, c agentpack.Custom) (agentpack.Spec, error) {
	if err := p.CheckZone(); err != nil {
		return agentpack.Spec{}, err
	}
	caPEM, err := os.ReadFile(p.CACert())
	if err != nil {
		return agentpack.Spec{}, fmt.Errorf("zone CA certificate: %w", err)
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return agentpack.Spec{}, fmt.Errorf("zone CA certificate %s: %w", p.CACert(), err)
	}
	spec := agentpack.Spec{Name: c.Name, Version: version.String(), CACertPEM: pki.EncodeCertPEM(ca), RegKey: c.RegKey, Zac: map[agentpack.Platform]string{}}
	if c.Interval != "" {
		if spec.Interval, err = time.ParseDuration(c.Interval); err != nil {
			return agentpack.Spec{}, errkind.New(errkind.Usage, "interval %q: %v", c.Interval, err)
		}
	}
	spec.Zone, spec.Servers, err = zoneServers(p)
	if err != nil {
		return agentpack.Spec{}, err
	}
	if spec.Zone == "" {
		spec.Zone = ca.Subject.CommonName
	}
	if len(o.Servers) > 0 {
		spec.Servers = o.Servers
	}
	if len(o.Platforms) == 0 {
		spec.Platforms = agentpack.DefaultPlatforms()
	}
	for _, s := range o.Platforms {
		pl, err := agentpack.ParsePlatform(s)
		if err != nil {
			return agentpack.Spec{}, err
		}
		spec.Platforms = append(spec.Platforms, pl)
	}
	for _, pl := range spec.Platforms {
		path, err := o.findZac(p, pl)
		if err != nil {
			return agentpack.Spec{}, err
		}
		spec.Zac[pl] = path
	}
	return spec, nil
}

// zoneServers lists the zone's servers, this one first (named as its
// certificate names it). The store is read when the zone server is
// stopped; while it runs (and holds the store), the server is asked.
func zoneServers(p config.Paths) (string, []string, error) {
	cfg, err := config.LoadServer(p)
	if err != nil {
		return "", nil, err
	}
	self, err := pki.ReadCertFile(p.ServerCert())
	if err != nil {
		return "", nil, fmt.Errorf("this server's certificate: %w", err)
	}
	first := fmt.Sprintf("https://%s:%d", self.Subject.CommonName, cfg.Port)
	servers := []string{first}
	st, err := store.Open(p.Store(), store.Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond})
	if err != nil {
		if errkind.Is(err, errkind.Unavailable) {
			name, all := runningZone(first, self, p)
			for _, u := range all {
				if u != first {
					servers = append(servers, u)
				}
			}
			return name, servers, nil
		}
		return "", nil, err
	}
	defer st.Close()
	db := zone.New(st, time.Now)
	z, _ := db.Zone()
	list, err := db.Servers()
	if err != nil {
		return "", nil, err
	}
	for _, sv := range list {
		u := fmt.Sprintf("https://%s:%d", sv.Name, sv.Port)
		if sv.ID != cfg.ServerID && u != first {
			servers = append(servers, u)
		}
	}
	return z.Name, servers, nil
}

// runningZone asks the running zone server for the zone's name and
// servers; the store is its own while it runs.
func runningZone(url string, self *x509.Certificate, p config.Paths) (string, []string) {
	ca, err := pki.ReadCertFile(p.CACert())
	if err != nil {
		return "", nil
	}
	c, err := client.New(client.Options{BaseURL: url, CA: ca, Timeout: 5 * time.Second})
	if err != nil {
		return "", nil
	}
	defer c.Close()
	var v api.Version
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Get(ctx, "/api/version", &v); err != nil {
		return "", nil
	}
	return v.Zone, v.Servers
}

// findZac finds (or builds) the zac binary for pl.
func (o *PackOptions) findZac(p config.Paths, pl agentpack.Platform) (string, error) {
	if o.BuildFrom != "" {
		return buildZac(o, p, pl)
	}
	var dirs []string
	if o.ZacDir != "" {
		dirs = append(dirs, o.ZacDir)
	} else if exe, err := o.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "agents"), filepath.Dir(exe))
	}
	for _, d := range dirs {
		path := filepath.Join(d, pl.ZacName())
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			return path, nil
		}
	}
	if o.ZacDir == "" && pl.OS == runtime.GOOS && pl.Arch == runtime.GOARCH {
		for _, d := range dirs {
			if path := filepath.Join(d, "zac"); isFile(path) {
				return path, nil
			}
		}
		if path, err := exec.LookPath("zac"); err == nil {
			return filepath.Abs(path)
		}
	}
	where := "--zac-dir"
	if o.ZacDir != "" {
		where = o.ZacDir
	}
	return "", errkind.New(errkind.NotFound, "no zac for %s: put %s in %s ('make agents' builds bin/agents/), pass --build-from SOURCE, or leave the platform out with --platform", pl, pl.ZacName(), where)
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// buildZac cross-builds zac from a source tree; the Go build cache makes
// a second run cheap.
func buildZac(o *PackOptions, p config.Paths, pl agentpack.Platform) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", errkind.New(errkind.NotFound, "--build-from needs the Go toolchain on $PATH (or use --zac-dir)")
	}
	if !isFile(filepath.Join(o.BuildFrom, "cmd", "zac", "main.go")) {
		return "", errkind.New(errkind.Usage, "--build-from %s: not a zonekit source tree (no cmd/zac)", o.BuildFrom)
	}
	out, err := filepath.Abs(filepath.Join(agentpack.Dir(p), ".build", pl.ZacName()))
	if err != nil {
		return "", err
	}
	fmt.Fprintf(o.IO.ErrOut, "Building zac for %s...\n", pl)
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w -X zonekit/internal/version.Version="+version.String(), "-o", out, "./cmd/zac")
	cmd.Dir = o.BuildFrom
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+pl.OS, "GOARCH="+pl.Arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build zac for %s: %w: %s", pl, err, lastLine(msg))
	}
	return out, nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return lines[len(lines)-1]
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (o *PackOptions) report(p config.Paths, m agentpack.Manifest, urlPath string) error {
	out := o.IO.Out
	what := "Default agent packs"
	if m.Name != "" {
		what = "Custom agent pack " + m.Name
	}
	fmt.Fprintf(out, "%s for zone %s (zac %s, CA SHA-256 %s):\n", what, m.Zone, m.Version, m.CAFingerprint)
	var rows [][]string
	for _, f := range m.Files {
		rows = append(rows, []string{f.Name, f.Platform, humanSize(f.Size), f.SHA256})
	}
	if err := ui.Table(out, []string{"FILE", "PLATFORM", "SIZE", "SHA-256"}, rows); err != nil {
		return err
	}
	dl := urlPath
	if len(m.Servers) > 0 {
		dl = m.Servers[0] + urlPath
	}
	fmt.Fprintf(out, "Servers: %v\nDownload: %s\n", m.Servers, dl)
	return nil
}
