package server

import (
	"context"
	"crypto/x509"

	"zonekit/internal/content"
	"zonekit/internal/pki"
	"zonekit/internal/server/packages"
	"zonekit/internal/zone"
)

// localContent is the package content this server holds, shared by the
// package routes (internal/server/packages), content replication and the
// scrub (internal/server/contentrepl): the repository and the ids of
// packages being built here.
type localContent struct {
	repo *content.Repo
	ids  *packages.IDs
}

func (s *Server) openContent() (*localContent, error) {
	repo, err := packages.OpenRepo(s.opts.Paths.ContentRepo(), s.db)
	if err != nil {
		return nil, err
	}
	return &localContent{repo: repo, ids: packages.NewIDs(repo, s.db.LastPackageID, s.now)}, nil
}

// isBuilding reports whether package id is being built here: its content
// may exist before its record, and replication must leave it alone.
func (p *localContent) isBuilding(id string) bool { return p.ids.Building(id) }

// packageHandlers serves the package routes over this server's state.
func (s *Server) packageHandlers() *packages.Handlers {
	return &packages.Handlers{Zone: s.db, Repo: s.pkg.repo, IDs: s.pkg.ids, CA: packageCA{s}, Content: packageContent{s},
		Self: s.self, ContentPort: s.opts.Config.ContentPort, Now: s.now, Log: s.log}
}

type packageCA struct{ s *Server }

func (c packageCA) ZoneCA() *x509.Certificate { return c.s.zoneCA() }

// CPKSigner is the zone CA where this server holds it; under an external
// zone CA the device CA, which agents trust (certificates.DeviceCA).
func (c packageCA) CPKSigner(ctx context.Context) (*pki.CA, error) {
	return c.s.devCA.LocalIssuer(ctx, "the signature (sign with it)")
}

type packageContent struct{ s *Server }

func (c packageContent) Locations(dev zone.Device, p zone.Package) (info, pack []string) {
	return c.s.packLocations(dev, p)
}
func (c packageContent) Changed() { c.s.content.Trigger() }
