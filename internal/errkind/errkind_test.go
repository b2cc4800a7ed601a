package errkind_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"zonekit/internal/errkind"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil is success", nil, 0},
		{"plain error is failure", errors.New("boom"), 1},
		{"failure", errkind.New(errkind.Failure, "x"), 1},
		{"auth shares failure's status", errkind.New(errkind.Auth, "x"), 1},
		{"usage", errkind.New(errkind.Usage, "x"), 2},
		{"not found", errkind.New(errkind.NotFound, "x"), 3},
		{"exists", errkind.New(errkind.Exists, "x"), 4},
		{"unavailable", errkind.New(errkind.Unavailable, "x"), 5},
		{"pending", errkind.New(errkind.Pending, "x"), 6},
		{"partly failed", errkind.New(errkind.PartlyFailed, "x"), 7},
		{"busy", errkind.New(errkind.Busy, "x"), 8},
		{"wrong passphrase", errkind.New(errkind.Passphrase, "x"), 12},
		{"cancelled", errkind.New(errkind.Cancelled, "x"), 130},
		{"kind survives fmt wrapping", fmt.Errorf("export: %w", errkind.New(errkind.NotFound, "x")), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errkind.ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// Every kind must have a status listed in the help text scripts read.
func TestExitStatusHelpListsEveryCode(t *testing.T) {
	for k := errkind.Failure; k <= errkind.Unavailable; k++ {
		code := errkind.ExitCode(errkind.New(k, "x"))
		if code == 0 {
			t.Errorf("kind %d has no exit status", k)
		}
		if want := fmt.Sprintf("\n  %-4d ", code); !strings.Contains(errkind.ExitStatusHelp, want) {
			t.Errorf("ExitStatusHelp does not list status %d", code)
		}
	}
}

func TestOf(t *testing.T) {
	inner := errkind.New(errkind.NotFound, "device %q not found", "pc1")
	tests := []struct {
		name string
		err  error
		want errkind.Kind
	}{
		{"nil", nil, errkind.Failure},
		{"unclassified", fs.ErrNotExist, errkind.Failure},
		{"direct", inner, errkind.NotFound},
		{"wrapped once", fmt.Errorf("delete: %w", inner), errkind.NotFound},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", inner)), errkind.NotFound},
		{"outermost kind wins", errkind.Wrap(errkind.Usage, fmt.Errorf("ctx: %w", inner)), errkind.Usage},
		{"joined", errors.Join(errors.New("other"), inner), errkind.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errkind.Of(tt.err); got != tt.want {
				t.Errorf("Of(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	if errkind.Wrap(errkind.Auth, nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
	base := fs.ErrPermission
	err := errkind.Wrap(errkind.Auth, base)
	if !errors.Is(err, base) {
		t.Error("Wrap hides the wrapped error from errors.Is")
	}
	if err.Error() != base.Error() {
		t.Errorf("Wrap changed the message: %q", err.Error())
	}
	if !errkind.Is(err, errkind.Auth) || errkind.Is(err, errkind.Usage) || errkind.Is(nil, errkind.Failure) {
		t.Error("Is disagrees with the kind")
	}
}

func TestWithStatus(t *testing.T) {
	err := errkind.WithStatus(3, errkind.New(errkind.Usage, "bad flag"))
	if errkind.ExitCode(err) != 3 || errkind.Of(err) != errkind.Usage || !errkind.HasStatus(err) {
		t.Errorf("WithStatus: exit %d kind %v", errkind.ExitCode(err), errkind.Of(err))
	}
	if errkind.HasStatus(errkind.New(errkind.Auth, "x")) || errkind.WithStatus(2, nil) != nil {
		t.Error("HasStatus or WithStatus(nil) wrong")
	}
}
