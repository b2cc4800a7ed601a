package zman

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

func packagePath(id string, rest ...string) string {
	return api.Prefix + "/packages/" + url.PathEscape(id) + strings.Join(rest, "")
}

// parseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024, "KiB" and "KB" alike).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, errkind.New(errkind.Usage, "--fragment-size %q: want a size like 512K or 4M", s)
	}
	return n * mult, nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

type packageCreateOptions struct {
	f            *Factory
	Spec         content.Spec
	File         string
	FragmentSize string
}

func newPackageCreate(f *Factory, runF func(*packageCreateOptions) error) *cobra.Command {
	o := &packageCreateOptions{f: f}
	cmd := &cobra.Command{
		Use:     "package-create NAME --os OS --action ACTION [--file ARCHIVE|DIR] [--command CMD|--path PATH]",
		Aliases: []string{"pkc"},
		Short:   "Build a deployable package from an archive or a directory",
		Long: `Build a package in the zone server's content repository, as OCS Inventory NG
agents and zonekit agents read it: an info file describing the package and
the archive cut into fragments, under a numeric package ID.

--file is a zip or tar.gz archive, or a directory, which is packed for the
target: tar.gz for Linux (the agent extracts it with tar), zip for Windows;
for action cpk, a compiled server software package signed by the zone CA
(zman spk-compile).

Actions:
  launch   run --command, an executable at the top of the package (its name
           without path, then its arguments); the agent reports its exit code
  execute  run --command, any command line, in the extracted directory
           (environment variables are expanded); --file is optional
  store    extract the package into --path on the device
  cpk      run the CPK with zac's SPK processor, its variables taking the
           values the zone holds for the device (zman spk-values-set: zone,
           group, device; the most specific wins). zac agents only: OCS
           agents cannot run it.

Priority 0 is absolute: its packages are fetched before all others, and a
failing one holds back every other package. 5 is the default, 10 the lowest.

With --notify-user the device's user is warned with --notify-text for
--notify-countdown seconds (0 waits for the user), and may abort or delay
the deployment if allowed. --need-done-action asks the user to confirm the
end of a setup that needs interaction.

The archive is checked while it is uploaded (zip or tar.gz, intact, holding
the file a launch command names); a refused package leaves nothing behind.
Activate it with package-activate, then assign it with package-assign.`,
		Example: `  zman package-create firefox --os linux --action launch --file ./firefox-pkg --command "install.sh --quiet"
  zman pkc msi-tool --os windows --action execute --file tool.zip --command "msiexec.exe /i tool.msi /quiet"
  zman pkc proxy --os windows --action execute --command "Proxycfg.exe /p 192.168.1.1" --priority 3
  zman pkc wallpapers --os linux --action store --file art.tar.gz --path /usr/share/backgrounds --fragment-size 4M
  zman pkc edir --os linux --action cpk --file edir-install.cpk`,
		Args: cmdutil.ExactArgs(1, "the package NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Spec.Name = args[0]
			size, err := parseSize(o.FragmentSize)
			if err != nil {
				return err
			}
			o.Spec.FragmentSize = size
			o.Spec.Normalize()
			if err := o.Spec.Validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return packageCreateRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Spec.OS, "os", "", "target operating system: linux or windows")
	fl.IntVar(&o.Spec.Priority, "priority", content.DefaultPriority, "priority, 0 (absolute) to 10 (lowest)")
	fl.StringVar(&o.Spec.Action, "action", "", "launch, execute, store or cpk")
	fl.StringVarP(&o.File, "file", "f", "", "zip, tar.gz or CPK archive, or a directory to pack")
	fl.StringVarP(&o.Spec.Command, "command", "c", "", "launch: the package's executable and arguments; execute: the command line")
	fl.StringVar(&o.Spec.Path, "path", "", "store: where the files go on the device")
	fl.BoolVar(&o.Spec.NotifyUser, "notify-user", false, "warn the device's user before the deployment")
	fl.StringVar(&o.Spec.NotifyText, "notify-text", "", "the warning's text")
	fl.IntVar(&o.Spec.NotifyCount, "notify-countdown", 0, "seconds before the deployment goes ahead (0 waits for the user)")
	fl.BoolVar(&o.Spec.NotifyCanAbort, "notify-can-abort", false, "the user may cancel the deployment")
	fl.BoolVar(&o.Spec.NotifyCanDelay, "notify-can-delay", false, "the user may delay the deployment")
	fl.BoolVar(&o.Spec.NeedDoneAction, "need-done-action", false, "the setup needs the user's action to complete")
	fl.StringVar(&o.Spec.DoneActionText, "need-done-action-text", "", "what the user is asked at the end")
	fl.StringVar(&o.FragmentSize, "fragment-size", "1M", "size of each fragment agents download (e.g. 512K, 4M)")
	return cmd
}

// packageCreateRun streams the description and the archive (or the packed
// directory) to the server in one multipart request.
func packageCreateRun(ctx context.Context, o *packageCreateOptions) error {
	var open func(io.Writer, *ui.Progress) error
	var total int64 = -1
	if o.File != "" {
		fi, err := os.Stat(o.File)
		if err != nil {
			return errkind.New(errkind.Usage, "--file %s: %v", o.File, errors.Unwrap(err))
		}
		if fi.IsDir() && o.Spec.Action == content.ActionCPK {
			return errkind.New(errkind.Usage, "--file %s: action cpk takes a .cpk file (zman spk-compile), not a directory", o.File)
		}
		if fi.IsDir() {
			format := o.Spec.ArchiveFormat()
			open = func(w io.Writer, p *ui.Progress) error {
				return content.PackDir(o.File, format, &progressWriter{w: w, p: p})
			}
		} else {
			if err := sniffArchive(o.File); err != nil {
				return err
			}
			total = fi.Size()
			open = func(w io.Writer, p *ui.Progress) error {
				f, err := os.Open(o.File)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(w, p.Reader(f))
				return err
			}
		}
	} else if o.Spec.NeedsArchive() {
		return errkind.New(errkind.Usage, "action %s needs --file: an archive or a directory", o.Spec.Action)
	}
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		prog := ui.NewProgress(o.f.IO, total, "uploading")
		go func() {
			pw.CloseWithError(writeUpload(mw, o.Spec, open, prog))
		}()
		resp, err := c.Stream(ctx, http.MethodPost, api.Prefix+"/packages", pr, mw.FormDataContentType())
		prog.Done()
		pr.CloseWithError(errors.New("upload ended"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var p api.Package
		if err := decodeJSON(resp.Body, &p); err != nil {
			return err
		}
		format, err := o.f.Format()
		if err != nil {
			return err
		}
		if format == ui.FormatJSON {
			return ui.JSON(o.f.IO.Out, p)
		}
		if p.Fragments == 0 {
			fmt.Fprintf(o.f.IO.Out, "Created package %s (%s), no archive.\n", p.ID, p.Name)
		} else {
			fmt.Fprintf(o.f.IO.Out, "Created package %s (%s), %s %s in %d fragment(s).\nMD5:     %s\nSHA-256: %s\n",
				p.ID, p.Name, humanSize(p.Size), p.Format, p.Fragments, p.MD5, p.SHA256)
		}
		return nil
	})
}

func writeUpload(mw *multipart.Writer, spec content.Spec, open func(io.Writer, *ui.Progress) error, prog *ui.Progress) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="package"`)
	h.Set("Content-Type", "application/json")
	w, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(w).Encode(spec); err != nil {
		return err
	}
	if open != nil {
		w, err := mw.CreateFormFile("archive", "archive")
		if err != nil {
			return err
		}
		if err := open(w, prog); err != nil {
			return err
		}
	}
	return mw.Close()
}

type progressWriter struct {
	w io.Writer
	p *ui.Progress
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.Add(int64(n))
	return n, err
}

// sniffArchive refuses a file that is neither zip nor tar.gz before any
// of it is sent.
func sniffArchive(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return errkind.New(errkind.Usage, "--file %s: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if content.DetectFormat(head[:n]) == "" {
		return errkind.New(errkind.Invalid, "%s is neither a zip, a tar.gz nor a CPK archive", filepath.Base(path))
	}
	return nil
}

type packageListOptions struct{ f *Factory }

func newPackageList(f *Factory, runF func(*packageListOptions) error) *cobra.Command {
	o := &packageListOptions{f: f}
	return &cobra.Command{
		Use:     "package-list",
		Aliases: []string{"pkl"},
		Short:   "List packages, whether they are active and how many devices they are assigned to",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var pkgs []api.Package
				if err := c.Get(ctx, api.Prefix+"/packages", &pkgs); err != nil {
					return err
				}
				return o.f.print(pkgs, []string{"ID", "NAME", "OS", "ACTION", "PRI", "SIZE", "FRAGS", "ACTIVE", "ASSIGNED", "NOT NOTIFIED", "SUCCESS", "ERROR", "CREATED"}, func() [][]string {
					rows := make([][]string, 0, len(pkgs))
					for _, p := range pkgs {
						active := "no"
						if p.Active != nil {
							active = "yes"
						}
						rows = append(rows, []string{p.ID, p.Name, p.OS, p.Action, strconv.Itoa(p.Priority), humanSize(p.Size),
							strconv.Itoa(p.Fragments), active, strconv.Itoa(p.Assigned), strconv.Itoa(p.NotNotified),
							strconv.Itoa(p.Succeeded), strconv.Itoa(p.Failed), ui.Date(p.Created)})
					}
					return rows
				})
			})
		},
	}
}

type packageIDOptions struct {
	f   *Factory
	IDs []string
	Yes bool // package-delete
}

func newPackageInfo(f *Factory, runF func(*packageIDOptions) error) *cobra.Command {
	o := &packageIDOptions{f: f}
	return &cobra.Command{
		Use:     "package-info ID",
		Aliases: []string{"pki"},
		Short:   "Show a package: its description, digests and activation",
		Args:    cmdutil.ExactArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.IDs = args
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var p api.Package
				if err := c.Get(ctx, packagePath(args[0]), &p); err != nil {
					return err
				}
				format, err := o.f.Format()
				if err != nil {
					return err
				}
				if format == ui.FormatJSON {
					return ui.JSON(o.f.IO.Out, p)
				}
				yes := map[bool]string{true: "yes", false: "no"}
				pairs := [][2]string{{"Package", p.ID}, {"Name", p.Name}, {"OS", p.OS}, {"Action", p.Action}}
				switch p.Action {
				case content.ActionStore:
					pairs = append(pairs, [2]string{"Path", p.Path})
				default:
					pairs = append(pairs, [2]string{"Command", p.Command})
				}
				pairs = append(pairs, [][2]string{
					{"Priority", strconv.Itoa(p.Priority)},
					{"Archive", fmt.Sprintf("%s %s", humanSize(p.Size), p.Format)},
					{"Fragments", fmt.Sprintf("%d of %s", p.Fragments, humanSize(p.FragmentSize))},
					{"MD5", p.MD5}, {"SHA-256", p.SHA256},
					{"Notify user", yes[p.NotifyUser]},
				}...)
				if p.NotifyUser {
					pairs = append(pairs, [][2]string{{"Notify text", p.NotifyText}, {"Countdown", strconv.Itoa(p.NotifyCount) + " s"},
						{"User can abort", yes[p.NotifyCanAbort]}, {"User can delay", yes[p.NotifyCanDelay]}}...)
				}
				pairs = append(pairs, [2]string{"Needs user action", yes[p.NeedDoneAction]})
				if p.NeedDoneAction {
					pairs = append(pairs, [2]string{"User action text", p.DoneActionText})
				}
				pairs = append(pairs, [][2]string{{"Created", ui.Date(p.Created) + " by " + p.CreatedBy}, {"Assigned to", fmt.Sprintf("%d device(s)", p.Assigned)}}...)
				if a := p.Active; a != nil {
					pairs = append(pairs, [][2]string{{"Active", "yes, since " + ui.Date(a.Activated)},
						{"Info location", "https://" + a.InfoLocation}, {"Fragment location", "http://" + a.PackLocation}}...)
				} else {
					pairs = append(pairs, [2]string{"Active", "no"})
				}
				ui.KeyValues(o.f.IO.Out, pairs)
				return nil
			})
		},
	}
}

func newPackageDelete(f *Factory, runF func(*packageIDOptions) error) *cobra.Command {
	o := &packageIDOptions{f: f}
	cmd := &cobra.Command{
		Use:     "package-delete ID...",
		Aliases: []string{"pkd"},
		Short:   "Delete packages: their content, activation and assignments",
		Long: `Delete packages from the zone: the info file and fragments go from the content
repository, and with them the package's activation and every device's
assignment and status. Devices that installed it keep what they installed.`,
		Args: cmdutil.MinimumArgs(1, "one or more package IDs"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.IDs = args
			if runF != nil {
				return runF(o)
			}
			return deleteEach(cmd.Context(), o.f, "/packages/", "package", o.IDs, o.Yes)
		},
	}
	addYes(cmd, &o.Yes)
	return cmd
}

type packageActivateOptions struct {
	f          *Factory
	ID         string
	Activation api.Activation
}

func newPackageActivate(f *Factory, runF func(*packageActivateOptions) error) *cobra.Command {
	o := &packageActivateOptions{f: f}
	cmd := &cobra.Command{
		Use:     "package-activate ID",
		Aliases: []string{"pkact"},
		Short:   "Activate a package: say where agents fetch its info file and fragments",
		Long: `Activate a package so that assigned devices deploy it. Agents fetch the info
file over HTTPS from --info-location and the fragments over plain HTTP from
--pack-location (the fragments carry digests, the info file the digests).
Locations are host[:port]/path, as OCS Inventory NG writes them; both
default to this zone server (/content on its HTTPS port and on its
server.content-port). Another web server may host them: copy the package's
directory there first. zonekit fetches the info file and asks for the
first fragment before it activates, and refuses if either does not answer.`,
		Example: `  zman package-activate 1700000002
  zman pkact 1700000002 --info-location zone.example.com/content --pack-location mirror.site2.example.com:8080/download`,
		Args: cmdutil.ExactArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var p api.Package
				if err := c.Post(ctx, packagePath(o.ID, "/activate"), o.Activation, &p); err != nil {
					return err
				}
				return printActivation(o.f, p)
			})
		},
	}
	cmd.Flags().StringVar(&o.Activation.InfoLocation, "info-location", "", "HTTPS location of the info file (host[:port]/path)")
	cmd.Flags().StringVar(&o.Activation.PackLocation, "pack-location", "", "HTTP location of the fragments (host[:port]/path)")
	return cmd
}

func printActivation(f *Factory, p api.Package) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(f.IO.Out, p)
	}
	if p.Active == nil {
		fmt.Fprintf(f.IO.Out, "Deactivated package %s.\n", p.ID)
		return nil
	}
	fmt.Fprintf(f.IO.Out, "Activated package %s: info https://%s/%s/info, fragments http://%s/%s/.\n",
		p.ID, p.Active.InfoLocation, p.ID, p.Active.PackLocation, p.ID)
	return nil
}

func newPackageDeactivate(f *Factory, runF func(*packageIDOptions) error) *cobra.Command {
	o := &packageIDOptions{f: f}
	return &cobra.Command{
		Use:     "package-deactivate ID",
		Aliases: []string{"pkdeact"},
		Short:   "Deactivate a package: devices are no longer sent to it",
		Long: `Deactivate a package. Devices are no longer told to deploy it; what they
installed stays, and so do the package's content, assignments and
statuses, as if it had just been built.`,
		Args: cmdutil.ExactArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.IDs = args
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var p api.Package
				if err := c.Post(ctx, packagePath(args[0], "/deactivate"), struct{}{}, &p); err != nil {
					return err
				}
				return printActivation(o.f, p)
			})
		},
	}
}

type packageAssignOptions struct {
	f      *Factory
	ID     string
	Assign bool
	Target api.PackageAssign
}

func newPackageAssign(f *Factory, assign bool, runF func(*packageAssignOptions) error) *cobra.Command {
	o := &packageAssignOptions{f: f, Assign: assign}
	use, alias, short, verb := "package-assign", "pkas", "Assign a package to devices, groups, or every device matching a filter", "Assigned"
	long := `Assign a package to devices: those named (ids, or names when unambiguous),
the members of each --group (a dynamic group's devices are those its
filter matches now), and with --all, --os, --name, --software (and
--version) or --ip-range every device matching all the filters given; the
software and IP filters read the inventory agents report. Each device's deployment starts as
WAITING NOTIFICATION and becomes NOTIFIED when the device next contacts the
zone; the package must be active for devices to deploy it.`
	if !assign {
		use, alias, short, verb = "package-unassign", "pkun", "Unassign a package from devices, groups, or every device matching a filter", "Unassigned"
		long = `Unassign a package from devices, chosen as package-assign chooses them. Their
deployment records go; devices that installed the package keep it.`
	}
	cmd := &cobra.Command{
		Use:     use + " ID [DEVICE...] [--group GROUP]... [--all] [--os OS] [--name PATTERN]",
		Aliases: []string{alias},
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf(`  zman %[1]s 1700000002 pc1 pc2
  zman %[1]s 1700000002 --group lab
  zman %[1]s 1700000002 --os windows --name 'ws-*'
  zman %[1]s 1700000002 --software 'openssl*' --version '<3.0.13' --ip-range 10.20.0.0/16`, use),
		Args: cmdutil.MinimumArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID, o.Target.Devices = args[0], args[1:]
			t := o.Target
			if len(t.Devices) == 0 && len(t.Groups) == 0 && !t.All && t.OS == "" && t.NamePattern == "" && t.Software == "" && t.IPRange == "" {
				return errkind.New(errkind.Usage, "name devices, --group, or a filter (--all, --os, --name, --software, --ip-range)")
			}
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				path := packagePath(o.ID, "/assign")
				if !o.Assign {
					path = packagePath(o.ID, "/unassign")
				}
				var res api.PackageAssignResult
				if err := c.Post(ctx, path, o.Target, &res); err != nil {
					return err
				}
				format, err := o.f.Format()
				if err != nil {
					return err
				}
				if format == ui.FormatJSON {
					return ui.JSON(o.f.IO.Out, res)
				}
				state := "assigned"
				if !o.Assign {
					state = "not assigned"
				}
				fmt.Fprintf(o.f.IO.Out, "%s package %s: %d device(s) (%d already %s).\n", verb, res.Package, len(res.Changed), res.Already, state)
				if res.OtherOS > 0 {
					fmt.Fprintf(o.f.IO.Out, "Left out %d device(s) running another OS than the package's.\n", res.OtherOS)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVarP(&o.Target.Groups, "group", "g", nil, "the members of this group (repeatable)")
	cmd.Flags().BoolVar(&o.Target.All, "all", false, "every device (narrowed by the filters)")
	addFilterFlags(cmd, &o.Target.OS, &o.Target.NamePattern, &o.Target.Software, &o.Target.Version, &o.Target.IPRange)
	return cmd
}

func newPackageDeployNow(f *Factory, runF func(*packageAssignOptions) error) *cobra.Command {
	o := &packageAssignOptions{f: f}
	cmd := &cobra.Command{
		Use:     "package-deploy-now ID [DEVICE...] [--group GROUP]... [--all] [--os OS] [--name PATTERN]",
		Aliases: []string{"pkdn"},
		Short:   "Have devices deploy a package without the download latencies",
		Long: `Ask devices already assigned a package (chosen as package-assign chooses
them) to deploy it now: at their next refresh their agents ignore the
zone's download latencies (fragment, cycle and period latencies of
package-download-config) for this package, until it is done. The
priority still orders packages. Devices not assigned the package, or that
already reported a result, are counted and left alone. zac refresh --now
does the same from the device.`,
		Example: `  zman package-deploy-now 1700000002 pc1
  zman pkdn 1700000002 --group lab`,
		Args: cmdutil.MinimumArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID, o.Target.Devices = args[0], args[1:]
			t := o.Target
			if len(t.Devices) == 0 && len(t.Groups) == 0 && !t.All && t.OS == "" && t.NamePattern == "" && t.Software == "" && t.IPRange == "" {
				return errkind.New(errkind.Usage, "name devices, --group, or a filter (--all, --os, --name, --software, --ip-range)")
			}
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var res api.PackageAssignResult
				if err := c.Post(ctx, packagePath(o.ID, "/deploy-now"), o.Target, &res); err != nil {
					return err
				}
				return o.f.done(res, "Package %s: %d device(s) deploy it now (%d not waiting for it).\n", res.Package, len(res.Changed), res.Already)
			})
		},
	}
	cmd.Flags().StringSliceVarP(&o.Target.Groups, "group", "g", nil, "the members of this group (repeatable)")
	cmd.Flags().BoolVar(&o.Target.All, "all", false, "every device (narrowed by the filters)")
	addFilterFlags(cmd, &o.Target.OS, &o.Target.NamePattern, &o.Target.Software, &o.Target.Version, &o.Target.IPRange)
	return cmd
}

type packageStatsOptions struct {
	f      *Factory
	ID     string
	Status string
	Device string
}

func newPackageStats(f *Factory, runF func(*packageStatsOptions) error) *cobra.Command {
	o := &packageStatsOptions{f: f}
	cmd := &cobra.Command{
		Use:     "package-stats ID [--status STATUS | --device DEVICE]",
		Aliases: []string{"pks"},
		Short:   "Show how a package's deployment goes: devices per status, or the devices of one status",
		Long: `Show the deployment statuses of a package's devices, with counts and
