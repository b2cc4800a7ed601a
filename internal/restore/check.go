// Package restore puts a server backup in place of a server's state:
// checks that what was unpacked can start a zone server, and swaps
// configuration, zone store and replication log atomically across crashes
// through an intent journal that the next start finishes or undoes.
package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"zonekit/internal/serverfiles"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// StoreEntry is where the zone store sits in a backup.
const StoreEntry = serverfiles.StoreEntry

// CheckStaged checks an unpacked backup in staging as a start would use
// it: CheckConf, the zone store opens (an older schema is migrated in the
// staging copy, a newer one refused), holds a zone, and lists the server
// that server.id names.
func CheckStaged(staging string) error {
	files := map[string][]byte{}
	for _, name := range serverfiles.ConfFiles() {
		data, err := readSmall(filepath.Join(staging, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		files[name] = data
	}
	id, err := serverfiles.CheckConf(files)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(staging, filepath.FromSlash(StoreEntry)), store.Options{LockTimeout: time.Second})
	if err != nil {
		return fmt.Errorf("its zone store: %w", err)
	}
	defer st.Close()
	db := zone.New(st, nil)
	if _, err := db.Zone(); err != nil {
		return fmt.Errorf("its zone store holds no zone: %w", err)
	}
	if _, err := db.Server(id); err != nil {
		return fmt.Errorf("its zone store has no server %s (server.id in %s): %w", id, serverfiles.ConfFile, err)
	}
	return nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > serverfiles.MaxConfigFile {
		return nil, fmt.Errorf("%s: %d bytes is too large for a configuration file", path, fi.Size())
	}
	data := make([]byte, fi.Size())
	_, err = f.ReadAt(data, 0)
	return data, err
}
