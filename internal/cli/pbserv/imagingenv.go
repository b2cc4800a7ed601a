package pbserv

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/bootenv"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/imgclient"
)

// BuildOptions are imaging-build's inputs.
type BuildOptions struct {
	*Options
	Kernel string
	Output string
}

func newImagingBuild(opts *Options, runF func(*BuildOptions) error) *cobra.Command {
	o := &BuildOptions{Options: opts}
	cmd := &cobra.Command{
		Use:   "imaging-build",
		Short: "Build the imaging environment (kernel and initramfs) machines boot to be imaged",
		Long: `Build the imaging environment that the imaging menu (imaging.ipxe) boots:
Debian's kernel and an initramfs holding busybox, sfdisk, partclone, zstd,
udpcast, the kernel modules of common disks and network cards, the zone CA,
and this pbserv as the imaging client. Files come from this server's
packages; install them first:

  apt-get install ` + bootenv.Packages + `

The result goes to zonekit-imaging/vmlinuz and zonekit-imaging/initrd in the
TFTP service's TFTPDirectory (or --output), each replaced atomically. Run
it again after a kernel update or a change of zone CA.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return runBuild(o)
		},
	}
	cmd.Flags().StringVar(&o.Kernel, "kernel", "", "the kernel version (a directory of /lib/modules; default the newest)")
	cmd.Flags().StringVar(&o.Output, "output", "", "where to write vmlinuz and initrd (default TFTPDirectory/zonekit-imaging)")
	return cmd
}

func runBuild(o *BuildOptions) error {
	l := o.Layout()
	out := o.Output
	if out == "" {
		tv, err := l.Load(conf.TFTP)
		if err != nil {
			return err
		}
		out = filepath.Join(tv.String("TFTPDirectory"), "zonekit-imaging")
	}
	p := config.Paths{Home: config.ResolveHome(o.Home)}
	ca, err := os.ReadFile(p.CACert())
	if err != nil {
		return errkind.New(errkind.NotFound, "the zone CA certificate %s: %v (imaging-build runs on a zone server)", p.CACert(), err)
	}
	self, err := o.Executable()
	if err != nil {
		return err
	}
	res, err := bootenv.Build(bootenv.Options{Kernel: o.Kernel, Output: out, Client: self, CA: ca, Log: o.IO.ErrOut})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "Built the imaging environment in %s: kernel %s (%d bytes), initrd of %d files (%d bytes)\n",
		out, res.Kernel, res.KernelBytes, res.Files, res.InitrdBytes)
	return nil
}

// newImagingClient is the imaging environment's client (its /init runs
// it); hidden, since it only makes sense there.
func newImagingClient(opts *Options) *cobra.Command {
	return &cobra.Command{
		Use:    "imaging-client",
		Short:  "Do the imaging task on the kernel command line (inside the imaging environment)",
		Hidden: true,
		Args:   cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := os.ReadFile("/proc/cmdline")
			if err != nil {
				return err
			}
			c, err := imgclient.New(imgclient.ParseCmdline(string(line)), opts.IO.Out)
			if err != nil {
				return err
			}
			return c.Run(cmd.Context())
		},
	}
}
