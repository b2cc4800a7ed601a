package agentpack

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"fmt"
	"io"
	"strings"
	"time"
)

func newGzip(w io.Writer) (*gzip.Writer, error) { return gzip.NewWriterLevel(w, gzip.BestSpeed) }

type tarWriter struct{ *tar.Writer }

func newTar(w io.Writer) tarWriter { return tarWriter{tar.NewWriter(w)} }

func (t tarWriter) dir(name string, mtime time.Time) error {
	return t.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime,
		Uname: "root", Gname: "root", Format: tar.FormatGNU})
}

func (t tarWriter) file(name string, mode int64, data []byte, mtime time.Time) error {
	if err := t.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime,
		Uname: "root", Gname: "root", Format: tar.FormatGNU}); err != nil {
		return err
	}
	_, err := t.Write(data)
	return err
}

// debVersion makes a Debian version of zac's: it must start with a digit
// and use only letters, digits and . + ~ -.
func debVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	v = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".+~-", r) {
			return r
		}
		return '+'
	}, v)
	if v == "" || v[0] < '0' || v[0] > '9' {
		v = "0~" + v
	}
	return v
}

// deb builds a Debian binary package: an ar archive of debian-binary,
// control.tar.gz and data.tar.gz. zac goes to /usr/bin, the zone's files to
// /usr/share/zonekit-agent; postinst runs the same setup as the shell
// installer.
func (s *Spec) deb(p Platform, zac []byte) ([]byte, error) {
	data := []member{{"usr/bin/zac", 0o755, zac}}
	var size int
	for _, m := range s.payload() {
		data = append(data, member{"usr/share/zonekit-agent/" + m.name, m.mode, m.data})
	}
	data = sortedMembers(data)
	var md5s strings.Builder
	for _, m := range data {
		size += len(m.data)
		fmt.Fprintf(&md5s, "%x  %s\n", md5.Sum(m.data), m.name)
	}
	var dataTar bytes.Buffer
	if err := writeTarGz(&dataTar, data, s.Now, true); err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("zonekit agent for zone %s", s.Zone)
	if s.Name != "" {
		desc += " (pack " + s.Name + ")"
	}
	control := fmt.Sprintf(`Package: zonekit-agent
Version: %s
Architecture: %s
Maintainer: zonekit zone %s <root@localhost>
Installed-Size: %d
Section: admin
Priority: optional
Description: %s
 zac, the zonekit endpoint agent, with the zone's CA certificate and server
 list. Installing it registers the device with the zone and enables the
 zonekit-agent service.
`, debVersion(s.Version), p.Arch, s.Zone, (size+1023)/1024, desc)
	postinst := strings.Replace(script("postinst"), "@@SETUP@@", script("setup.sh"), 1)
	ctl := []member{
		{"control", 0o644, []byte(control)},
		{"md5sums", 0o644, []byte(md5s.String())},
		{"postinst", 0o755, []byte(postinst)},
		{"postrm", 0o755, []byte(script("postrm"))},
		{"prerm", 0o755, []byte(script("prerm"))},
	}
	var ctlTar bytes.Buffer
	if err := writeTarGz(&ctlTar, ctl, s.Now, true); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		data []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", ctlTar.Bytes()}, {"data.tar.gz", dataTar.Bytes()}} {
		fmt.Fprintf(&out, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, s.Now.Unix(), 0, 0, "100644", len(m.data))
		out.Write(m.data)
		if len(m.data)%2 == 1 {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

// zip builds the Windows pack: zac.exe, the zone's files and install.cmd
// (with CRLF line ends, which cmd.exe needs for labels and blocks).
func (s *Spec) zip(p Platform, zac []byte) ([]byte, error) {
	cmd := strings.NewReplacer("@@ZONE@@", s.Zone, "@@VERSION@@", s.Version, "@@INTERVAL@@", s.interval()).Replace(script("install.cmd"))
	cmd = strings.ReplaceAll(cmd, "\n", "\r\n")
	members := append([]member{{"zac.exe", 0o755, zac}, {"install.cmd", 0o644, []byte(cmd)}}, s.payload()...)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		h := &zip.FileHeader{Name: "zonekit-agent/" + m.name, Method: zip.Deflate, Modified: s.Now}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(m.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
