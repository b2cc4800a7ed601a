package server

import (
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"zonekit/internal/agentpack"
	"zonekit/internal/server/contentrepl"
)

// setupRoutes publishes the agent install packs (zconfigure -c
// CreateExtractorPacks, RebuildCustomPacks): a page listing them with their
// SHA-256, SHA256SUMS and manifest.json per set, and the files. Public and
// read-only, like the reference's zenworks-setup page; only files a
// manifest names are served, so nothing else under data/ can be reached.
func (s *Server) setupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /zenworks-setup", s.setupPage)
	mux.HandleFunc("GET /zenworks-setup/{$}", s.setupPage)
	mux.HandleFunc("GET /zenworks-setup/packs.json", s.setupJSON)
	mux.HandleFunc("GET /zenworks-setup/{file}", func(w http.ResponseWriter, r *http.Request) {
		s.setupFile(w, r, agentpack.DefaultDir(s.opts.Paths), r.PathValue("file"))
	})
	mux.HandleFunc("GET /zenworks-setup/custom/{name}/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !agentpack.ValidName(name) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		s.setupFile(w, r, agentpack.CustomDir(s.opts.Paths, name), r.PathValue("file"))
	})
}

// packSets reads the manifests of the default and the custom packs.
func (s *Server) packSets() []contentrepl.PackSet {
	var out []contentrepl.PackSet
	if m, err := agentpack.ReadManifest(agentpack.DefaultDir(s.opts.Paths)); err == nil {
		out = append(out, contentrepl.PackSet{Path: "/zenworks-setup/", Pack: m})
	}
	ents, _ := os.ReadDir(filepath.Join(agentpack.Dir(s.opts.Paths), "custom"))
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		if !e.IsDir() || !agentpack.ValidName(e.Name()) {
			continue
		}
		if m, err := agentpack.ReadManifest(agentpack.CustomDir(s.opts.Paths, e.Name())); err == nil {
			out = append(out, contentrepl.PackSet{Path: "/zenworks-setup/custom/" + e.Name() + "/", Pack: m})
		}
	}
	return out
}

func (s *Server) setupJSON(w http.ResponseWriter, r *http.Request) {
	sets := s.packSets()
	if sets == nil {
		sets = []contentrepl.PackSet{}
	}
	writeJSON(w, http.StatusOK, sets)
}

var setupTemplate = template.Must(template.New("setup").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>zonekit agent packs: {{.Zone}}</title></head>
<body>
<h1>zonekit agent install packs for zone {{.Zone}}</h1>
{{if not .Sets}}<p>No packs have been built yet. On the zone server: <code>zconfigure -c CreateExtractorPacks</code></p>{{end}}
{{range .Sets}}<h2>{{if .Pack.Name}}Custom pack {{.Pack.Name}}{{else}}Default packs{{end}}</h2>
<p>zac {{.Pack.Version}}, built {{.Pack.Built.Format "2006-01-02 15:04 UTC"}}; zone CA SHA-256 {{.Pack.CAFingerprint}}{{if .Pack.RegistrationKey}}; registers with a registration key{{end}}.
<a href="{{.Path}}SHA256SUMS">SHA256SUMS</a>, <a href="{{.Path}}manifest.json">manifest.json</a></p>
<table border="1" cellpadding="4">
<tr><th>File</th><th>Platform</th><th>Size</th><th>SHA-256</th></tr>
{{$p := .Path}}{{range .Pack.Files}}<tr><td><a href="{{$p}}{{.Name}}">{{.Name}}</a></td><td>{{.Platform}}</td><td>{{.Size}}</td><td><code>{{.SHA256}}</code></td></tr>
{{end}}</table>
{{end}}
<p>Linux, as root (a login script may run it at every logon; a second run does nothing):
<code>sh zonekit-agent-linux-amd64.sh -q</code> or <code>dpkg -i zonekit-agent_VERSION_amd64.deb</code>.
Windows: unzip and run <code>install.cmd</code>.</p>
</body></html>
`))

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if err := setupTemplate.Execute(w, map[string]any{"Zone": s.zone.Name, "Sets": s.packSets()}); err != nil {
		s.log.Warn("setup page", "err", err)
	}
}

func (s *Server) setupFile(w http.ResponseWriter, r *http.Request, dir, file string) {
	m, err := agentpack.ReadManifest(dir)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	known := file == agentpack.ManifestFile || file == agentpack.SumsFile
	for _, f := range m.Files {
		known = known || f.Name == file
	}
	if !known {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	switch file {
	case agentpack.ManifestFile:
		h.Set("Content-Type", "application/json")
	case agentpack.SumsFile:
		h.Set("Content-Type", "text/plain; charset=utf-8")
	default:
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", file))
	}
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
