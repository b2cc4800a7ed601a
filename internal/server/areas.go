package server

import (
	"net/http"

	"zonekit/internal/server/httpapi"
)

type adminRoute = func(pattern string, h func(w http.ResponseWriter, r *http.Request, actor string) error)

// areaRoutes is how the areas under internal/server mount their routes
// (httpapi.Routes) behind this server's authentication.
type areaRoutes struct {
	s     *Server
	mux   *http.ServeMux
	admin adminRoute
}

func (a areaRoutes) Admin(pattern string, h httpapi.Handler) { a.admin(pattern, h) }

func (a areaRoutes) ServerOrAdmin(pattern string, h httpapi.Handler) {
	a.mux.HandleFunc(pattern, a.s.wrap(a.s.serverOrAdmin(h)))
}

func (a areaRoutes) Open(pattern string, h httpapi.Handler) {
	a.mux.HandleFunc(pattern, a.s.wrap(func(w http.ResponseWriter, r *http.Request) error { return h(w, r, "") }))
}

func (a areaRoutes) ZoneServer(r *http.Request) bool { return a.s.isZoneServer(r) }
