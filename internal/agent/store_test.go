package agent

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// archiveOf writes data as a one-fragment package in a temporary
// directory and opens it as the engine does.
func archiveOf(t *testing.T, data []byte) *fragments {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "9-1"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openFragments(dir, "9", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// snapshot is every entry under dir: its mode and its bytes or link target.
func snapshot(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[strings.TrimPrefix(p, dir)] = v
		return nil
	})
	return out
}

// A STORE refused at extraction leaves its destination byte-identical
// (the OCS agent copies only after unpacking, too), and a destination it
// had to create is gone again.
func TestStoreRefusedLeavesTargetUntouched(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "app")
	os.MkdirAll(filepath.Join(target, "conf.d"), 0o755)
	os.WriteFile(filepath.Join(target, "app.conf"), []byte("the admin's settings\n"), 0o640)
	os.WriteFile(filepath.Join(target, "conf.d", "keep"), []byte("keep me\n"), 0o600)
	os.Symlink("app.conf", filepath.Join(target, "current"))
	before := snapshot(t, target)

	cases := map[string][]*tar.Header{
		"climbing member":         {{Name: "app.conf", Mode: 0o644}, {Name: "conf.d/keep", Mode: 0o644}, {Name: "../../evil.txt", Mode: 0o644}},
		"link out":                {{Name: "app.conf", Mode: 0o644}, {Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
		"device":                  {{Name: "app.conf", Mode: 0o644}, {Name: "dev", Typeflag: tar.TypeChar}},
		"through a link in place": {{Name: "new.txt", Mode: 0o644}, {Name: "current/x", Mode: 0o644}},
		"file over a directory":   {{Name: "new.txt", Mode: 0o644}, {Name: "conf.d", Mode: 0o644}},
	}
	for name, members := range cases {
		e, log := testEngine(t)
		p := &LocalPackage{ID: "9"}
		res := e.store(p, archiveOf(t, tarGz(t, members...)), "tar.gz", target)
		if res != "ERR_UNZIP" {
			t.Errorf("%s: %q, want ERR_UNZIP\n%s", name, res, log)
		}
		after := snapshot(t, target)
		if len(after) != len(before) {
			t.Errorf("%s: target now holds %v, want %v", name, after, before)
		}
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s: %s is %q, was %q", name, k, after[k], v)
			}
		}
		if _, err := os.Lstat(filepath.Join(root, "evil.txt")); err == nil {
			t.Errorf("%s: a file landed outside", name)
		}
	}

	e, _ := testEngine(t)
	fresh := filepath.Join(root, "new", "nested", "dir")
	if res := e.store(&LocalPackage{ID: "9"}, archiveOf(t, tarGz(t, cases["climbing member"]...)), "tar.gz", fresh); res != "ERR_UNZIP" {
		t.Errorf("new target: %q", res)
	}
	if _, err := os.Lstat(filepath.Join(root, "new")); err == nil {
		t.Error("the directories made for a refused STORE are left behind")
	}
}

// A STORE that passes merges into the destination: existing directories
// are kept and filled, files are replaced, the rest stays.
func TestStoreMerges(t *testing.T) {
	target := filepath.Join(t.TempDir(), "app")
	os.MkdirAll(filepath.Join(target, "conf.d"), 0o755)
	os.WriteFile(filepath.Join(target, "app.conf"), []byte("old\n"), 0o644)
	os.WriteFile(filepath.Join(target, "conf.d", "keep"), []byte("keep me\n"), 0o600)
	e, log := testEngine(t)
	arch := tarGz(t, &tar.Header{Name: "app.conf", Mode: 0o644}, &tar.Header{Name: "conf.d/new", Mode: 0o644},
		&tar.Header{Name: "lib/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "lib/x", Mode: 0o644})
	if res := e.store(&LocalPackage{ID: "9"}, archiveOf(t, arch), "tar.gz", target); res != "" {
		t.Fatalf("%q\n%s", res, log)
	}
	want := map[string]string{"app.conf": "app.conf", "conf.d/keep": "keep me\n", "conf.d/new": "conf.d/new", "lib/x": "lib/x"}
	for name, body := range want {
		if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != body {
			t.Errorf("%s: %q %v, want %q", name, b, err, body)
		}
	}
	entries, _ := os.ReadDir(target)
	for _, d := range entries {
		if strings.HasPrefix(d.Name(), ".zac-store") {
			t.Errorf("staging directory %s left behind", d.Name())
		}
	}
}
