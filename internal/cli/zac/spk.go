package zac

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/spk"
	"zonekit/internal/ui"
)

func newSPKCompile(opts *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spk-compile SOURCE.spk OUT.cpk",
		Short: "Compile a server software package without a zone (unsigned CPK)",
		Long: `Check an SPK source, gather the files its steps take from the package
(paths relative to the source's directory) and write a sealed CPK: the
logic and the content in one archive with a SHA-256 manifest. A CPK cannot
be edited; only its variables take values when it runs. Compiled here it
is unsigned; 'zman spk-compile' has the zone CA sign it. See docs/spk.md.`,
		Args: cmdutil.ExactArgs(2, "the SPK source and the CPK to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := args[1]
			res, err := CompileSPK(args[0], out, nil)
			if err != nil {
				return err
			}
			return printCompile(opts.IO, opts.Output, res, out)
		},
	}
	return cmd
}

// CompileSPK compiles source into the CPK file out, atomically.
func CompileSPK(source, out string, sign spk.Signer) (*spk.CompileResult, error) {
	res, err := spk.CompileFile(source, out, sign, time.Now())
	if err != nil {
		return nil, errkind.Wrap(errkind.Invalid, err)
	}
	return res, nil
}

func printCompile(io *ui.IOStreams, output string, res *spk.CompileResult, out string) error {
	format, err := ui.ParseFormat(output)
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(io.Out, res)
	}
	signed := "unsigned"
	if res.Signed {
		signed = "signed by " + res.Signer
	}
	fmt.Fprintf(io.Out, "Compiled %s: %d file(s), %d bytes of content, %s.\nSHA-256 %s\n", out, res.Files, res.Bytes, signed, res.Digest)
	return nil
}

// SPKProcessOptions are spk-process's inputs.
type SPKProcessOptions struct {
	*Options
	DryRun           bool
	Diff             bool
	StepTimeout      time.Duration
	KeepRuns         int
	ValuesFile       string
	LogFile          string
	CACert           string
	RequireSignature bool
	ZoneValues       bool
	// Prompter asks for missing values on a terminal (nil: survey).
	Prompter ui.Prompter
}

