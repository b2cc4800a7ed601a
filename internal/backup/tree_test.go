package backup

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeHome writes a server home: paths ending in "/" are directories.
func makeHome(t *testing.T, tree map[string]fs.FileMode) string {
	t.Helper()
	home := t.TempDir()
	names := make([]string, 0, len(tree))
	for name := range tree {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		p := filepath.Join(home, filepath.FromSlash(strings.TrimSuffix(name, "/")))
		var err error
		if strings.HasSuffix(name, "/") {
			err = os.MkdirAll(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte("content of "+name), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tree[name]); err != nil {
			t.Fatal(err)
		}
		mtime := time.Date(2024, 6, 1, 12, 0, i, 1000*i, time.UTC)
		defer os.Chtimes(p, mtime, mtime) // after the children are made
	}
	return home
}

func names(sources []Source) []string {
	var out []string
	for _, s := range sources {
		out = append(out, s.Name)
	}
	return out
}

func TestTreeSources(t *testing.T) {
	home := makeHome(t, map[string]fs.FileMode{
		"conf/":                      0o750,
		"conf/zoneserver.conf":       0o644,
		"conf/security/":             0o700,
		"conf/security/zone-ca.key":  0o600,
		"conf/security/.x.tmp-123":   0o600,
		"conf/b/":                    0o755,
		"conf/b/c":                   0o644,
		"data/":                      0o755,
		"data/zone.db":               0o600,
		"data/content-repo/":         0o755,
		"data/content-repo/package1": 0o644,
		"logs/":                      0o755,
		"logs/server.log":            0o644,
	})
	exclude := func(rel string) bool {
		return strings.Contains(rel, ".tmp-") || rel == "data/content-repo"
	}
	src, err := TreeSources(home, []string{"conf", "data"}, exclude)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"conf", "conf/b", "conf/b/c", "conf/security", "conf/security/zone-ca.key", "conf/zoneserver.conf", "data", "data/zone.db"}
	if !slices.Equal(names(src), want) {
		t.Fatalf("sources %q, want %q", names(src), want)
	}
	for _, s := range src {
		fi, err := os.Lstat(filepath.Join(home, s.Name))
		if err != nil {
			t.Fatal(err)
		}
		if s.Mode != fi.Mode() || !s.ModTime.Equal(fi.ModTime()) || s.UID != os.Getuid() {
			t.Errorf("%s: %v %v %d, want %v %v", s.Name, s.Mode, s.ModTime, s.UID, fi.Mode(), fi.ModTime())
		}
		if fi.IsDir() != (s.Open == nil) || (!fi.IsDir() && s.Size != fi.Size()) {
			t.Errorf("%s: size %d, open %v", s.Name, s.Size, s.Open != nil)
		}
	}

	// Through Pack and Unpack, the tree comes back the same.
	data, _ := pack(t, src)
	staging := newStaging(t)
	if _, err := Unpack(bytes.NewReader(data), staging, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range src {
		a, _ := os.Lstat(filepath.Join(home, s.Name))
		b, err := os.Lstat(filepath.Join(staging, s.Name))
		if err != nil || a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size() {
			t.Errorf("%s differs after the round trip: %v", s.Name, err)
		}
	}
}

func TestTreeSourcesIncludes(t *testing.T) {
	home := makeHome(t, map[string]fs.FileMode{
		"conf/": 0o750, "conf/a": 0o644, "conf/security/": 0o700, "conf/security/k": 0o600,
	})
	tests := []struct {
		include []string
		want    []string
	}{
		// The directories above an include come with it, not their content.
		{[]string{"conf/security"}, []string{"conf", "conf/security", "conf/security/k"}},
		{[]string{"conf/security/k"}, []string{"conf", "conf/security", "conf/security/k"}},
		// Overlaps are listed once.
		{[]string{"conf", "conf/security"}, []string{"conf", "conf/a", "conf/security", "conf/security/k"}},
		{[]string{"conf/security", "conf"}, []string{"conf", "conf/security", "conf/security/k", "conf/a"}},
		{nil, nil},
	}
	for _, tt := range tests {
		src, err := TreeSources(home, tt.include, nil)
		if err != nil {
			t.Fatalf("%q: %v", tt.include, err)
		}
		if !slices.Equal(names(src), tt.want) {
			t.Errorf("%q: %q, want %q", tt.include, names(src), tt.want)
		}
		if err := checkSources(src); err != nil {
			t.Errorf("%q: Pack would refuse: %v", tt.include, err)
		}
	}
	for _, bad := range []string{"../etc", "/etc", ".", "", "conf/../conf"} {
		if _, err := TreeSources(home, []string{bad}, nil); err == nil {
			t.Errorf("include %q accepted", bad)
		}
	}
	if _, err := TreeSources(home, []string{"remint-repo"}, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing include: %v, want fs.ErrNotExist", err)
	}
}

func TestTreeSourcesRefusesLinks(t *testing.T) {
	home := makeHome(t, map[string]fs.FileMode{"conf/": 0o750, "conf/a": 0o644})
	if err := os.Symlink("/etc/passwd", filepath.Join(home, "conf", "link")); err != nil {
		t.Fatal(err)
	}
	_, err := TreeSources(home, []string{"conf"}, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(home, "conf", "link")) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("TreeSources = %v, want an error naming the link", err)
	}
	// Excluded, it is fine.
	if _, err := TreeSources(home, []string{"conf"}, func(rel string) bool { return rel == "conf/link" }); err != nil {
		t.Error(err)
	}
	// An include that is itself a link.
	os.Symlink("conf", filepath.Join(home, "alias"))
	if _, err := TreeSources(home, []string{"alias"}, nil); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("TreeSources(alias) = %v", err)
	}
}

// A file swapped for a link between the walk and Pack cannot pull in a
// file from outside the home.
func TestTreeSourcesOpenStaysInHome(t *testing.T) {
	home := makeHome(t, map[string]fs.FileMode{"conf/": 0o750, "conf/a": 0o644})
	src, err := TreeSources(home, []string{"conf"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	os.Remove(filepath.Join(home, "conf", "a"))
	os.Symlink(secret, filepath.Join(home, "conf", "a"))
	_, err = Pack(io.Discard, testInfo, src, nil)
	if err == nil || !strings.Contains(err.Error(), "conf/a") {
		t.Errorf("Pack = %v, want a refusal naming conf/a", err)
	}
}

// A file replaced by a FIFO after the walk is refused; neither its
// prefetch nor its opening waits for a writer that never comes.
func TestTreeSourcesFileBecameFIFO(t *testing.T) {
	home := makeHome(t, map[string]fs.FileMode{"conf/": 0o750, "conf/a": 0o644, "conf/b": 0o644})
	src, err := TreeSources(home, []string{"conf"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(home, "conf", "a"))
	if err := syscall.Mkfifo(filepath.Join(home, "conf", "a"), 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Pack(io.Discard, testInfo, src, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "conf/a") || !strings.Contains(err.Error(), "no longer a regular file") {
			t.Errorf("Pack = %v, want a refusal naming conf/a", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pack still waits in the FIFO's open after 10 s")
	}
}
