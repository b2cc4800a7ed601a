package pbserv

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/errkind"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/ui"
)

// ImageOptions are the imaging client commands' inputs.
type ImageOptions struct {
	*Options
	Server  string
	Name    string
	File    string
	Replace bool
	Output  string
}

// server is the imaging service's URL: --server, else this server's.
func (o *ImageOptions) server() (string, error) {
	if o.Server != "" {
		if _, _, err := net.SplitHostPort(o.Server); err != nil {
			return "http://" + net.JoinHostPort(o.Server, strconv.Itoa(conf.DefaultImagingPort)), nil
		}
		return "http://" + o.Server, nil
	}
	v, err := o.Layout().Load(conf.Imaging)
	if err != nil {
		return "", err
	}
	host := v.String("IPAddress")
	if host == "" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(v.Int("ImagingPort"))), nil
}

func addServerFlag(cmd *cobra.Command, o *ImageOptions) {
	cmd.Flags().StringVarP(&o.Server, "server", "s", "", "the imaging service, HOST[:PORT] (default: this server's, from pbserv.conf)")
}

func newImageUpload(opts *Options, runF func(*ImageOptions) error) *cobra.Command {
	o := &ImageOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "image-upload FILE",
		Aliases: []string{"iu"},
		Short:   "Send an image file to an imaging service",
		Long: `Send FILE to the imaging service as an image (named --name, by default the
file's name). The service checks the data against the SHA-256 computed here
and stores it only when they match; an image of the same name is replaced
only with --replace.`,
		Args: cmdutil.ExactArgs(1, "the image file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			if o.Name == "" {
				o.Name = filepath.Base(o.File)
			}
			if runF != nil {
				return runF(o)
			}
			if !policy.ValidName(o.Name) {
				return errkind.New(errkind.Usage, "image name %q: use letters, digits, '.', '_' and '-'", o.Name)
			}
			base, err := o.server()
			if err != nil {
				return err
			}
			img, err := imaging.NewClient(base).Upload(cmd.Context(), o.Name, o.File, o.Replace)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.IO.Out, "Stored image %s (%d bytes, SHA-256 %s) on %s\n", img.Name, img.Size, img.SHA256, base)
			return nil
		},
	}
	addServerFlag(cmd, o)
	cmd.Flags().StringVarP(&o.Name, "name", "n", "", "the image's name on the service (default: the file's name)")
	cmd.Flags().BoolVar(&o.Replace, "replace", false, "replace an image of the same name")
	return cmd
}

func newImageDownload(opts *Options, runF func(*ImageOptions) error) *cobra.Command {
	o := &ImageOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "image-download NAME",
		Aliases: []string{"id"},
		Short:   "Fetch an image from an imaging service",
		Long: `Fetch image NAME into --file (default: NAME in the current directory). The
file appears only when the data matches the SHA-256 the service holds for
the image; otherwise nothing is written.`,
		Args: cmdutil.ExactArgs(1, "the image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if o.File == "" {
				o.File = o.Name
			}
			if runF != nil {
				return runF(o)
			}
			base, err := o.server()
			if err != nil {
				return err
			}
			img, err := imaging.NewClient(base).Download(cmd.Context(), o.Name, o.File)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.IO.Out, "Fetched image %s into %s (%d bytes, SHA-256 %s)\n", img.Name, o.File, img.Size, img.SHA256)
			return nil
		},
	}
	addServerFlag(cmd, o)
	cmd.Flags().StringVarP(&o.File, "file", "f", "", "where to write the image (default: NAME)")
	return cmd
}

func newImageList(opts *Options, runF func(*ImageOptions) error) *cobra.Command {
	o := &ImageOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "image-list",
		Aliases: []string{"il"},
		Short:   "List the images an imaging service holds",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			format, err := ui.ParseFormat(o.Output)
			if err != nil {
				return err
			}
			base, err := o.server()
			if err != nil {
				return err
			}
			imgs, err := imaging.NewClient(base).List(cmd.Context())
			if err != nil {
				return err
			}
			if format == ui.FormatJSON {
				return ui.JSON(o.IO.Out, imgs)
			}
			rows := [][]string{}
			for _, i := range imgs {
				rows = append(rows, []string{i.Name, strconv.FormatInt(i.Size, 10), i.SHA256, ui.LocalDate(i.Modified)})
			}
			return ui.Table(o.IO.Out, []string{"NAME", "SIZE", "SHA-256", "MODIFIED"}, rows)
		},
	}
	addServerFlag(cmd, o)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "table", "output format: table or json")
	return cmd
}