percentages: WAITING NOTIFICATION (the device has not contacted the zone
since the assignment), NOTIFIED (it was told, no result yet), SUCCESS, and
SUCCESS_ALREADY_SETUP (assigned again after it succeeded), and the errors
agents report (ERR_EXIT_CODE_n for a launch, ERR_BAD_ID,
ERR_BAD_DIGEST, ERR_DOWNLOAD_INFO, ERR_DOWNLOAD_PACK, ERR_BUILD, ERR_UNZIP,
ERR_OUT_OF_SPACE, ERR_BAD_PARAM, ERR_EXECUTE_PACK, ERR_EXECUTE, ERR_CLEAN,
ERR_DONE_FAILED, ERR_TIMEOUT, ERR_ABORTED). With --status, list the devices
that have it, with the detail their agent gave for a failure (for a CPK:
the component and step, the message and the last lines of output). With
--device, show that device's whole record: status, exit code, attempts,
history, and the last 64 KiB of the action's output (secrets masked on the
device).`,
		Example: `  zman package-stats 1700000002
  zman pks 1700000002 --status ERR_BAD_DIGEST
  zman pks 1700000002 --device pc1`,
		Args: cmdutil.ExactArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				path := packagePath(o.ID, "/stats")
				switch {
				case o.Device != "":
					path += "?device=" + url.QueryEscape(o.Device)
				case o.Status != "":
					path += "?status=" + url.QueryEscape(o.Status)
				}
				var st api.PackageStats
				if err := c.Get(ctx, path, &st); err != nil {
					return err
				}
				if o.Device != "" && len(st.Devices) == 1 {
					return printDeployment(o.f, st.Devices[0])
				}
				if o.Status != "" {
					return o.f.print(st.Devices, []string{"DEVICE", "ID", "STATUS", "ASSIGNED", "UPDATED", "DETAIL"}, func() [][]string {
						rows := [][]string{}
						for _, d := range st.Devices {
							rows = append(rows, []string{d.DeviceName, d.DeviceID, d.Status, ui.Date(d.Assigned), ui.Date(d.Updated), d.Detail})
						}
						return rows
					})
				}
				return o.f.print(st, []string{"STATUS", "DEVICES", "PERCENT"}, func() [][]string {
					rows := [][]string{}
					for _, s := range st.Statuses {
						rows = append(rows, []string{s.Status, strconv.Itoa(s.Count), fmt.Sprintf("%.1f%%", s.Percent)})
					}
					rows = append(rows, []string{"TOTAL", strconv.Itoa(st.Total), ""})
					return rows
				})
			})
		},
	}
	cmd.Flags().StringVar(&o.Status, "status", "", "list the devices with this status")
	cmd.Flags().StringVar(&o.Device, "device", "", "show this device's record: status, exit code, history and the action's output")
	return cmd
}

type packageValidateOptions struct {
	f           *Factory
	ID          string
	Success     bool
	NotNotified bool
	All         bool
}

func newPackageValidate(f *Factory, runF func(*packageValidateOptions) error) *cobra.Command {
	o := &packageValidateOptions{f: f}
	cmd := &cobra.Command{
		Use:     "package-validate ID --success|--not-notified|--all",
		Aliases: []string{"pkv"},
		Short:   "Clear a package's deployment statuses once a deployment is over",
		Long: `Clean up a package's deployment records, as an administrator should once a
