package zone

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Commands that change the zone's set of Primary Servers.
const (
	CmdServerJoin   = "server.join"
	CmdServerDelete = "server.delete"
)

type serverJoin struct {
	Server Server `json:"server"`
}

// JoinServer records a new Primary Server (zconfigure -c JoinZone).
func (d *DB) JoinServer(actor string, s Server) error {
	return d.Exec(actor, CmdServerJoin, serverJoin{Server: s})
}

// DeleteServer removes a Primary Server's record (zman server-delete).
func (d *DB) DeleteServer(actor, id string) error {
	return d.Exec(actor, CmdServerDelete, byName{Name: id})
}

func applyCluster(tx *bolt.Tx, c Command) (string, bool, error) {
	switch c.Name {
	case CmdServerJoin:
		var d serverJoin
		if err := decode(c, &d); err != nil {
			return "", true, err
		}
		if exists(tx, store.BucketServers, d.Server.ID) {
			return "", true, errkind.New(errkind.Exists, "server id %s is already in the zone", d.Server.ID)
		}
		err := tx.Bucket(store.BucketServers).ForEach(func(k, v []byte) error {
			var o Server
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			if o.Name == d.Server.Name {
				return errkind.New(errkind.Exists, "the zone already has a server named %s (zman server-delete it first to replace it)", o.Name)
			}
			return nil
		})
		if err != nil {
			return "", true, err
		}
		return d.Server.Name, true, put(tx, store.BucketServers, d.Server.ID, d.Server)

	case CmdServerDelete:
		var d byName
		if err := decode(c, &d); err != nil {
			return "", true, err
		}
		var s Server
		if err := get(tx, store.BucketServers, d.Name, &s, "server"); err != nil {
			return "", true, err
		}
		if s.HasRole(RoleCertAuth) {
			return "", true, errkind.New(errkind.Usage, "server %s holds the CertAuth role: move the zone CA to another server first (certificate-authority-export -d, then certificate-authority-import there)", s.Name)
		}
		n := 0
		tx.Bucket(store.BucketServers).ForEach(func(k, v []byte) error { n++; return nil })
		if n <= 1 {
			return "", true, errkind.New(errkind.Usage, "server %s is the zone's only server", s.Name)
		}
		return s.Name, true, tx.Bucket(store.BucketServers).Delete([]byte(s.ID))
	}
	return "", false, nil
}
