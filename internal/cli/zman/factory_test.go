package zman

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

// confirmer answers every confirmation with ok and counts the questions.
type confirmer struct {
	ui.Prompter
	ok    bool
	asked []string
}

func (c *confirmer) Confirm(m string, _ bool) (bool, error) {
	c.asked = append(c.asked, m)
	return c.ok, nil
}

func TestConfirmDelete(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		yes      bool
		answer   bool
		kind     errkind.Kind // of the error; -1 for none
		asks     bool
	}{
		{"--yes deletes without asking", false, true, false, -1, false},
		{"no terminal and no --yes refuses at once", false, false, true, errkind.Usage, false},
		{"terminal, answered yes", true, false, true, -1, true},
		{"terminal, answered no", true, false, false, errkind.Cancelled, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, _, _, _ := ui.Test()
			io.InTTY, io.ErrTTY = tt.terminal, tt.terminal
			p := &confirmer{ok: tt.answer}
			f := &Factory{IO: io, Prompter: p, Global: &Global{}}
			err := f.confirmDelete(tt.yes, "device pc1")
			switch {
			case tt.kind == -1 && err != nil:
				t.Fatalf("err = %v", err)
			case tt.kind != -1 && (err == nil || errkind.Of(err) != tt.kind):
				t.Fatalf("err = %v, want kind %d", err, tt.kind)
			}
			if tt.kind == errkind.Usage && !strings.Contains(err.Error(), "--yes") {
				t.Errorf("the refusal does not name --yes: %v", err)
			}
			if asked := len(p.asked) > 0; asked != tt.asks {
				t.Errorf("asked %v, want %v", p.asked, tt.asks)
			}
		})
	}
}

func TestRefuseOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zone.zbk")
	if err := refuseOverwrite(path, false); err != nil {
		t.Fatalf("new file: %v", err)
	}
	os.WriteFile(path, []byte("old backup"), 0o600)
	err := refuseOverwrite(path, false)
	if errkind.Of(err) != errkind.Exists || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("existing file: %v, want exists naming --force", err)
	}
	if err := refuseOverwrite(path, true); err != nil {
		t.Fatalf("--force: %v", err)
	}
}
