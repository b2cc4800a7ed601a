package provision

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// RecoverResult says what RecoverCluster did.
type RecoverResult struct {
	Zone        string
	Servers     int    // servers the local store lists
	Incarnation string // the incarnation this server's store follows now
	Applied     uint64
	Rejoin      bool
}

// RecoverCluster prepares this stopped server to get the zone's
// replication going again after its log was lost on every server, or a
// majority of servers was lost for good: its replication log is removed
// and, unless rejoin, the next start makes it a cluster of its own (a new
// incarnation) from its store, which the zone's other servers then copy
// when they join it. With rejoin the server only drops its log: at its
// next start it copies the store from a server of the newer incarnation.
// Changes that only the lost servers held are lost; the caller warns.
func RecoverCluster(p config.Paths, rejoin bool) (*RecoverResult, error) {
	st, err := openStopped(p)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	db := zone.New(st, nil)
	z, err := db.Zone()
	if err != nil {
		return nil, err
	}
	servers, err := db.Servers()
	if err != nil {
		return nil, err
	}
	res := &RecoverResult{Zone: z.Name, Servers: len(servers), Rejoin: rejoin}
	st.View(func(tx *bolt.Tx) error {
		res.Incarnation = store.IncarnationOf(tx).String()
		res.Applied = store.AppliedIndex(tx)
		return nil
	})
	if err := os.RemoveAll(p.Raft()); err != nil {
		return nil, fmt.Errorf("remove the replication log: %w", err)
	}
	if rejoin {
		if err := os.Remove(p.RecoverMarker()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return res, nil
	}
	if err := atomicfile.WriteFile(p.RecoverMarker(), []byte("start a new replication cluster of this server at the next start\n"), 0o600); err != nil {
		return nil, err
	}
	return res, nil
}

// openStopped opens the store of the zone at p for an offline action; a
// running zone server (which holds the store's lock) makes it fail
// cleanly.
func openStopped(p config.Paths) (*store.Store, error) {
	if err := p.CheckZone(); err != nil {
		return nil, err
	}
	st, err := store.Open(p.Store(), store.Options{})
	if errors.Is(err, store.ErrLocked) {
		return nil, errkind.New(errkind.Unavailable, "the zone server is running: stop it first (zconfigure -c Start --action stop)")
	}
	return st, err
}
