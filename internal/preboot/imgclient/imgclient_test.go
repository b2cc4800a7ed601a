package imgclient

import "testing"

func TestParseCmdline(t *testing.T) {
	task := ParseCmdline("BOOT_IMAGE=vmlinuz initrd=initrd console=ttyS0 zonekit.action=image zonekit.image=pc1.img zonekit.server=https://10.99.0.2:8070/ zonekit.mac=52:54:00:12:34:56 zonekit.token=zkimg1.a.b zonekit.disk=/dev/sda zonekit.iface=ens3 zonekit.bogus=1")
	want := Task{Action: "image", Image: "pc1.img", Server: "https://10.99.0.2:8070", Token: "zkimg1.a.b", MAC: "52:54:00:12:34:56", Disk: "/dev/sda", Iface: "ens3", CA: "/etc/zonekit/zone-ca.pem"}
	if task != want {
		t.Fatalf("got %+v\nwant %+v", task, want)
	}
}

func TestPartNode(t *testing.T) {
	for disk, want := range map[string]string{"/dev/vda": "/dev/vda2", "/dev/nvme0n1": "/dev/nvme0n1p2", "/dev/mmcblk0": "/dev/mmcblk0p2"} {
		if got := partNode(disk, 2); got != want {
			t.Errorf("%s: %s, want %s", disk, got, want)
		}
	}
}
