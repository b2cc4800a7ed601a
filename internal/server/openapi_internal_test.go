package server

import (
	"bytes"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var listRoutes = flag.Bool("list-routes", false, "print the API's registered routes")

// muxPatterns lists the patterns registered on mux. net/http has no API
// for that, so it walks the mux's routing tree (fields tree, pattern.str,
// children, multiChild, emptyChild of Go's net/http): reading what the
// running server registered, whoever registered it, rather than parsing
// source files. If net/http's internals change, the walk finds nothing
// and the test fails saying so.
func muxPatterns(t *testing.T, mux *http.ServeMux) []string {
	t.Helper()
	seen := map[string]bool{}
	var walk func(n reflect.Value)
	walk = func(n reflect.Value) {
		if n.Kind() == reflect.Pointer {
			if n.IsNil() {
				return
			}
			n = n.Elem()
		}
		if p := n.FieldByName("pattern"); p.IsValid() && !p.IsNil() {
			seen[p.Elem().FieldByName("str").String()] = true
		}
		children := n.FieldByName("children")
		if s := children.FieldByName("s"); s.IsValid() {
			for i := 0; i < s.Len(); i++ {
				walk(s.Index(i).FieldByName("value"))
			}
		}
		if m := children.FieldByName("m"); m.IsValid() {
			for it := m.MapRange(); it.Next(); {
				walk(it.Value())
			}
		}
		for _, f := range []string{"multiChild", "emptyChild"} {
			if c := n.FieldByName(f); c.IsValid() {
				walk(c)
			}
		}
	}
	tree := reflect.ValueOf(mux).Elem().FieldByName("tree")
	if !tree.IsValid() {
		t.Fatal("net/http.ServeMux has no routing tree field any more: update muxPatterns")
	}
	walk(tree)
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	if len(out) < 20 {
		t.Fatalf("found %d routes on the API mux; net/http's internals changed? update muxPatterns", len(out))
	}
	return out
}

// openAPIRoutes reads docs/api/openapi.yaml as "METHOD PATH" entries.
func openAPIRoutes(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(false)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("docs/api/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("docs/api/openapi.yaml is OpenAPI %q; want 3.x", doc.OpenAPI)
	}
	var out []string
	for path, ops := range doc.Paths {
		for method, v := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
			default:
				continue // parameters, summary, ...
			}
			op, _ := v.(map[string]any)
			if op["summary"] == nil || op["responses"] == nil {
				t.Errorf("openapi.yaml: %s %s has no summary or responses", strings.ToUpper(method), path)
			}
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// docPattern maps a mux pattern to OpenAPI's form: a method (none: the
// route takes any, documented as POST, the only one the OCS agents and
// the raft upgrade use), {name...} and {$} wildcards as plain segments.
func docPattern(p string) string {
	method, path, ok := strings.Cut(p, " ")
	if !ok {
		method, path = "POST", p
	}
	path = strings.ReplaceAll(path, "...}", "}")
	path = strings.TrimSuffix(path, "{$}")
	return method + " " + path
}

// TestOpenAPIDocumentsEveryRoute: docs/api/openapi.yaml documents every
// route the zone server's API mux registers, and no route it does not
// (the catch-all "/" that answers 404 aside, and the web console's HTML
// pages under /console, docs/console.md); each path parameter of a route
// is declared.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	now := time.Now()
	clock.Store(&now)
	s, _ := newClockedServer(t, &clock, &bytes.Buffer{})
	var registered []string
	for _, p := range muxPatterns(t, s.apiMux) {
		if p == "/" || strings.HasPrefix(strings.TrimPrefix(p, "GET "), "/console") {
			continue
		}
		registered = append(registered, docPattern(p))
	}
	slices.Sort(registered)
	registered = slices.Compact(registered)
	if *listRoutes {
		t.Log("\n" + strings.Join(registered, "\n"))
	}
	documented := openAPIRoutes(t)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in docs/api/openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("docs/api/openapi.yaml documents %s, which the server does not register", d)
		}
	}
	checkPathParameters(t)
}

// checkPathParameters: every {name} in a documented path is declared as
// a path parameter of that path or its operations.
func checkPathParameters(t *testing.T) {
	data, _ := os.ReadFile(filepath.Join("..", "..", "docs", "api", "openapi.yaml"))
	var doc struct {
		Paths map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	wild := regexp.MustCompile(`\{([^}]+)\}`)
	for path, node := range doc.Paths {
		var raw map[string]any
		node.Decode(&raw)
		declared := map[string]bool{}
		collect := func(params any) {
			list, _ := params.([]any)
			for _, p := range list {
				m, _ := p.(map[string]any)
				if m["in"] == "path" {
					declared[m["name"].(string)] = true
				}
			}
		}
		collect(raw["parameters"])
		for _, op := range raw {
			if m, ok := op.(map[string]any); ok {
				collect(m["parameters"])
			}
		}
		for _, m := range wild.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("openapi.yaml: %s does not declare its path parameter %q", path, m[1])
			}
		}
	}
}
