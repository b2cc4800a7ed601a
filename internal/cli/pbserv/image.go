package pbserv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/cli/settings"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/preboot/conf"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/preboot/ptls"
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
	CACert  string
	// User and PasswordFrom are the zone administrator's login: --user
	// (or ZMAN_USER), the password from --password-file, --password-env,
	// --password-command, ZMAN_PASSWORD, or a prompt on a terminal.
	User         string
	PasswordFrom cmdutil.PasswordFlags
	flags        *pflag.FlagSet
}

// client is a client of the imaging service: --server, else this
// server's (from pbserv.conf), over HTTPS trusting the zone CA (--cacert,
// else this home's), as the administrator --user (or ZMAN_USER).
func (o *ImageOptions) client(ctx context.Context) (*imaging.Client, string, error) {
	host := o.Server
	if host == "" {
		v, err := o.Layout().Load(conf.Imaging)
		if err != nil {
			return nil, "", err
		}
		h := v.String("IPAddress")
		if h == "" {
			h = "127.0.0.1"
		}
		host = net.JoinHostPort(h, strconv.Itoa(v.Int("ImagingPort")))
	} else if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, strconv.Itoa(conf.DefaultImagingPort))
	}
	caFile := o.CACert
	if caFile == "" {
		caFile = config.Paths{Home: config.ResolveHome(o.Home)}.CACert()
	}
	ca, err := pki.ReadCertFile(caFile)
	if err != nil {
		return nil, "", errkind.New(errkind.Usage, "the zone CA certificate (%v): pass --cacert FILE", err)
	}
	user := settings.Bind(o.flags, "ZMAN", map[string]string{"user": "user"}).GetString("user")
	pr := ui.NewPrompter(o.IO)
	if user == "" {
		if !o.IO.CanPrompt() {
			return nil, "", ui.RequiredError("--user (or ZMAN_USER), a zone administrator,")
		}
		if user, err = pr.Input("Administrator:", ""); err != nil {
			return nil, "", err
		}
	}
	pass, err := o.PasswordFrom.Read(ctx, o.IO, pr, "Password for "+user+":", "ZMAN_PASSWORD",
		o.PasswordFrom.Names("ZMAN_PASSWORD"), false)
	if err != nil {
		return nil, "", err
	}
	base := "https://" + host
	req := http.Request{Header: http.Header{}}
	req.SetBasicAuth(user, pass)
	c := imaging.NewClient(base, ptls.ClientConfig(ca, nil), req.Header.Get("Authorization"))
	return c, base, nil
}

func addServerFlag(cmd *cobra.Command, o *ImageOptions) {
	o.flags = cmd.Flags()
	cmd.Flags().StringVarP(&o.User, "user", "u", "", "zone administrator (or ZMAN_USER)")
	o.PasswordFrom.AddFlags(cmd.Flags(), "")
	cmd.Flags().StringVarP(&o.Server, "server", "s", "", "the imaging service, HOST[:PORT] (default: this server's, from pbserv.conf)")
	cmd.Flags().StringVar(&o.CACert, "cacert", "", "the zone CA certificate (default: this zone home's)")
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
only with --replace (exit 4 without it, also when another upload of the
name is under way).

The service is reached over HTTPS and trusted through the zone CA
(--cacert, default this zone home's); it admits zone administrators only:
--user (or ZMAN_USER), the password from --password-file, --password-env,
--password-command, ZMAN_PASSWORD or a prompt on a terminal.`,
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
			c, base, err := o.client(cmd.Context())
			if err != nil {
				return err
			}
			img, err := c.Upload(cmd.Context(), o.Name, o.File, o.Replace)
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
the image; otherwise nothing is written. Credentials and trust as for
image-upload (--user, the --password-* flags, --cacert).`,
		Args: cmdutil.ExactArgs(1, "the image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if o.File == "" {
				o.File = o.Name
			}
			if runF != nil {
				return runF(o)
			}
			c, _, err := o.client(cmd.Context())
			if err != nil {
				return err
			}
			img, err := c.Download(cmd.Context(), o.Name, o.File)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.IO.Out, "Fetched image %s into %s (%d bytes, SHA-256 %s)\n", img.Name, o.File, img.Size, img.SHA256)
			return nil
		},
	}
	addServerFlag(cmd, o)
	cmd.Flags().StringVarP(&o.File, "file", "f", "", "where to write the image (default: NAME)")
	cmd.ValidArgsFunction = o.completeImage
	return cmd
}

// completeImage completes an image name from the imaging service's list,
// with the credentials the flags and environment give (never a prompt:
// a completion has no terminal); nothing completes when it cannot ask.
func (o *ImageOptions) completeImage(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
	defer cancel()
	c, _, err := o.client(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	imgs, err := c.List(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, i := range imgs {
		if strings.HasPrefix(i.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(i.Name, fmt.Sprintf("%d MiB", i.Size>>20)))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func newImageList(opts *Options, runF func(*ImageOptions) error) *cobra.Command {
	o := &ImageOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "image-list",
		Aliases: []string{"il"},
		Short:   "List the images an imaging service holds",
		Long: `List the images an imaging service holds. Credentials and trust as for
image-upload (--user, the --password-* flags, --cacert).`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			format, err := ui.ParseFormat(o.Output)
			if err != nil {
				return err
			}
			c, _, err := o.client(cmd.Context())
			if err != nil {
				return err
			}
			imgs, err := c.List(cmd.Context())
			if err != nil {
				return err
			}
			if format == ui.FormatJSON {
				return ui.JSON(o.IO.Out, imgs)
			}
			rows := [][]string{}
			for _, i := range imgs {
				var parts []string
				for _, p := range i.Partitions {
					fs := p.FS
					if fs == "" {
						fs = "raw"
					}
					parts = append(parts, fmt.Sprintf("%d:%s:%dMiB", p.Number, fs, p.Size>>20))
				}
				layout := "-"
				if len(parts) > 0 {
					layout = strings.Join(parts, " ")
				}
				rows = append(rows, []string{i.Name, strconv.FormatInt(i.Size, 10), i.SHA256, ui.LocalDate(i.Modified), layout})
			}
			return ui.Listing(o.IO.Out, o.IO.OutTTY, []string{"NAME", "SIZE", "SHA-256", "MODIFIED", "PARTITIONS"}, rows)
		},
	}
	addServerFlag(cmd, o)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "table", "output format: table or json (piped, tab-separated rows without headers)")
	return cmd
}