func newSPKProcess(opts *Options) *cobra.Command {
	o := &SPKProcessOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "spk-process [--dry-run] FILE.cpk... [NAME=value...]",
		Short: "Run compiled server software packages on this machine, in order",
		Long: `Run one or more CPKs on this machine, in the order given, stopping at the
first that fails (the reference's ordered installs, without batch files).

Values for the packages' variables come from NAME=value arguments and
--values FILE (NAME=value lines; the arguments win). A file holding a value
for a secret variable must be mode 0600; secret values never appear in the
log. Each value goes to every package that declares the variable. On a
terminal, a required value nobody gave is asked for (a secret without
echo). Built-in host variables (HOST_NAME, HOST_FQDN, HOST_OS, HOST_OS_ID,
HOST_OS_VERSION, HOST_ARCH, HOST_IP, HOST_IPS) need no value.

--zone-values takes the values the zone holds for this device (zman
spk-values-set: zone, then its groups, then the device itself; the
arguments and --values override them).

Every CPK is checked before anything runs: its signature when it has one
(it must be from a CA in the agent's trust store or --cacert) and its
manifest, before any content is unpacked; then its digests.
--require-signature refuses unsigned ones.

Steps are idempotent: each reports ok (already as wanted) or changed, and
a second run of the same package changes nothing. --dry-run (or --check)
lists every change without making it, with the counts the real run would
give; --diff adds a unified diff of every file it would change. Each step
is logged (stdout and --log, by default logs/spk-process.log in the
agent's home). Commands are bounded by --step-timeout (or the step's
timeout:) and killed with their process group.

A run keeps a journal and the files it replaces under spk-backup/ in the
agent's home. When a step fails, the package's changes are undone, newest
first. A run that was killed is rolled back by the next spk-process or
'zac agent', which says so. After a success the snapshots are removed;
--keep-backups N keeps those of the last N runs, except files that held
secret values.`,
		Example: `  zac spk-process --dry-run edir-install.cpk TREE_NAME=ACME
  zac spk-process nici.cpk edir-install.cpk imanager.cpk --values /root/edir.values`,
		Args: cmdutil.MinimumArgs(1, "at least one CPK file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return spkProcessRun(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.DryRun, "dry-run", false, "list every change without making it")
	f.BoolVar(&o.DryRun, "check", false, "the same as --dry-run")
	f.BoolVar(&o.Diff, "diff", false, "with --dry-run: print a unified diff of every file that would change")
	f.DurationVar(&o.StepTimeout, "step-timeout", spk.DefaultStepTimeout, "kill a step's commands after this long (a step's timeout: wins)")
	f.IntVar(&o.KeepRuns, "keep-backups", 0, "keep the snapshots of the last N successful runs (without files that held secrets)")
	f.StringVar(&o.ValuesFile, "values", "", "read NAME=value lines from this file (0600 if it holds secrets)")
	f.StringVar(&o.LogFile, "log", "", "append the step log to this file (default logs/spk-process.log in the agent home)")
	f.StringVar(&o.CACert, "cacert", "", "also trust CPK signatures by this CA certificate")
	f.BoolVar(&o.RequireSignature, "require-signature", false, "refuse CPKs that the zone CA has not signed")
	f.BoolVar(&o.ZoneValues, "zone-values", false, "take values from the zone (zone, group and device values; arguments and --values override them)")
	return cmd
}

func spkProcessRun(ctx context.Context, o *SPKProcessOptions, args []string) error {
	var files, assigns []string
	for _, a := range args {
		if k, _, ok := strings.Cut(a, "="); ok && k != "" && !strings.ContainsAny(k, "/.") {
			assigns = append(assigns, a)
		} else {
			files = append(files, a)
		}
	}
	if len(files) == 0 {
		return errkind.New(errkind.Usage, "no CPK file given")
	}
	given, err := spk.ParseValues(assigns)
	if err != nil {
		return errkind.Wrap(errkind.Usage, err)
	}
	a := o.Agent()
	var trusted []*x509.Certificate
	if cas, err := a.TrustedCAs(); err == nil {
		trusted = cas
	}
	if o.CACert != "" {
		data, err := os.ReadFile(o.CACert)
		if err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
		cas, err := pki.ParseCertificates(data)
		if err != nil {
			return errkind.New(errkind.Usage, "%s: %v", o.CACert, err)
		}
		trusted = append(trusted, cas...)
	}
	// Open and check every CPK and every value before the first runs.
	var opened []*spk.Opened
	defer func() {
		for _, c := range opened {
			c.Close()
		}
	}()
	if o.Diff && !o.DryRun {
		return errkind.New(errkind.Usage, "--diff goes with --dry-run (or --check)")
	}
	format, err := ui.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	// One run at a time per machine; a run that was killed is rolled back
	// first (and its unpacked CPKs removed).
	waiting := func(holder string) {
		fmt.Fprintf(o.IO.ErrOut, "zac: waiting for %s to end (Ctrl-C to give up)\n", holder)
	}
	if o.DryRun {
		// A dry run changes nothing, recovery included: it says what waits.
		pending, err := (&spk.Processor{StateDir: a.SPKStateDir()}).Interrupted()
		if err != nil {
			return err
		}
		for _, r := range pending {
			fmt.Fprintf(o.IO.ErrOut, "zac: package %s (run started %s) was interrupted: the next run or 'zac agent' rolls back its %d change(s) first\n",
				r.Package, r.Started.UTC().Format(time.RFC3339), r.RolledBack)
		}
	} else if _, err := a.RecoverSPK(ctx, o.IO.ErrOut, waiting); err != nil {
		return err
	}
	unlock, err := spk.Lock(ctx, a.SPKStateDir(), nil)
	if err != nil {
		return err
	}
	defer unlock()
	tmp := filepath.Join(a.Home, "spk-work")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		c, err := openCPK(f, spk.OpenOptions{TempDir: tmp, Trusted: trusted, RequireSignature: o.RequireSignature})
		if err != nil {
			return err
		}
		opened = append(opened, c)
	}
	fileVals := spk.Values{}
	if o.ValuesFile != "" {
		for _, c := range opened {
			v, err := spk.ReadValuesFile(o.ValuesFile, c.Package)
			if err != nil {
				return errkind.Wrap(errkind.Usage, err)
			}
			fileVals = v
		}
	}
	all := spk.Values{}
	zoneVals := map[string]string{}
	var zoneSecret []string
	if o.ZoneValues {
		if zoneVals, zoneSecret, err = a.SPKValues(ctx); err != nil {
			return err
		}
	}
	for k, v := range zoneVals {
		all[k] = v
	}
	for k, v := range fileVals {
		all[k] = v
	}
	for k, v := range given {
		all[k] = v
	}
	perPkg := make([]spk.Values, len(opened))
	used := map[string]bool{}
	for i, c := range opened {
		mine := spk.Values{}
		for _, d := range c.Package.Declared() {
			if v, ok := all[d.Name]; ok {
				mine[d.Name] = v
				used[d.Name] = true
			}
		}
		if err := promptMissing(o, c.Package, mine, all); err != nil {
			return err
		}
		for k := range mine {
			used[k] = true
		}
		v, err := spk.Resolve(c.Package, mine)
		if err != nil {
			return errkind.Wrap(errkind.Usage, err)
		}
		perPkg[i] = v
	}
	for k := range all {
		if _, fromZone := zoneVals[k]; fromZone {
			continue // the zone's values serve many packages; each takes what it declares
		}
		if !used[k] {
			return errkind.New(errkind.Usage, "no package given declares the variable %s", k)
		}
	}
	logPath := o.LogFile
	if logPath == "" {
		logPath = filepath.Join(a.Home, "logs", "spk-process.log")
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	var log io.Writer = lf
	if format != ui.FormatJSON {
		log = io.MultiWriter(lf, o.IO.Out)
	}
	proc := &spk.Processor{Log: log, DryRun: o.DryRun, StateDir: a.SPKStateDir(), KeepRuns: o.KeepRuns,
		StepTimeout: o.StepTimeout, Host: spk.LocalHost(), SecretNames: zoneSecret}
	if o.Diff {
		proc.Diff = o.IO.Out
	}
	var results []*spk.Result
	var runErr error
	for i, c := range opened {
		res, err := proc.Run(ctx, c, perPkg[i])
		results = append(results, res)
		if err != nil {
			runErr = errkind.Wrap(errkind.Failure, err)
			if len(opened) > i+1 {
				runErr = errkind.New(errkind.Failure, "%v; %d later package(s) not run", err, len(opened)-i-1)
			}
			break
		}
	}
	if format == ui.FormatJSON {
		if err := ui.JSON(o.IO.Out, results); err != nil {
			return err
		}
	}
	return runErr
}

// promptMissing asks, on a terminal, for each required value no argument,
// file or zone gave (secrets without echo); an answer goes to every
// later package declaring the same variable. Without a terminal, Resolve
// names what is missing.
func promptMissing(o *SPKProcessOptions, p *spk.Package, mine, all spk.Values) error {
	if !o.IO.CanPrompt() {
		return nil
	}
	pr := o.Prompter
	for _, d := range p.Declared() {
		if _, ok := mine[d.Name]; ok || d.Default != nil || !d.Required {
			continue
		}
		if pr == nil {
			pr = ui.NewPrompter(o.IO)
		}
		msg := fmt.Sprintf("%s (package %s)", d.Name, p.Name)
		if d.Description != "" {
			msg = fmt.Sprintf("%s, %s (package %s)", d.Name, d.Description, p.Name)
		}
		var v string
		var err error
		if d.Secret {
			v, err = pr.Password(msg + ":")
		} else {
			v, err = pr.Input(msg+":", "")
		}
		if err != nil {
			return err
		}
		mine[d.Name], all[d.Name] = v, v
	}
	return nil
}

func openCPK(path string, oo spk.OpenOptions) (*spk.Opened, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errkind.Wrap(errkind.Usage, err)
	}
	defer f.Close()
	c, err := spk.Open(f, oo)
	if err != nil {
		return nil, errkind.New(errkind.Invalid, "%s: %v", path, err)
	}
	return c, nil
}

