// Package bootenv builds the imaging environment pbserv serves to
// machines: Debian's kernel and an initramfs holding busybox, the disk
// tools (sfdisk, partclone, zstd, udpcast), the kernel modules for common
// disks and network cards, the zone CA, and pbserv itself as the imaging
// client. Everything comes from the packages installed on this server.
package bootenv

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"zonekit/internal/atomicfile"
)

//go:embed init.sh
var initScript []byte

// Packages are the Debian packages the build takes its files from.
const Packages = "linux-image-amd64 busybox-static partclone udpcast zstd fdisk"

// Modules are loaded by the environment's /init through their devices'
// modalias; these and their dependencies are included.
var Modules = []string{"e1000", "e1000e", "virtio_net", "virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "sd_mod", "nvme", "r8169", "igb", "tg3"}

// Programs copied with the libraries they load.
var Programs = []string{"/usr/sbin/sfdisk", "/usr/sbin/partclone.extfs", "/usr/bin/zstd", "/usr/bin/udp-sender", "/usr/bin/udp-receiver"}

// Options say what to build.
type Options struct {
	Kernel string // a version under /lib/modules; "" for the newest
	Output string // the directory that receives vmlinuz and initrd
	Client string // the pbserv binary to include as the imaging client
	CA     []byte // the zone CA certificate (PEM)
	Root   string // "" for "/": where the packages' files are (tests)
	Log    io.Writer
}

// Result says what was built.
type Result struct {
	Kernel      string
	KernelBytes int64
	InitrdBytes int64
	Files       int
}

func (o *Options) path(p string) string { return filepath.Join(o.Root, p) }

// Build makes Output/vmlinuz and Output/initrd (a zstd-compressed newc
// cpio), each replaced atomically.
func Build(o Options) (Result, error) {
	var res Result
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Kernel == "" {
		ents, _ := os.ReadDir(o.path("/lib/modules"))
		for _, e := range ents {
			if _, err := os.Stat(o.path("/boot/vmlinuz-" + e.Name())); err == nil {
				o.Kernel = e.Name() // ReadDir sorts: the last is the newest of a series
			}
		}
		if o.Kernel == "" {
			return res, fmt.Errorf("no kernel with modules here: install %s", Packages)
		}
	}
	res.Kernel = o.Kernel
	kernel := o.path("/boot/vmlinuz-" + o.Kernel)
	need := append([]string{kernel, o.path("/bin/busybox"), o.Client}, Programs...)
	var missing []string
	for _, p := range need {
		if _, err := os.Stat(o.path(strings.TrimPrefix(p, o.Root))); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("missing %s: install %s", strings.Join(missing, ", "), Packages)
	}
	tmp, err := os.MkdirTemp("", "zonekit-bootenv-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	if err := o.populate(tmp); err != nil {
		return res, err
	}
	// zstd (the kernel unpacks it; Debian's has RD_ZSTD) at level 3: as
	// small as gzip -9 and fifty times faster.
	var cpio, zerr bytes.Buffer
	z := exec.Command(o.path("/usr/bin/zstd"), "-q", "-T0", "-3", "-c")
	z.Stdout, z.Stderr = &cpio, &zerr
	zin, err := z.StdinPipe()
	if err != nil {
		return res, err
	}
	if err := z.Start(); err != nil {
		return res, fmt.Errorf("zstd: %w", err)
	}
	n, err := writeCpio(bufio.NewWriterSize(zin, 1<<20), tmp)
	zin.Close()
	if werr := z.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("zstd: %v: %s", werr, zerr.String())
	}
	if err != nil {
		return res, err
	}
	res.Files = n
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		return res, err
	}
	kdata, err := os.ReadFile(kernel)
	if err != nil {
		return res, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.Output, "vmlinuz"), kdata, 0o644); err != nil {
		return res, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.Output, "initrd"), cpio.Bytes(), 0o644); err != nil {
		return res, err
	}
	res.KernelBytes, res.InitrdBytes = int64(len(kdata)), int64(cpio.Len())
	return res, nil
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// populate lays out the initramfs in dir.
func (o *Options) populate(dir string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "lib", "lib64", "proc", "sys", "dev", "tmp", "mnt", "run", "etc/zonekit"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile(o.path("/bin/busybox"), filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	list, err := exec.Command(o.path("/bin/busybox"), "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, a := range strings.Fields(string(list)) {
		if _, err := os.Lstat(filepath.Join(dir, "bin", a)); err != nil {
			os.Symlink("busybox", filepath.Join(dir, "bin", a))
		}
	}
	// Kernel modules and their dependencies, then the index depmod writes.
	mods := map[string]bool{}
	for _, m := range Modules {
		out, err := exec.Command("modprobe", "-S", o.Kernel, "-d", o.Root, "--show-depends", m).Output()
		if err != nil {
			o.logf("module %s: not in kernel %s, left out", m, o.Kernel)
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "insmod" {
				mods[f[1]] = true
			}
		}
	}
	for m := range mods {
		rel := strings.TrimPrefix(m, filepath.Clean(o.Root))
		if err := copyFile(m, filepath.Join(dir, rel), 0o644); err != nil {
			return err
		}
	}
	mdir := "/lib/modules/" + o.Kernel
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		copyFile(o.path(mdir+"/"+f), filepath.Join(dir, mdir, f), 0o644)
	}
	if out, err := exec.Command("depmod", "-b", dir, o.Kernel).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod: %v: %s", err, out)
	}
	// Programs and the libraries they load.
	libs := map[string]bool{}
	progs := append([]string{}, Programs...)
	for _, p := range progs {
		if err := copyFile(o.path(p), filepath.Join(dir, p), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile(o.Client, filepath.Join(dir, "bin/pbserv"), 0o755); err != nil {
		return err
	}
	for _, p := range append(progs, o.Client) {
		src := p
		if p != o.Client {
			src = o.path(p)
		}
		out, err := exec.Command("ldd", src).Output()
		if err != nil {
			continue // static
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				libs[f[2]] = true
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				libs[f[0]] = true
			}
		}
	}
	// glibc dlopen()s libgcc_s for pthread_exit; ldd does not list it, and
	// partclone aborts at its end without it.
	for _, l := range []string{"/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1"} {
		if _, err := os.Stat(o.path(l)); err == nil {
			libs[l] = true
			break
		}
	}
	for l := range libs {
		if err := copyFile(l, filepath.Join(dir, l), 0o755); err != nil {
			return err
		}
	}
	os.Symlink("partclone.extfs", filepath.Join(dir, "usr/sbin/partclone.ext4"))
	if err := os.WriteFile(filepath.Join(dir, "etc/zonekit/zone-ca.pem"), o.CA, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "init"), initScript, 0o755)
}

