package content

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io/fs"
	"strings"
	"testing"
	"time"

	"zonekit/internal/errkind"
)

type member struct {
	name string
	kind MemberKind
	link string
}

// The rules zman's build and zac's extraction share.
func TestMemberCheck(t *testing.T) {
	refused := map[string][]member{
		"absolute":              {{"/etc/passwd", MemberFile, ""}},
		"windows absolute":      {{`C:\Windows\evil.dll`, MemberFile, ""}},
		"dotdot":                {{"../../evil.txt", MemberFile, ""}},
		"dotdot after clean":    {{"a/../../evil.txt", MemberFile, ""}},
		"backslash dotdot":      {{`..\evil`, MemberFile, ""}},
		"absolute symlink":      {{"l", MemberSymlink, "/etc"}},
		"climbing symlink":      {{"d/l", MemberSymlink, "../../x"}},
		"through a link":        {{"l", MemberSymlink, "."}, {"l/x", MemberFile, ""}},
		"hard link out":         {{"h", MemberHardlink, "../../etc/passwd"}},
		"hard link to nothing":  {{"h", MemberHardlink, "missing"}},
		"hard link to a link":   {{"l", MemberSymlink, "a"}, {"h", MemberHardlink, "l"}},
		"device":                {{"dev", MemberOther, ""}},
		"directory over a link": {{"l", MemberSymlink, "d"}, {"l", MemberDir, ""}, {"l/x", MemberFile, ""}},
	}
	for name, members := range refused {
		var c MemberCheck
		var err error
		for _, m := range members {
			if _, err = c.Add(m.name, m.kind, m.link); err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("%s: passed", name)
		}
	}
	var c MemberCheck
	for _, m := range []member{{"./", MemberDir, ""}, {"d/", MemberDir, ""}, {"d/f", MemberFile, ""}, {"l", MemberSymlink, "d/f"},
		{"d/up", MemberSymlink, "../d/f"}, {"h", MemberHardlink, "d/f"}, {"l", MemberFile, ""}, {"l/x", MemberFile, ""}} {
		if _, err := c.Add(m.name, m.kind, m.link); err != nil && m.name != "l/x" {
			t.Errorf("%s: %v", m.name, err)
		}
	}
}

func tarOf(t *testing.T, hs ...*tar.Header) []byte {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	gz.Close()
	return b.Bytes()
}

func zipOf(t *testing.T, name string, mode fs.FileMode, body string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	h := &zip.FileHeader{Name: name}
	h.SetMode(mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	zw.Close()
	return b.Bytes()
}

// zman refuses at build what every zac would refuse at extraction, a
// relative store path, and more fragments than MaxFragments.
func TestBuildRefusesWhatAgentsRefuse(t *testing.T) {
	run := tar.Header{Name: "run.sh", Typeflag: tar.TypeReg, Mode: 0o755}
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	cases := map[string][]byte{
		"absolute path":    tarOf(t, &run, reg("/etc/cron.d/evil")),
		"dotdot":           tarOf(t, &run, reg("../../evil.txt")),
		"symlink escape":   tarOf(t, &run, &tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "../.."}),
		"absolute symlink": tarOf(t, &run, &tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}),
		"through symlink":  tarOf(t, &run, &tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."}, reg("d/x")),
		"hardlink escape":  tarOf(t, &run, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}),
		"device node":      tarOf(t, &run, &tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}),
		"fifo":             tarOf(t, &run, &tar.Header{Name: "p", Typeflag: tar.TypeFifo}),
		"zip dotdot":       zipOf(t, "../evil.txt", 0o644, "x"),
		"zip symlink out":  zipOf(t, "out", fs.ModeSymlink|0o777, "/etc"),
	}
	for name, archive := range cases {
		repo, _ := NewRepo(t.TempDir())
		s := spec(ActionExecute, "true")
		_, err := repo.Build("1700000009", s, bytes.NewReader(archive), time.Now())
		if err == nil || errkind.Of(err) != errkind.Invalid || !strings.Contains(err.Error(), "agents would refuse this archive") {
			t.Errorf("%s: %v", name, err)
		}
	}
	repo, _ := NewRepo(t.TempDir())
	s := spec(ActionStore, "")
	s.Path = "relative/dir"
	if _, err := repo.Build("1700000010", s, bytes.NewReader(tarOf(t, &run)), time.Now()); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("relative store path: %v", err)
	}
	for _, p := range []string{"/opt/app", "$HOME/app", "${WORK}/x"} {
		if !StorePathOK(p, OSLinux) {
			t.Errorf("StorePathOK(%q, linux) = false", p)
		}
	}
	for p, ok := range map[string]bool{`C:\Program Files\app`: true, `\\server\share`: true, "%ProgramData%\\x": true, `app\dir`: false, "/opt": false} {
		if StorePathOK(p, OSWindows) != ok {
			t.Errorf("StorePathOK(%q, windows) = %v", p, !ok)
		}
	}
}

// The fragment count is bounded: Build gives its writer MaxFragments (a
// smaller bound here, 10,000 file creations cost seconds on some disks).
func TestFragmentCountBounded(t *testing.T) {
	w := &fragmentWriter{dir: t.TempDir(), id: "1700000011", size: 1, max: 50}
	err := w.write(make([]byte, 51))
	w.finish()
	if err == nil || errkind.Of(err) != errkind.Invalid || !strings.Contains(err.Error(), "more than 50 fragments of 1 bytes") {
		t.Errorf("51 fragments: %v", err)
	}
	w = &fragmentWriter{dir: t.TempDir(), id: "1700000012", size: 1, max: 50}
	if err := w.write(make([]byte, 50)); err != nil {
		t.Errorf("50 fragments: %v", err)
	}
	w.finish()
}

func TestRunsOn(t *testing.T) {
	for _, c := range []struct {
		pkg, dev string
		ok       bool
	}{
		{OSLinux, "linux", true}, {OSLinux, "Debian GNU/Linux 12 (bookworm)", true}, {OSLinux, "windows", false},
		{OSWindows, "Microsoft Windows 11 Pro", true}, {OSWindows, "linux", false}, {OSWindows, "", true},
		{OSLinux, "darwin", true}, {OSWindows, "darwin", false}, {OSLinux, "Plan 9", true},
	} {
		if got := RunsOn(c.pkg, c.dev); got != c.ok {
			t.Errorf("RunsOn(%s, %q) = %v", c.pkg, c.dev, got)
		}
	}
}
