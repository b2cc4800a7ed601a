package content

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBuild builds a package from $ZONEKIT_BENCH_ARCHIVE (a tar.gz;
// scripts/bench/package-build.sh makes a 1 GiB one), reporting MB/s.
func BenchmarkBuild(b *testing.B) {
	path := os.Getenv("ZONEKIT_BENCH_ARCHIVE")
	if path == "" {
		b.Skip("set ZONEKIT_BENCH_ARCHIVE to a tar.gz")
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	repo, err := NewRepo(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	s := Spec{Name: "bench", OS: OSLinux, Priority: 5, Action: ActionExecute, Command: "true", FragmentSize: 1 << 20}
	for i := 0; b.Loop(); i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		id := strconv.Itoa(1000 + i)
		if _, err := repo.Build(id, s, f, time.Now()); err != nil {
			b.Fatal(err)
		}
		f.Close()
		repo.Remove(id)
	}
}
