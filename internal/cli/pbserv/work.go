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
	"zonekit/internal/errkind"
	"zonekit/internal/pki"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/preboot/ptls"
)

// zoneWork asks this server's zone server for the preboot work assigned
// to a machine, authenticated by the server's own certificate (which the
// zone CA issued for server-to-server mutual TLS), and checks
// administrators' credentials by presenting them to the zone server.
type zoneWork struct {
	c     *client.Client
	base  string
	tls   ptls.Material
	admin func(authz string) (*client.Client, error)
}

// Admin presents a request's credential to the zone server: an
// administrator's Basic credential or stored token reads the zone.
func (z *zoneWork) Admin(ctx context.Context, authz string) (string, error) {
	c, err := z.admin(authz)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var who struct {
		Name string `json:"name"`
	}
	if err := c.Get(ctx, api.Prefix+"/zone", &who); err != nil {
		if client.IsStatus(err, http.StatusUnauthorized) || client.IsStatus(err, http.StatusForbidden) {
			return "", fmt.Errorf("not a zone administrator's credential")
		}
		return "", fmt.Errorf("zone server: %w", err)
	}
	if user, _, ok := parseBasic(authz); ok {
		return user, nil
	}
	return "administrator (stored credential)", nil
}

func parseBasic(authz string) (string, string, bool) {
	r := http.Request{Header: http.Header{"Authorization": {authz}}}
	return r.BasicAuth()
}

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
	return policy.Work{Action: w.Action, Image: w.Image, Menu: w.Menu, Device: dev, Status: w.Status, Session: w.Session, Clients: w.Clients, Wait: w.Wait}, nil
}

// Report records an imaging task's progress in the zone, as this server.
func (z *zoneWork) Report(ctx context.Context, mac string, r imaging.Report) error {
	var out api.PrebootWork
	err := z.c.Post(ctx, api.Prefix+"/preboot/work/"+url.PathEscape(mac)+"/report", api.PrebootReport{Status: r.Status, Bytes: r.Bytes, Error: r.Error}, &out)
	if client.IsStatus(err, http.StatusConflict) {
		return errkind.Wrap(errkind.Exists, err)
	}
	return err
}

// Tasks lists the zone's imaging tasks (pbserv status), as this server.
func (z *zoneWork) Tasks(ctx context.Context) ([]api.PrebootWork, error) {
	var works []api.PrebootWork
	if err := z.c.Get(ctx, api.Prefix+"/preboot/work", &works); err != nil {
		return nil, err
	}
	tasks := works[:0]
	for _, w := range works {
		if w.Status != "" {
			tasks = append(tasks, w)
		}
	}
	return tasks, nil
}

// zoneOf is where the imaging service learns a machine's work and checks
// credentials: the zone server of this home. Without a zone here, every
// machine gets the default menu and nobody gets images, and the reason is
// printed.
func zoneOf(o *Options) *zoneWork {
	p := config.Paths{Home: config.ResolveHome(o.Home)}
	src, err := newZoneWork(p)
	if err != nil {
		fmt.Fprintf(o.IO.ErrOut, "pbserv: no zone here (%v): every machine gets the default menu, and images are refused\n", err)
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
	base := "https://" + net.JoinHostPort("localhost", strconv.Itoa(cfg.Port))
	c, err := client.New(client.Options{
		BaseURL:    base,
		CA:         ca,
		ClientCert: &cert,
		Timeout:    5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	admin := func(authz string) (*client.Client, error) {
		return client.New(client.Options{BaseURL: base, CA: ca, Timeout: 10 * time.Second,
			Auth: func(r *http.Request) { r.Header.Set("Authorization", authz) }})
	}
	return &zoneWork{c: c, base: base, tls: ptls.Material{CA: ca, Cert: cert}, admin: admin}, nil
}
