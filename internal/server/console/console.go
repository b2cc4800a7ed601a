// Package console is the zone's web console: the zone at a glance in a
// browser, served by every zone server on its HTTPS port under /console/
// (docs/console.md). Pages are rendered on the server with html/template
// (every value escaped by its context), charts are SVG drawn on the
// server, and the assets are embedded: a page never asks another host for
// anything and needs no JavaScript.
//
// Administrators sign in with the same password check (and slow-down of
// repeated failures) as the API; a session lives in this server's memory
// behind a Secure, HttpOnly, SameSite=Strict cookie, and every form
// carries the session's CSRF token. Changes go through the API's own
// routes as the signed-in administrator, so they are the same zone
// commands, with the same checks and audit records, as zman's.
package console

import (
	"embed"

	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/preboot/imaging"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

const (
	cookieName      = "__Host-zkconsole"
	loginCookieName = "__Host-zkconsole-login"
	maxForm         = 64 << 10
)

// Backend is what the console asks of the zone server's core.
type Backend interface {
	// Login checks an administrator's name and password as the API's
	// password sign-in does and returns the administrator's name.
	Login(r *http.Request, name, password string) (string, error)
	// Call runs the API route method path as administrator actor (JSON
	// in and out, either may be nil), through the same handlers,
	// commands and audit as a zman request; its error is the API's.
	Call(r *http.Request, actor, method, path string, in, out any) error
	// StaleSince is when this server's copy of the zone stopped
	// following the leader, "" when it is current.
	StaleSince() string
}

// Zone is the store's reads the console makes directly (the large
// lists, where going through JSON would cost too much).
type Zone interface {
	Zone() (zone.Zone, error)
	Devices() ([]zone.Device, error)
	ResolveDevice(ref string) (zone.Device, error)
	DevicePackages(dev string) ([]zone.Deployment, []zone.Package, error)
	Groups() ([]zone.Group, error)
	Inventory(id string) (*zone.Inventory, error)
	Deployments(pkg string) ([]zone.Deployment, error)
	DeploymentStatusCounts() (map[string]zone.StatusCounts, error)
}

// Handlers serves the console.
type Handlers struct {
	Zone    Zone
	Backend Backend
	// Images lists the preboot images this server holds (its imaging
	// service's directory, with each image's size and SHA-256); nil when
	// the server has none to show.
	Images func() ([]imaging.Image, error)
	Now    func() time.Time
	Log    *slog.Logger

	sessions *sessions
	devcache *deviceCache
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// Register mounts the console under Prefix, outside the API's
// authentication: the console signs its users in itself.
func (h *Handlers) Register(r httpapi.Routes) {
	h.init()
	r.Open(Prefix, func(w http.ResponseWriter, req *http.Request, _ string) error {
		h.ServeHTTP(w, req)
		return nil
	})
	r.Open("GET /console", func(w http.ResponseWriter, req *http.Request, _ string) error {
		http.Redirect(w, req, Prefix, http.StatusMovedPermanently)
		return nil
	})
}

func (h *Handlers) init() {
	if h.mux != nil {
		return
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Log == nil {
		h.Log = slog.New(slog.DiscardHandler)
	}
	h.sessions = newSessions(h.Now)
	h.devcache = newDeviceCache()
	h.pages = parsePages()
	m := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	m.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", cacheAssets(http.FileServerFS(assets))))
	m.HandleFunc("GET /console/login", h.loginPage)
	m.HandleFunc("POST /console/login", h.login)
	m.HandleFunc("POST /console/logout", h.authed(h.logout))
	m.HandleFunc("GET /console/{$}", h.authed(h.overview))
	m.HandleFunc("GET /console/devices", h.authed(h.devices))
	m.HandleFunc("GET /console/devices/{ref}", h.authed(h.device))
	m.HandleFunc("GET /console/packages", h.authed(h.packages))
	m.HandleFunc("GET /console/packages/{id}", h.authed(h.pkg))
	m.HandleFunc("POST /console/packages/{id}/assign", h.authed(h.assign))
	m.HandleFunc("POST /console/packages/{id}/activate", h.authed(h.activate))
	m.HandleFunc("POST /console/packages/{id}/validate", h.authed(h.validate))
	m.HandleFunc("GET /console/certificates", h.authed(h.certificates))
	m.HandleFunc("POST /console/certificates/cancel", h.authed(h.cancelChange))
	m.HandleFunc("GET /console/preboot", h.authed(h.preboot))
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		h.errorPage(w, r, nil, http.StatusNotFound, "No such page.")
	})
	h.mux = m
}

// ServeHTTP serves one console request, with the headers that keep the
// browser from loading anything from elsewhere, framing the console, or
// caching its pages.
func (h *Handlers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

func cacheAssets(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// request is what a signed-in page handler gets.
type request struct {
	admin string
	csrf  string
	token string
}

// authed runs h for a signed-in administrator. Without a live session a
// page is a redirect to the sign-in form; a change is refused. Every
// POST must carry the session's CSRF token.
func (h *Handlers) authed(next func(http.ResponseWriter, *http.Request, request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var tok string
		if c, err := r.Cookie(cookieName); err == nil {
			tok = c.Value
		}
		ses, ok := h.sessions.get(tok)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			h.errorPage(w, r, nil, http.StatusForbidden, "Your session has expired or you are signed out: sign in again, then repeat the change.")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		req := request{admin: ses.admin, csrf: ses.csrf, token: tok}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				h.errorPage(w, r, &req, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), ses.csrf) {
				h.errorPage(w, r, &req, http.StatusForbidden, "The form's security token is missing or stale (a page from an old session, or a request from another site): reload the page and try again.")
				return
			}
		}
		next(w, r, req)
	}
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

type loginData struct {
	Token   string
	Next    string
	Name    string
	Message string
}

// loginPage gives the form with a fresh token, also set as a cookie: a
// sign-in must send both (a site that cannot read the cookie cannot sign
// the browser in to an account of its choosing).
func (h *Handlers) loginPage(w http.ResponseWriter, r *http.Request) {
	h.renderLogin(w, r, http.StatusOK, loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (h *Handlers) renderLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	d.Token = randomToken()
	setCookie(w, loginCookieName, d.Token, 600)
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, status, "login", page{Title: "Sign in", Data: d, Stale: h.Backend.StaleSince()})
}

// safeNext keeps a redirect after sign-in inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func (h *Handlers) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, nil, http.StatusBadRequest, "The form could not be read.")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	c, err := r.Cookie(loginCookieName)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), c.Value) {
		h.renderLogin(w, r, http.StatusForbidden, loginData{Next: next,
			Message: "The sign-in form expired or came from another site: try again."})
		return
	}
	name := r.PostForm.Get("name")
	admin, err := h.Backend.Login(r, name, r.PostForm.Get("password"))
	if err != nil {
		if errkind.Of(err) != errkind.Auth {
			h.Log.Error("console sign-in failed", "err", err)
		}
		h.renderLogin(w, r, http.StatusUnauthorized, loginData{Next: next, Name: name,
			Message: "Wrong administrator name or password."})
		return
	}
	tok, _ := h.sessions.create(admin)
	setCookie(w, loginCookieName, "", -1)
	setCookie(w, cookieName, tok, int(MaxAge/time.Second))
	h.Log.Info("console sign-in", "admin", admin, "remote", httpapi.ClientIP(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handlers) logout(w http.ResponseWriter, r *http.Request, req request) {
	h.sessions.remove(req.token)
	setCookie(w, cookieName, "", -1)
	h.Log.Info("console sign-out", "admin", req.admin)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// page is what the layout shows around a page's own data.
type page struct {
	Title string
	Nav   string
	Admin string
	CSRF  string
	Stale string
	Flash string
	Data  any
}

func (h *Handlers) page(req request, nav, title string, data any) page {
	return page{Title: title, Nav: nav, Admin: req.admin, CSRF: req.csrf, Stale: h.Backend.StaleSince(), Data: data}
}

func (h *Handlers) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := h.pages[name]
	if !ok {
		panic("console: no template " + name)
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		h.Log.Error("console page failed", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(buf.String()))
}

type errorData struct{ Message string }

func (h *Handlers) errorPage(w http.ResponseWriter, r *http.Request, req *request, status int, msg string) {
	p := page{Title: http.StatusText(status), Data: errorData{msg}, Stale: h.Backend.StaleSince()}
	if req != nil {
		p.Admin, p.CSRF = req.admin, req.csrf
	}
	h.render(w, r, status, "error", p)
}

// failed shows an error from the zone (an API answer, a store read).
func (h *Handlers) failed(w http.ResponseWriter, r *http.Request, req request, err error) {
	status := http.StatusInternalServerError
	switch errkind.Of(err) {
	case errkind.NotFound:
		status = http.StatusNotFound
	case errkind.Usage, errkind.Refused, errkind.Invalid, errkind.Exists:
		status = http.StatusConflict
	case errkind.Unavailable:
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		h.Log.Error("console request failed", "path", r.URL.Path, "err", err)
	}
	h.errorPage(w, r, &req, status, err.Error())
}

// allDevices is every device, in no particular order, to be read only:
// from the cache when the zone offers its records (zone.DB does).
func (h *Handlers) allDevices() ([]zone.Device, error) {
	if rd, ok := h.Zone.(DeviceRecords); ok {
		return h.devcache.get(rd)
	}
	return h.Zone.Devices()
}

func isNotFound(err error) bool { return err != nil && errkind.Of(err) == errkind.NotFound }