deployment is over:
  --success       clear the records of devices that succeeded
  --not-notified  unassign the devices not yet notified (WAITING NOTIFICATION)
  --all           both, and clear the error records too; only devices
                  still working on the package (NOTIFIED) keep theirs`,
		Args: cmdutil.ExactArgs(1, "the package ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			n := 0
			mode := ""
			for m, on := range map[string]bool{api.ValidateSuccess: o.Success, api.ValidateNotNotified: o.NotNotified, api.ValidateAll: o.All} {
				if on {
					n++
					mode = m
				}
			}
			if n != 1 {
				return errkind.New(errkind.Usage, "give one of --success, --not-notified or --all")
			}
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var res api.PackageValidateResult
				if err := c.Post(ctx, packagePath(o.ID, "/validate"), api.PackageValidate{Mode: mode}, &res); err != nil {
					return err
				}
				format, err := o.f.Format()
				if err != nil {
					return err
				}
				if format == ui.FormatJSON {
					return ui.JSON(o.f.IO.Out, res)
				}
				fmt.Fprintf(o.f.IO.Out, "Package %s: removed %d deployment record(s).\n", res.Package, res.Removed)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&o.Success, "success", false, "clear the records of devices that succeeded")
	cmd.Flags().BoolVar(&o.NotNotified, "not-notified", false, "unassign devices not yet notified")
	cmd.Flags().BoolVar(&o.All, "all", false, "clear every record but those of devices still deploying")
	return cmd
}

type downloadConfigOptions struct {
	f   *Factory
	set func(*api.DownloadConfig) bool
}

func newDownloadConfig(f *Factory, runF func(*downloadConfigOptions) error) *cobra.Command {
	o := &downloadConfigOptions{f: f}
	var enabled bool
	var c api.DownloadConfig
	cmd := &cobra.Command{
		Use:     "package-download-config [flags]",
		Aliases: []string{"pkdc"},
		Short:   "Show or set the zone's download configuration, sent to every agent",
		Long: `Show the zone-wide download configuration agents follow, or change the values
