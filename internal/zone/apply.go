package zone

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/store"
)

// A handler applies one command inside tx and returns its audit target
// (what the command acted on).
type handler func(tx *bolt.Tx, c Command) (string, error)

type entry struct {
	apply   handler
	audited bool
}

// commandTable maps each command name to its handler. Each area of the
// zone registers its own commands (coreCommands, packageCommands, ...);
// the audit and idempotence rules live here only.
type commandTable struct {
	m    map[string]entry
	dups []string
}

// add registers an audited command.
func (t *commandTable) add(name string, h handler) { t.put(name, h, true) }

// addUnaudited registers routine bookkeeping (contacts, reports) that
// would drown the audit log.
func (t *commandTable) addUnaudited(name string, h handler) { t.put(name, h, false) }

func (t *commandTable) put(name string, h handler, audited bool) {
	if _, ok := t.m[name]; ok {
		t.dups = append(t.dups, name)
	}
	t.m[name] = entry{apply: h, audited: audited}
}

// areas register the commands of each area of the zone.
var areas = []func(*commandTable){
	coreCommands, certificateCommands, ocsCommands, spkValuesCommands, packageCommands,
	prebootCommands, satelliteCommands, clusterCommands, contentCommands, deviceCACommands,
}

func buildCommands() (map[string]entry, error) {
	t := &commandTable{m: map[string]entry{}}
	for _, area := range areas {
		area(t)
	}
	if len(t.dups) > 0 {
		return nil, fmt.Errorf("zone commands registered twice: %v", t.dups)
	}
	return t.m, nil
}

// commands is built once, on first use; a command registered twice is a
// programming error, caught by TestEveryCommandHasOneHandler.
var commands = sync.OnceValue(func() map[string]entry {
	m, err := buildCommands()
	if err != nil {
		panic(err)
	}
	return m
})

// Apply applies c inside tx and records it in the audit log unless it is
// routine bookkeeping.
func Apply(tx *bolt.Tx, c Command) error {
	e, ok := commands()[c.Name]
	if !ok {
		return fmt.Errorf("unknown zone command %q", c.Name)
	}
	target, err := e.apply(tx, c)
	if err != nil {
		return err
	}
	if !e.audited {
		return nil
	}
	b := tx.Bucket(store.BucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec, err := json.Marshal(AuditRecord{Seq: seq, Time: c.Time, Actor: c.Actor, Command: c.Name, Target: target})
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return b.Put(k[:], rec)
}

// ApplyOnce applies a replicated command at log index i: a command whose
// id was applied already (sent again after a lost answer) changes nothing.
// refused is the command's own error (nothing to keep); err is the
// store's (the transaction cannot be committed).
func ApplyOnce(tx *bolt.Tx, c Command, i uint64) (refused, err error) {
	if store.CommandApplied(tx, c.ID) {
		return nil, nil
	}
	if err := Apply(tx, c); err != nil {
		return err, nil
	}
	return nil, store.RecordCommand(tx, c.ID, i)
}

func coreCommands(t *commandTable) {
	t.add(CmdZoneCreate, applyZoneCreate)
	t.addUnaudited(CmdServerStart, applyServerStart)
	t.add(CmdServerSetRoles, applyServerSetRoles)
	t.add(CmdAdminCreate, applyAdminCreate)
	t.add(CmdAdminDelete, applyAdminDelete)
	t.add(CmdTokenCreate, applyTokenCreate)
	t.add(CmdTokenDelete, applyTokenDelete)
	t.add(CmdDeviceRegister, applyDeviceRegister)
	t.add(CmdDeviceDelete, applyDeviceDelete)
	t.addUnaudited(CmdDeviceContact, applyDeviceContact)
	t.add(CmdGroupCreate, applyGroupCreate)
	t.add(CmdGroupAddDevices, applyGroupAddDevices)
	t.add(CmdRegKeyCreate, applyRegKeyCreate)
	t.add(CmdRegKeyDelete, applyRegKeyDelete)
}
