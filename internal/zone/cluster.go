package zone

import (
	"encoding/json"
	"net"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/errkind"
	"zonekit/internal/store"
)

// Commands that change the zone's set of Primary Servers.
const (
	CmdServerJoin       = "server.join"
	CmdServerDelete     = "server.delete"
	CmdServerSetAddress = "server.set-address"
)

// PeerAddress is where the zone's other servers reach s (host:port): its
// replication address, else its name and port.
func (s Server) PeerAddress() string {
	if s.Address != "" {
		return s.Address
	}
	return net.JoinHostPort(s.Name, strconv.Itoa(s.Port))
}

type serverSetAddress struct {
	ID       string   `json:"id"`
	DNSNames []string `json:"dns_names,omitempty"`
	IPs      []string `json:"ips,omitempty"`
	Address  string   `json:"address,omitempty"`
}

// SetServerAddress records a server's new names, addresses or peer
// address; empty values keep the recorded ones.
func (d *DB) SetServerAddress(actor, id string, dns, ips []string, address string) error {
	return d.Exec(actor, CmdServerSetAddress, serverSetAddress{ID: id, DNSNames: dns, IPs: ips, Address: address})
}

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

func applyServerJoin(tx *bolt.Tx, c Command) (string, error) {
	var d serverJoin
	if err := decode(c, &d); err != nil {
		return "", err
	}
	if exists(tx, store.BucketServers, d.Server.ID) {
		return "", errkind.New(errkind.Exists, "server id %s is already in the zone", d.Server.ID)
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
		return "", err
	}
	return d.Server.Name, put(tx, store.BucketServers, d.Server.ID, d.Server)
}

func applyServerSetAddress(tx *bolt.Tx, c Command) (string, error) {
	var d serverSetAddress
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var s Server
	if err := get(tx, store.BucketServers, d.ID, &s, "server"); err != nil {
		return "", err
	}
	if len(d.DNSNames) > 0 {
		// The first DNS name is the server's name: agents are given
		// it, and its next certificate carries it as the common name.
		if d.DNSNames[0] != s.Name {
			err := tx.Bucket(store.BucketServers).ForEach(func(k, v []byte) error {
				var o Server
				if err := json.Unmarshal(v, &o); err != nil {
					return err
				}
				if o.ID != s.ID && o.Name == d.DNSNames[0] {
					return errkind.New(errkind.Exists, "the zone already has a server named %s", o.Name)
				}
				return nil
			})
			if err != nil {
				return "", err
			}
		}
		s.Name, s.DNSNames = d.DNSNames[0], d.DNSNames
	}
	if len(d.IPs) > 0 {
		s.IPs = d.IPs
	}
	if d.Address != "" {
		s.Address = d.Address
	}
	return s.Name, put(tx, store.BucketServers, s.ID, s)
}

func applyServerDelete(tx *bolt.Tx, c Command) (string, error) {
	var d byName
	if err := decode(c, &d); err != nil {
		return "", err
	}
	var s Server
	if err := get(tx, store.BucketServers, d.Name, &s, "server"); err != nil {
		return "", err
	}
	if s.HasRole(RoleCertAuth) {
		return "", errkind.New(errkind.Refused, "server %s holds the CertAuth role: move the zone CA to another server first (certificate-authority-export -d, then certificate-authority-import there)", s.Name)
	}
	n := 0
	tx.Bucket(store.BucketServers).ForEach(func(k, v []byte) error { n++; return nil })
	if n <= 1 {
		return "", errkind.New(errkind.Refused, "server %s is the zone's only server", s.Name)
	}
	return s.Name, tx.Bucket(store.BucketServers).Delete([]byte(s.ID))
}

func clusterCommands(t *commandTable) {
	t.add(CmdServerJoin, applyServerJoin)
	t.add(CmdServerSetAddress, applyServerSetAddress)
	t.add(CmdServerDelete, applyServerDelete)
}
