#!/bin/sh
# zonekit imaging environment: /init of the initramfs 'pbserv
# imaging-build' makes. It brings up the disk and the network, then hands
# the task on the kernel command line (zonekit.action, zonekit.image,
# zonekit.server, zonekit.token, zonekit.mac, zonekit.disk) to the imaging
# client, and powers the machine off. Every step prints a line on the
# console.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
say() { echo "zonekit-imaging: $*"; }
fin() { say "finished: $1"; sync; poweroff -f; }
say "started, kernel $(uname -r)"

# Drivers: what the devices ask for, twice (virtio_pci adds the virtio
# devices, ahci the SCSI disks).
load() { for f in $(find /sys/devices -name modalias); do modprobe -q "$(cat "$f")" 2>/dev/null; done; }
load; load
n=0; until [ -e /sys/class/net/eth0 ]; do
  n=$((n+1)); [ $n -gt 50 ] && { say "no network interface"; fin failed; }; sleep 0.1; done

ip link set lo up; ip link set eth0 up
mkdir -p /etc
cat > /etc/udhcpc.script <<'S'
#!/bin/sh
case "$1" in bound|renew)
  ip addr flush dev $interface
  ip addr add $ip/${mask:-24} broadcast + dev $interface
  [ -n "$router" ] && ip route add default via ${router%% *} dev $interface;;
esac
S
chmod +x /etc/udhcpc.script
udhcpc -i eth0 -s /etc/udhcpc.script -q -f -n -t 5 -T 3 >/dev/null 2>&1 || { say "no DHCP answer"; fin failed; }
say "network: $(ip -4 -o addr show dev eth0 | awk '{print $4}')"

if /bin/pbserv imaging-client; then fin ok; else fin failed; fi
