package server

import (
	"net/url"
	"slices"
	"strings"

	"zonekit/internal/api"
	"zonekit/internal/server/satellites"
	"zonekit/internal/zone"
)

// packLocations says where dev fetches package p, in the order its agent
// tries them (api.DevicePackage.InfoLocations/PackLocations): the content
// satellites closest to the device first, then the activation's own
// locations when they are not Primary Servers, then the Primary Servers
// that hold the package in closest-server-rule order (primaryLocations). Info files and manifests need HTTPS, so
// a satellite is an info location only when it serves HTTPS too (its
// Authentication role URL); fragments travel over plain HTTP from its
// content URL. Locations are OCS-style host[:port]/path.
func (s *Server) packLocations(dev zone.Device, p zone.Package) (info, pack []string) {
	if p.Activation == nil {
		return nil, nil
	}
	add := func(list []string, loc string) []string {
		loc = strings.TrimRight(loc, "/")
		if loc == "" || slices.Contains(list, loc) {
			return list
		}
		return append(list, loc)
	}
	for _, sat := range satellites.Closest(s.db, dev.Address, zone.SatelliteContent) {
		if u, ok := locationOf(sat.Satellite.ContentURL, "http"); ok {
			pack = add(pack, u)
		}
		if slices.Contains(sat.Satellite.Roles, zone.SatelliteAuthentication) {
			if u, ok := locationOf(sat.Satellite.AuthURL, "https"); ok {
				info = add(info, u+api.ContentPrefix)
			}
		}
	}
	pi, pp := s.primaryLocations(dev, p)
	// The activation's location is the admin's choice (a site's own web
	// server): it comes before the Primary Servers. When it names a
	// Primary Server, the closest-server rules order it among them.
	if !slices.Contains(pi, strings.TrimRight(p.Activation.InfoLocation, "/")) {
		info = add(info, p.Activation.InfoLocation)
	}
	if !slices.Contains(pp, strings.TrimRight(p.Activation.PackLocation, "/")) {
		pack = add(pack, p.Activation.PackLocation)
	}
	for _, l := range pi {
		info = add(info, l)
	}
	for _, l := range pp {
		pack = add(pack, l)
	}
	return info, pack
}

// locationOf turns scheme://HOST[:PORT]/path into HOST[:PORT]/path, or
// says no when the URL has another scheme.
func locationOf(raw, scheme string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != scheme || u.Host == "" {
		return "", false
	}
	return u.Host + strings.TrimRight(u.Path, "/"), true
}