given. A period is --period-length cycles; in cycle i an agent fetches one
fragment of each package whose priority divides i, waiting --frag-latency
seconds after each fragment and --cycle-latency seconds after each cycle,
and --period-latency seconds after each period. A package not deployed
within --timeout days fails with ERR_TIMEOUT; a package command may run
--execution-timeout minutes. --enabled=false stops all deployments.`,
		Example: `  zman package-download-config
  zman pkdc --frag-latency 2 --cycle-latency 10`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			o.set = func(cur *api.DownloadConfig) bool {
				changed := false
				apply := func(name string, dst *int, v int) {
					if fl.Changed(name) {
						*dst, changed = v, true
					}
				}
				apply("period-length", &cur.PeriodLength, c.PeriodLength)
				apply("frag-latency", &cur.FragLatency, c.FragLatency)
				apply("cycle-latency", &cur.CycleLatency, c.CycleLatency)
				apply("period-latency", &cur.PeriodLatency, c.PeriodLatency)
				apply("timeout", &cur.Timeout, c.Timeout)
				apply("execution-timeout", &cur.ExecutionTimeout, c.ExecutionTimeout)
				if fl.Changed("enabled") {
					cur.Enabled, changed = enabled, true
				}
				return changed
			}
			if runF != nil {
				return runF(o)
			}
			return downloadConfigRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&enabled, "enabled", true, "whether agents deploy packages at all")
	fl.IntVar(&c.PeriodLength, "period-length", 10, "cycles in a period")
	fl.IntVar(&c.FragLatency, "frag-latency", 10, "seconds to wait after each fragment")
	fl.IntVar(&c.CycleLatency, "cycle-latency", 60, "seconds to wait after each cycle")
	fl.IntVar(&c.PeriodLatency, "period-latency", 0, "seconds to wait after each period")
	fl.IntVar(&c.Timeout, "timeout", 7, "days before an undelivered package fails (ERR_TIMEOUT)")
	fl.IntVar(&c.ExecutionTimeout, "execution-timeout", 120, "minutes a package's command may run")
	return cmd
}

func downloadConfigRun(ctx context.Context, o *downloadConfigOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var cfg api.DownloadConfig
		if err := c.Get(ctx, api.Prefix+"/download-config", &cfg); err != nil {
			return err
		}
		if o.set(&cfg) {
			if err := c.Do(ctx, http.MethodPut, api.Prefix+"/download-config", cfg, &cfg); err != nil {
				return err
			}
		}
		format, err := o.f.Format()
		if err != nil {
			return err
		}
		if format == ui.FormatJSON {
			return ui.JSON(o.f.IO.Out, cfg)
		}
		ui.KeyValues(o.f.IO.Out, [][2]string{
			{"Downloads", map[bool]string{true: "enabled", false: "disabled"}[cfg.Enabled]},
			{"Period length", fmt.Sprintf("%d cycles", cfg.PeriodLength)},
			{"Fragment latency", fmt.Sprintf("%d s", cfg.FragLatency)},
			{"Cycle latency", fmt.Sprintf("%d s", cfg.CycleLatency)},
			{"Period latency", fmt.Sprintf("%d s", cfg.PeriodLatency)},
			{"Timeout", fmt.Sprintf("%d days", cfg.Timeout)},
			{"Execution timeout", fmt.Sprintf("%d min", cfg.ExecutionTimeout)},
		})
		return nil
	})
}

// packageCommands are zman's package commands, in help order.
func packageCommands(f *Factory) []*cobra.Command {
	return []*cobra.Command{newPackageCreate(f, nil), newPackageList(f, nil), newPackageInfo(f, nil),
		newPackageDelete(f, nil), newPackageActivate(f, nil), newPackageDeactivate(f, nil),
		newPackageAssign(f, true, nil), newPackageAssign(f, false, nil), newPackageDeployNow(f, nil), newPackageStats(f, nil),
		newPackageValidate(f, nil), newDownloadConfig(f, nil)}
}
