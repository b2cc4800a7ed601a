package packages

import (
	"strconv"
	"sync"
	"time"

	"zonekit/internal/content"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

// OpenRepo opens the content repository in dir and removes what may not
// be served: builds and removals interrupted by a crash leave staging
// directories, and a crash between a build's rename and its record a
// package that the zone does not know.
func OpenRepo(dir string, z interface {
	Package(id string) (zone.Package, error)
}) (*content.Repo, error) {
	repo, err := content.NewRepo(dir)
	if err != nil {
		return nil, err
	}
	if err := repo.Sweep(); err != nil {
		return nil, err
	}
	ids, err := repo.IDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := z.Package(id); errkind.Of(err) == errkind.NotFound {
			if err := repo.Remove(id); err != nil {
				return nil, err
			}
		}
	}
	return repo, nil
}

// IDs hands out package ids and knows which ones this process is
// building: their content may exist before their record, and content
// replication and the scrub must leave them alone.
type IDs struct {
	repo     *content.Repo
	last     func() (uint64, error) // the highest id the zone has recorded
	now      func() time.Time
	mu       sync.Mutex
	handed   uint64          // highest id handed out by this process
	building map[string]bool // ids being built here, not yet recorded
}

// NewIDs allocates ids past those of repo and of the zone (last).
func NewIDs(repo *content.Repo, last func() (uint64, error), now func() time.Time) *IDs {
	return &IDs{repo: repo, last: last, now: now, building: map[string]bool{}}
}

// next hands out a package id as OCS Inventory NG does (the build time
// in seconds), moved on past every id in the store, the repository and
// this process, so that two builds in one second still differ. The id
// is building until built is called.
func (p *IDs) next() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, err := p.last()
	if err != nil {
		return "", err
	}
	id := max(uint64(p.now().Unix()), last+1, p.handed+1)
	for p.repo.Exists(strconv.FormatUint(id, 10)) {
		id++
	}
	p.handed = id
	p.building[strconv.FormatUint(id, 10)] = true
	return strconv.FormatUint(id, 10), nil
}

// built ends the build of id (recorded or failed).
func (p *IDs) built(id string) {
	p.mu.Lock()
	delete(p.building, id)
	p.mu.Unlock()
}

// Building reports whether package id is being built here.
func (p *IDs) Building(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.building[id]
}