// copyFile copies src (following links) to dst, making its directory.
func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

// writeCpio writes dir as a newc archive (what the kernel unpacks), owned
// by root, with /dev/console added; it returns the number of entries.
func writeCpio(w io.Writer, dir string) (int, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(paths)
	ino := 1
	entry := func(name string, mode uint32, data []byte, rmaj, rmin int) error {
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
		ino++
		b := append([]byte(hdr), name...)
		b = append(b, 0)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		_, err := w.Write(b)
		return err
	}
	n := 0
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return n, err
		}
		name, _ := filepath.Rel(dir, p)
		perm := uint32(fi.Mode().Perm())
		switch {
		case fi.IsDir():
			err = entry(name, 0o040000|perm, nil, 0, 0)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			err = entry(name, 0o120777, []byte(target), 0, 0)
		case fi.Mode().IsRegular():
			data, rerr := os.ReadFile(p)
			if rerr != nil {
				return n, rerr
			}
			err = entry(name, 0o100000|perm, data, 0, 0)
		default:
			return n, errors.New("unexpected file type in the initramfs: " + name)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	if err := entry("dev/console", 0o020600, nil, 5, 1); err != nil {
		return n, err
	}
	if err := entry("TRAILER!!!", 0, nil, 0, 0); err != nil {
		return n, err
	}
	if f, ok := w.(interface{ Flush() error }); ok {
		return n + 1, f.Flush()
	}
	return n + 1, nil
}
