package bootenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/testenv"
)

// TestBuild builds the environment from this machine's packages and reads
// the initramfs back with cpio: /init, the client, the zone CA, the disk
// tools, libgcc_s (which ldd does not list) and the module index.
func TestBuild(t *testing.T) {
	for _, p := range append([]string{"/bin/busybox"}, Programs...) {
		if _, err := os.Stat(p); err != nil {
			testenv.Missing(t, fmt.Sprintf("%s is missing: apt-get install %s", p, Packages))
		}
	}
	testenv.Tool(t, "cpio", "apt-get install cpio")
	self, _ := os.Executable()
	out := t.TempDir()
	res, err := Build(Options{Output: out, Client: self, CA: []byte("-----BEGIN CERTIFICATE-----\n")})
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("sh", "-c", "zstd -dc "+filepath.Join(out, "initrd")+" | cpio -it --quiet").Output()
	if err != nil {
		t.Fatal(err)
	}
	names := "\n" + string(list)
	for _, want := range []string{"init", "bin/pbserv", "bin/busybox", "bin/udhcpc", "etc/zonekit/zone-ca.pem", "usr/sbin/partclone.extfs", "usr/bin/udp-receiver",
		"lib/x86_64-linux-gnu/libgcc_s.so.1", "lib/modules/" + res.Kernel + "/modules.dep", "dev/console"} {
		if !strings.Contains(names, "\n"+want+"\n") {
			t.Errorf("initrd lacks %s", want)
		}
	}
	if !strings.Contains(names, "/virtio_blk.ko") || !strings.Contains(names, "/e1000.ko") {
		t.Error("initrd lacks the disk or network modules")
	}
	if fi, err := os.Stat(filepath.Join(out, "vmlinuz")); err != nil || fi.Size() != res.KernelBytes {
		t.Errorf("vmlinuz: %v", err)
	}
}
