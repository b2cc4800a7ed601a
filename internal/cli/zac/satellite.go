package zac

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/satellite"
)

// SatelliteOptions are the satellite-serve command's inputs.
type SatelliteOptions struct {
	*Options
	Listen  string
	Parents []string
	Dir     string
}

func newSatelliteServe(opts *Options) *cobra.Command {
	o := &SatelliteOptions{Options: opts}
	cmd := &cobra.Command{
		Use:     "satellite-serve [--parent URL] [--listen ADDR]",
		Aliases: []string{"sats"},
		Short:   "Run this registered device as a content satellite for its site",
		Long: `Serve package fragments to the agents of a site over plain HTTP, in the
layout of a zone server's content port (/content/ID/ID-n), so that a
package activated with this satellite as its fragment location
(host:port/content) is fetched from here. A fragment not here yet is
pulled from the first --parent that has it (a zone server's content port
or another satellite: tiers) and checked against the SHA-256 in the
package's manifest, which comes from the zone over HTTPS (the device's
trust store). Fragments are kept by digest in --dir, so an unchanged
fragment of a new package version does not travel again, and an
interrupted pull continues where it stopped. What is here is served even
while the parent is stopped.

Without --parent, the parent the administrator set with 'zman
satellite-add-role DEVICE --parent URL' is used. Runs until SIGTERM or
Ctrl-C.`,
		Example: `  zac satellite-serve --listen :8080 --parent http://zone1.acme.example:80/content
  zac sats --listen :8080 --parent http://sat-hq.acme.example:8080/content --parent http://zone1.acme.example/content`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return satelliteRun(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", ":8080", "address to serve fragments on")
	f.StringArrayVar(&o.Parents, "parent", nil, "content URL to pull from, http://HOST:PORT/content (repeatable, tried in order; default the parent set in the zone)")
	f.StringVar(&o.Dir, "dir", "", "cache directory (default HOME/satellite-cache)")
	return cmd
}

func satelliteRun(ctx context.Context, o *SatelliteOptions) error {
	a := o.Agent()
	st, err := a.State()
	if err != nil {
		return err
	}
	if len(o.Parents) == 0 {
		// The parent the administrator set (zman satellite-add-role --parent).
		sat, err := a.SatelliteConfig(ctx)
		if err != nil {
			return err
		}
		if sat.Parent == "" {
			return errkind.New(errkind.Usage, "no parent to pull from: pass --parent URL or set one with 'zman satellite-add-role %s --parent URL'", sat.DeviceName)
		}
		o.Parents = []string{sat.Parent}
	}
	cas, err := a.TrustedCAs()
	if err != nil {
		return err
	}
	dir := o.Dir
	if dir == "" {
		dir = filepath.Join(a.Home, "satellite-cache")
	}
	manifests := func(ctx context.Context, id string) ([]byte, error) {
		var errs []error
		for _, s := range st.Servers {
			c, err := client.New(client.Options{BaseURL: s, CA: cas[0], MoreCAs: cas[1:], Timeout: 30 * time.Second})
			if err != nil {
				return nil, err
			}
			var m json.RawMessage
			err = c.Get(ctx, api.ContentPrefix+"/"+id+"/manifest.json", &m)
			c.Close()
			if err == nil {
				return m, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	log := slog.New(slog.NewTextHandler(o.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cache := &satellite.Cache{Dir: dir, Parents: o.Parents, Manifests: manifests, Log: log}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("listen on %s: %w", o.Listen, err))
	}
	srv := &http.Server{Handler: cache.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(o.IO.Out, "Content satellite of zone %s serving %s on %s (parents %v).\n", st.ZoneName, dir, ln.Addr(), o.Parents)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
