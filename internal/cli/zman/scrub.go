package zman

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

type scrubOptions struct {
	f       *Factory
	Package string
}

func newContentScrub(f *Factory, runF func(*scrubOptions) error) *cobra.Command {
	o := &scrubOptions{f: f}
	cmd := &cobra.Command{
		Use:     "content-scrub [--package ID|image:NAME]",
		Aliases: []string{"cscrub"},
		Short:   "Re-read a server's stored packages and images and repair damaged copies",
		Long: `Make the zone server (this one, or --host) re-read every package fragment
and preboot image it stores and check each against its SHA-256 digest, as
'restic check --read-data' or a ZFS scrub does. A damaged copy is logged,
taken out of service (agents and peers are no longer sent to it) and pulled
again from a peer holding a good copy; content-replication-status shows it
"damaged" until then. Servers also scrub by themselves every
content.scrub-interval (168h by default), and check a copy at once when a
peer received it damaged.

Exit status 0 when nothing is damaged or every damaged copy was repaired,
1 when a damaged copy remains (no peer holds a good one: create the package
again, or upload the image again).`,
		Example: `  zman content-scrub
  zman --host zone2 content-scrub --package 1795296158 -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return scrubRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Package, "package", "", "only this package id (or image:NAME)")
	return cmd
}

func scrubRun(ctx context.Context, o *scrubOptions) error {
	return o.f.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		path := api.Prefix + "/content/scrub"
		if o.Package != "" {
			path += "?" + url.Values{"package": {o.Package}}.Encode()
		}
		// A scrub reads everything the server stores: bounded by Ctrl-C,
		// not by the client's request timeout.
		resp, err := c.Stream(ctx, http.MethodPost, path, nil, "")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var rep api.ScrubReport
		if err := decodeJSON(resp.Body, &rep); err != nil {
			return err
		}
		format, err := o.f.Format()
		if err != nil {
			return err
		}
		if format == ui.FormatJSON {
			if err := ui.JSON(o.f.IO.Out, rep); err != nil {
				return err
			}
		} else {
			out := o.f.IO.Out
			fmt.Fprintf(out, "Scrubbed server %s: %d packages, %d images, %s read in %s.\n", rep.Server, rep.Packages, rep.Images,
				fmt.Sprintf("%d bytes", rep.Bytes), rep.Finished.Sub(rep.Started).Round(1e6))
			if len(rep.Damaged) > 0 {
				rows := make([][]string, 0, len(rep.Damaged))
				for _, d := range rep.Damaged {
					state := "repaired"
					if !d.Repaired {
						state = "DAMAGED"
					}
					rows = append(rows, []string{d.Kind, d.Item, dash(strings.Join(d.Fragments, ", ")), state, dash(d.Error)})
				}
				if err := ui.Table(out, []string{"KIND", "ITEM", "FRAGMENTS", "STATE", "ERROR"}, rows); err != nil {
					return err
				}
			}
		}
		left := 0
		for _, d := range rep.Damaged {
			if !d.Repaired {
				left++
			}
		}
		if left > 0 {
			return errkind.New(errkind.Failure, "%d damaged copies on %s could not be repaired from a peer", left, rep.Server)
		}
		return nil
	})
}