// SPKUninstallOptions are spk-uninstall's inputs.
type SPKUninstallOptions struct {
	*Options
	DryRun bool
	List   bool
}

func newSPKUninstall(opts *Options) *cobra.Command {
	o := &SPKUninstallOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "spk-uninstall [--dry-run] PACKAGE | --list",
		Short: "Reverse what a server software package changed on this machine",
		Long: `Reverse the recorded changes of a package that spk-process (or the zone)
installed here, newest first: files it created are removed, files it
replaced, edited or deleted come back as they were before the package
first touched them (owner, mode and symbolic links included), directories
it made go when empty, and its undo: commands run. Changes others made
since to those files are lost. An original file that held a secret value
was not kept: it is left as it is, and the output says so.

--dry-run lists what would be reversed. --list names the packages with
an install record. An interrupted uninstall can be run again.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.List {
				return cmdutil.NoArgs(cmd, args)
			}
			return cmdutil.ExactArgs(1, "the package name")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return spkUninstallRun(cmd.Context(), o, args)
		},
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be reversed without doing it")
	cmd.Flags().BoolVar(&o.List, "list", false, "list the packages that have an install record")
	return cmd
}

func spkUninstallRun(ctx context.Context, o *SPKUninstallOptions, args []string) error {
	a := o.Agent()
	proc := &spk.Processor{Log: o.IO.Out, StateDir: a.SPKStateDir(), DryRun: o.DryRun}
	if o.List {
		names, err := proc.Installed()
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintln(o.IO.Out, n)
		}
		return nil
	}
	waiting := func(holder string) {
		fmt.Fprintf(o.IO.ErrOut, "zac: waiting for %s to end (Ctrl-C to give up)\n", holder)
	}
	if _, err := a.RecoverSPK(ctx, o.IO.ErrOut, waiting); err != nil {
		return err
	}
	unlock, err := spk.Lock(ctx, a.SPKStateDir(), nil)
	if err != nil {
		return err
	}
	defer unlock()
	res, err := proc.Uninstall(ctx, args[0])
	if res == nil {
		return errkind.Wrap(errkind.NotFound, err)
	}
	if err != nil {
		return errkind.Wrap(errkind.Failure, err)
	}
	verb := "reversed"
	if o.DryRun {
		verb = "would reverse"
	}
	fmt.Fprintf(o.IO.Out, "package %s: %s %d change(s)", res.Package, verb, res.Reversed)
	if len(res.Unrestorable) > 0 {
		fmt.Fprintf(o.IO.Out, "; %d file(s) left as they are (their originals held secrets)", len(res.Unrestorable))
	}
	fmt.Fprintln(o.IO.Out)
	return nil
}
