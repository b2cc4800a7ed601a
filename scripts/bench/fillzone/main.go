// Command fillzone grows a stopped zone for backup benchmarks: it adds
// device records to the zone store until it reaches a size, and writes many
// small configuration files under conf/bench/.
//
//	go run ./scripts/bench/fillzone -home H -store-mib 1000 -files 5000
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/config"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

func main() {
	home := flag.String("home", "", "zone home (server stopped)")
	mib := flag.Int64("store-mib", 1000, "grow the store to about this many MiB")
	files := flag.Int("files", 5000, "small configuration files to write")
	devices := flag.Int("devices", 0, "add exactly this many devices instead (and no files unless -files is given)")
	flag.Parse()
	if *home == "" {
		fmt.Fprintln(os.Stderr, "usage: fillzone -home DIR [-store-mib N] [-files N]")
		os.Exit(2)
	}
	p := config.Paths{Home: *home}
	if *devices > 0 {
		if err := addDevices(p, *devices); err != nil {
			fmt.Fprintln(os.Stderr, "fillzone:", err)
			os.Exit(1)
		}
		return
	}
	if err := fillStore(p, *mib<<20); err != nil {
		fmt.Fprintln(os.Stderr, "fillzone:", err)
		os.Exit(1)
	}
	if err := writeFiles(p, *files); err != nil {
		fmt.Fprintln(os.Stderr, "fillzone:", err)
		os.Exit(1)
	}
}

// addDevices adds exactly count device records.
func addDevices(p config.Paths, count int) error {
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	n := 0
	rng := rand.New(rand.NewPCG(1, 2))
	if err := putDevices(st, rng, &n, count); err != nil {
		return err
	}
	fmt.Printf("store: %d devices added\n", n)
	return nil
}

func fillStore(p config.Paths, target int64) error {
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for {
		fi, err := os.Stat(p.Store())
		if err != nil {
			return err
		}
		if fi.Size() >= target {
			break
		}
		if err := putDevices(st, rng, &n, 50000); err != nil {
			return err
		}
	}
	fmt.Printf("store: %d devices added\n", n)
	return nil
}

func putDevices(st *store.Store, rng *rand.Rand, n *int, count int) error {
	now := time.Now().UTC()
	return st.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.BucketDevices)
		for i := 0; i < count; i++ {
			*n++
			id := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
			d := zone.Device{ID: id, Name: fmt.Sprintf("ws-%07d.branch%02d.example.com", *n, *n%37), OS: "linux",
				CertSerial: fmt.Sprintf("%x", rng.Uint64()), CertNotAfter: now.AddDate(10, 0, 0),
				Registered: now.Add(-time.Duration(rng.IntN(1e6)) * time.Second), LastContact: now,
				Address: fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256)), RegKey: "branch-key"}
			data, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), data); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeFiles(p config.Paths, count int) error {
	rng := rand.New(rand.NewPCG(3, 4))
	words := strings.Fields("server port address timeout policy bundle schedule content replication satellite imaging preboot agent refresh interval true false debug info")
	for i := 0; i < count; i++ {
		dir := filepath.Join(p.Conf(), "bench", fmt.Sprintf("d%03d", i%100))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var b strings.Builder
		lines := 40 + rng.IntN(200)
		for l := 0; l < lines; l++ {
			fmt.Fprintf(&b, "%s.%s = %s %d\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d.conf", i)), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("conf: %d files written\n", count)
	return nil
}
