package zone

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/store"
)

// commandNames returns the values of the package's Cmd* constants, read
// from its source so that a command added without a handler is caught.
func commandNames(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Cmd") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: constant %s is not a string literal", f, id.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					if other, dup := names[v]; dup {
						t.Errorf("constants %s and %s both name command %q", other, id.Name, v)
					}
					names[v] = id.Name
				}
			}
		}
	}
	if len(names) < 40 {
		t.Fatalf("found only %d command constants: the source scan is broken", len(names))
	}
	return names
}

func TestEveryCommandHasOneHandler(t *testing.T) {
	table, err := buildCommands()
	if err != nil {
		t.Fatal(err)
	}
	names := commandNames(t)
	for v, c := range names {
		if _, ok := table[v]; !ok {
			t.Errorf("command %s (%q) has no handler", c, v)
		}
	}
	for v := range table {
		if _, ok := names[v]; !ok {
			t.Errorf("handler registered for %q, which no Cmd constant names", v)
		}
	}

	// Each handler is wired to the area that applies its command: given
	// no data, it fails to decode rather than saying its area ignores it.
	st, err := store.Open(filepath.Join(t.TempDir(), "zone.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for v, e := range table {
		err := st.View(func(tx *bolt.Tx) error {
			_, err := e.apply(tx, Command{Name: v, Time: time.Now(), Data: []byte("!")})
			return err
		})
		if err == nil || strings.Contains(err.Error(), "not applied by its area") {
			t.Errorf("%s given bad data: %v; want a decoding error", v, err)
		}
	}
}

func TestAuditedCommands(t *testing.T) {
	unaudited := []string{CmdDeviceContact, CmdServerStart, CmdOCSContact, CmdOCSInventory,
		CmdPackageNotify, CmdPackageStatus, CmdContentState, CmdContentServer}
	for name, e := range commands() {
		want := true
		for _, u := range unaudited {
			if u == name {
				want = false
			}
		}
		if e.audited != want {
			t.Errorf("%s audited = %v; want %v", name, e.audited, want)
		}
	}
}
