package pbserv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/pki"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/policy"
)

// zoneWork asks this server's zone server for the preboot work assigned
// to a machine, authenticated by the server's own certificate (which the
// zone CA issued for server-to-server mutual TLS).
type zoneWork struct{ c *client.Client }

func (z *zoneWork) Work(ctx context.Context, mac string) (policy.Work, error) {
	var w api.PrebootWork
	err := z.c.Get(ctx, api.Prefix+"/preboot/work/"+url.PathEscape(mac), &w)
	if client.IsStatus(err, http.StatusNotFound) {
		return policy.Work{Action: "none"}, nil
	}
	if err != nil {
		return policy.Work{}, fmt.Errorf("zone server: %w", err)
	}
	dev := w.DeviceName
	if dev == "" {
		dev = w.Device
	}
	return policy.Work{Action: w.Action, Image: w.Image, Menu: w.Menu, Device: dev}, nil
}

// workSource is where the imaging service learns a machine's work: the
// zone server of this home. Without a zone here (an imaging satellite
// with no zone server), every machine gets the default menu, and the
// reason is printed.
func workSource(o *Options) imaging.WorkSource {
	p := config.Paths{Home: config.ResolveHome(o.Home)}
	src, err := newZoneWork(p)
	if err != nil {
		fmt.Fprintf(o.IO.ErrOut, "pbserv: no zone work for preboot clients (%v); every machine gets the default menu\n", err)
		return nil
	}
	return src
}

func newZoneWork(p config.Paths) (*zoneWork, error) {
	if err := p.CheckZone(); err != nil {
		return nil, err
	}
	cfg, err := config.LoadServer(p)
	if err != nil {
		return nil, err
	}
	ca, err := pki.ReadCertFile(p.CACert())
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(p.ServerCert(), p.ServerKey())
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	c, err := client.New(client.Options{
		BaseURL:    "https://" + net.JoinHostPort("localhost", strconv.Itoa(cfg.Port)),
		CA:         ca,
		ClientCert: &cert,
		Timeout:    5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return &zoneWork{c: c}, nil
}
