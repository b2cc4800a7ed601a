package packages

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

// IDs in one second still differ, and move past the zone's last id and
// the repository's directories; an id is building until built.
func TestIDs(t *testing.T) {
	repo, err := content.NewRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Unix(1800000000, 0) }
	last := uint64(0)
	ids := NewIDs(repo, func() (uint64, error) { return last, nil }, now)
	a, err := ids.next()
	if err != nil || a != "1800000000" {
		t.Fatalf("first id %q %v", a, err)
	}
	b, _ := ids.next()
	if b != "1800000001" {
		t.Fatalf("second id in the same second %q", b)
	}
	if !ids.Building(a) || !ids.Building(b) {
		t.Fatal("handed-out ids are not building")
	}
	ids.built(a)
	if ids.Building(a) {
		t.Fatal("a built id is still building")
	}
	last = 1800000005
	if err := os.Mkdir(filepath.Join(repo.Dir(), "1800000006"), 0o750); err != nil {
		t.Fatal(err)
	}
	if c, _ := ids.next(); c != "1800000007" {
		t.Fatalf("id past the zone's 1800000005 and the repository's 1800000006: %q", c)
	}
}

type known map[string]bool

func (k known) Package(id string) (zone.Package, error) {
	if !k[id] {
		return zone.Package{}, errkind.New(errkind.NotFound, "package %q not found", id)
	}
	return zone.Package{ID: id}, nil
}

// A package directory the zone has no record of (a crash between a
// build's rename and its record) is removed when the repository opens.
func TestOpenRepoRemovesUnrecorded(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"1800000000", "1800000001"} {
		if err := os.Mkdir(filepath.Join(dir, id), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := OpenRepo(dir, known{"1800000000": true})
	if err != nil {
		t.Fatal(err)
	}
	if !repo.Exists("1800000000") || repo.Exists("1800000001") {
		t.Fatalf("after opening: recorded %v, unrecorded %v", repo.Exists("1800000000"), repo.Exists("1800000001"))
	}
}
