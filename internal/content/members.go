package content

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// MaxMembers bounds the entries of a package archive: zac refuses more
// (ERR_UNZIP), so a build does too.
const MaxMembers = 1 << 20

// Kinds of archive member, as far as the extraction rules care.
type MemberKind int

const (
	MemberFile MemberKind = iota
	MemberDir
	MemberSymlink
	MemberHardlink
	MemberOther // devices, fifos, anything else: never unpacked
)

// CleanMember returns an archive member's name as a clean relative path
// with forward slashes ("" for the archive's root), refusing names that
// are absolute (also C:\ and \\server forms) or climb out of the target.
func CleanMember(name string) (string, error) {
	n := strings.TrimPrefix(strings.ReplaceAll(name, `\`, "/"), "./")
	clean := path.Clean(n)
	if n == "" || clean == "." {
		return "", nil
	}
	if path.IsAbs(n) || (len(n) >= 2 && n[1] == ':') || clean == ".." || strings.HasPrefix(clean, "../") ||
		!filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", fmt.Errorf("member %q would land outside the target directory", name)
	}
	return clean, nil
}

// CheckLinkTarget refuses a symbolic link (named by its clean member
// name) whose target is absolute or, seen from the link's place, leaves
// the target directory.
func CheckLinkTarget(member, target string) error {
	t := strings.ReplaceAll(target, `\`, "/")
	if t == "" || path.IsAbs(t) || (len(t) >= 2 && t[1] == ':') {
		return fmt.Errorf("link %s points outside the target directory (%s)", member, target)
	}
	to := path.Clean(path.Join(path.Dir(member), t))
	if to == ".." || strings.HasPrefix(to, "../") {
		return fmt.Errorf("link %s points outside the target directory (%s)", member, target)
	}
	return nil
}

// MemberCheck applies zac's extraction rules to an archive's members in
// their order: the one check that zman's build (refusing the package) and
// zac's extraction (ERR_UNZIP) share, so that no package is built that
// every agent will refuse. The zero value is ready.
type MemberCheck struct {
	n     int
	links map[string]bool // symbolic links so far
	files map[string]bool // regular files so far (hard link targets)
}

// Add checks the next member and returns its clean name. The rules:
// relative names that stay inside, links whose target stays inside,
// nothing written through a link the archive made, hard links only to a
// file already in the archive, no devices or fifos, at most MaxMembers.
func (c *MemberCheck) Add(name string, kind MemberKind, linkname string) (string, error) {
	if c.n++; c.n > MaxMembers {
		return "", fmt.Errorf("more than %d members", MaxMembers)
	}
	if c.links == nil {
		c.links, c.files = map[string]bool{}, map[string]bool{}
	}
	clean, err := CleanMember(name)
	if err != nil {
		return "", err
	}
	for d := path.Dir(clean); d != "." && d != "/" && clean != ""; d = path.Dir(d) {
		if c.links[d] {
			return "", fmt.Errorf("member %s would be written through the link %s", name, d)
		}
	}
	switch kind {
	case MemberDir:
		// A directory over a link keeps the link (MkdirAll follows it).
	case MemberFile:
		delete(c.links, clean)
		c.files[clean] = true
	case MemberSymlink:
		if err := CheckLinkTarget(clean, linkname); err != nil {
			return "", err
		}
		delete(c.files, clean)
		c.links[clean] = true
	case MemberHardlink:
		to, err := CleanMember(linkname)
		if err != nil || !c.files[to] {
			return "", fmt.Errorf("hard link %s to %s: not a file of the archive", name, linkname)
		}
		delete(c.links, clean)
		c.files[clean] = true
	default:
		return "", fmt.Errorf("member %s: not a file, directory or link (devices and fifos are not unpacked)", name)
	}
	return clean, nil
}

// TarKind is the kind of a tar member; skip is true for headers that
// carry no member (PAX global headers).
func TarKind(typeflag byte) (kind MemberKind, skip bool) {
	switch typeflag {
	case tar.TypeReg: // tar.Reader reports the legacy TypeRegA as TypeReg
		return MemberFile, false
	case tar.TypeDir:
		return MemberDir, false
	case tar.TypeSymlink:
		return MemberSymlink, false
	case tar.TypeLink:
		return MemberHardlink, false
	case tar.TypeXGlobalHeader:
		return MemberOther, true
	}
	return MemberOther, false
}

// ZipKind is the kind of a zip member by its mode.
func ZipKind(mode fs.FileMode) MemberKind {
	switch {
	case mode.IsDir():
		return MemberDir
	case mode&fs.ModeSymlink != 0:
		return MemberSymlink
	case mode.IsRegular():
		return MemberFile
	}
	return MemberOther
}
