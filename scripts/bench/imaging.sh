#!/usr/bin/env bash
# Imaging performance against issue 20's targets, in one run:
#  1. image download from pbserv (HTTPS, a zone administrator) side by side
#     with nginx serving the same file over HTTPS with the same certificate,
#     curl to /dev/null on loopback, best of RUNS; target pbserv >= 0.9x nginx.
#  2. a multicast session through pbserv (session join with task tokens,
#     udp-sender started by pbserv) to 1 and to 3 receivers, each a network
#     namespace on a bridge running udp-receiver into a file; the server's
#     transmitted bytes (its veth's counters) and the time until the last
#     receiver is done; targets: server bytes for 3 <= 1.1x the image size,
#     time for 3 <= 1.3x the time for 1.
#  3. with nftables: the 3-receiver session again with LOSS_PCT (2) % of
#     the data packets to one receiver dropped: every receiver still gets
#     the image whole (udpcast retransmits), at what cost in bytes and time.
#
# Needs root, ip, curl, nginx, udpcast and Go. Environment: SIZE_MB (image
# size, default 256), RUNS (3). Results: a table on stdout and
# scripts/bench/out/imaging.txt. Exit status: 0 when the targets are met,
# 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$here/out
size_mb=${SIZE_MB:-256}
runs=${RUNS:-3}

[ "$(id -u)" = 0 ] || { echo "imaging.sh: needs root (network namespaces)" >&2; exit 2; }
for t in ip curl nginx udp-receiver udp-sender; do command -v $t >/dev/null || { echo "imaging.sh: $t is not installed" >&2; exit 2; }; done

mkdir -p "$out"
work=$(mktemp -d -t zonekit-imaging-bench.XXXXXX)
# Receivers write to memory, as the imaging environment's disks are not
# the host's disk.
shm=$(mktemp -d -p /dev/shm zonekit-imaging-bench.XXXXXX)
id=$$
br=zkib$id srv=zkis$id
cleanup() {
  for ns in $srv $br zkir${id}_1 zkir${id}_2 zkir${id}_3; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work" "$shm"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building zconfigure, zman, pbserv..." >&2
for c in zconfigure zman pbserv; do (cd "$root" && go build -o "$work/$c" ./cmd/$c); done
export PATH=$work:$PATH

# The topology: a bridge namespace; the server's namespace (zone server,
# pbserv) at 10.97.0.2 on veth s1; receivers at 10.97.0.11-13.
ip netns add $br; ip netns add $srv
ip -n $br link add br0 type bridge; ip -n $br link set br0 up
ip -n $br link add s0 type veth peer name s1 netns $srv
ip -n $br link set s0 master br0; ip -n $br link set s0 up
ip -n $srv addr add 10.97.0.2/24 broadcast + dev s1; ip -n $srv link set s1 up; ip -n $srv link set lo up
for i in 1 2 3; do
  ns=zkir${id}_$i
  ip netns add $ns
  ip -n $br link add r${i}0 type veth peer name r${i}1 netns $ns
  ip -n $br link set r${i}0 master br0; ip -n $br link set r${i}0 up
  ip -n $ns addr add 10.97.0.1$i/24 broadcast + dev r${i}1; ip -n $ns link set r${i}1 up; ip -n $ns link set lo up
done

home=$work/zone
export ZONEKIT_HOME=$home ZMAN_USER=Administrator
umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$work/pw"; umask 022
ZMAN_PASSWORD=$(cat "$work/pw"); export ZMAN_PASSWORD
port=$((20000 + id % 20000))
ip netns exec $srv zconfigure -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --dns localhost --ip 127.0.0.1 --port $port >/dev/null
ip netns exec $srv zconfigure -c Start --action start >/dev/null
mkdir -p "$home/conf/preboot"
printf 'IPAddress = 10.97.0.2\nImagingPort = 8070\nEnableLogging = NO\n' >"$home/conf/preboot/pbserv.conf"
printf 'LocalInterface = 10.97.0.2\nPolicyPort = 8069\n' >"$home/conf/preboot/zmgprebootpolicy.conf"
ip netns exec $srv pbserv pbserv start >/dev/null
ip netns exec $srv pbserv zmgprebootpolicy start >/dev/null

echo "writing a $size_mb MiB image..." >&2
head -c $((size_mb << 20)) /dev/urandom >"$work/disk.img"
ip netns exec $srv pbserv image-upload --server 10.97.0.2:8070 "$work/disk.img" >/dev/null
bytes=$((size_mb << 20))

# 1. Download: pbserv against nginx, the same file, certificate and client.
mkdir -p "$work/www"; ln "$home/data/images/disk.img" "$work/www/disk.img"
cat >"$work/nginx.conf" <<NGX
daemon on; user root; worker_processes 1; pid $work/nginx.pid; error_log $work/nginx.err;
events {}
http {
  access_log off; sendfile on;
  server {
    listen 10.97.0.2:8443 ssl;
    ssl_certificate $home/conf/server.pem;
    ssl_certificate_key $home/conf/security/server.key;
    root $work/www;
  }
}
NGX
ip netns exec $srv nginx -c "$work/nginx.conf"
auth=$work/curl-auth
printf 'user = "Administrator:%s"\n' "$ZMAN_PASSWORD" >"$auth"
best() { # URL [curl args]: the best MiB/s of RUNS downloads
  local url=$1; shift; local b=0
  for _ in $(seq "$runs"); do
    read -r code size s < <(ip netns exec $srv curl -sS -o /dev/null -w '%{http_code} %{size_download} %{speed_download}\n' --cacert "$home/conf/zone-ca.pem" "$@" "$url")
    [ "$code" = 200 ] && [ "$size" = "$bytes" ] || { echo "imaging.sh: $url: HTTP $code, $size bytes" >&2; exit 1; }
    b=$(awk -v a="$b" -v s="$s" 'BEGIN {print (s > a) ? s : a}')
  done
  awk -v b="$b" 'BEGIN {printf "%.1f", b / 1048576}'
}
nginx_mibs=$(best https://localhost:8443/disk.img --resolve localhost:8443:10.97.0.2)
pbserv_mibs=$(best https://localhost:8070/images/disk.img --resolve localhost:8070:10.97.0.2 -K "$auth")
ratio_dl=$(awk -v p="$pbserv_mibs" -v n="$nginx_mibs" 'BEGIN {printf "%.2f", p / n}')

# 2. Multicast: a session of N receivers through pbserv.
session() { # N [LOSS]: prints "txbytes seconds"
  local n=$1 loss=${2:-0}
  local s=mc$n$RANDOM
  for i in $(seq "$n"); do
    ip netns exec $srv zman preboot-assign-image --multicast $s --clients "$n" --wait 60 "52:54:00:00:0$n:1$i" disk.img >/dev/null
    ip netns exec $srv curl -sS --fail "http://10.97.0.2:8069/ipxe/52-54-00-00-0$n-1$i" | sed -n 's/^set zonekit-token //p' >"$work/tok$i"
  done
  local tx0 t0 t1 tx1
  tx0=$(ip netns exec $srv cat /sys/class/net/s1/statistics/tx_bytes)
  t0=$EPOCHREALTIME
  for i in $(seq "$n"); do
    (
      ns=zkir${id}_$i
      info=$(ip netns exec $ns curl -sS --fail --cacert "$home/conf/zone-ca.pem" -H "Authorization: Bearer $(cat "$work/tok$i")" --resolve localhost:8070:10.97.0.2 https://localhost:8070/tasks/session)
      pb=$(printf '%s' "$info" | sed -n 's/.*"portbase":\([0-9]*\).*/\1/p')
      if [ "$loss" != 0 ] && [ "$i" = 1 ]; then
        ip netns exec $ns nft add table inet loss
        ip netns exec $ns nft add chain inet loss in '{ type filter hook input priority 0; }'
        ip netns exec $ns nft add rule inet loss in udp dport "$pb" numgen random mod 100 '<' "$loss" drop
      fi
      ip netns exec $ns udp-receiver --interface r${i}1 --portbase "$pb" --nokbd --nosync --no-progress \
        --rcvbuf 8388608 --start-timeout 60 --file "$shm/recv$i" 2>"$work/recv$i.log"
    ) &
  done
  wait
  t1=$EPOCHREALTIME
  tx1=$(ip netns exec $srv cat /sys/class/net/s1/statistics/tx_bytes)
  for i in $(seq "$n"); do cmp -s "$shm/recv$i" "$work/disk.img" || { echo "imaging.sh: receiver $i got a different file" >&2; exit 1; }; rm -f "$shm/recv$i"; done
  awk -v a="$t0" -v b="$t1" -v x0="$tx0" -v x1="$tx1" 'BEGIN {printf "%d %.2f\n", x1 - x0, b - a}'
}
read -r tx1 s1 < <(session 1)
read -r tx3 s3 < <(session 3)
loss_pct=${LOSS_PCT:-2}
txl= sl=
if command -v nft >/dev/null; then
  read -r txl sl < <(session 3 "$loss_pct")
fi
bytes_ratio=$(awk -v t="$tx3" -v b="$bytes" 'BEGIN {printf "%.3f", t / b}')
time_ratio=$(awk -v a="$s3" -v b="$s1" 'BEGIN {printf "%.2f", a / b}')

ok=1
pass() { awk -v v="$1" -v t="$2" -v d="$3" 'BEGIN {exit !((d == "ge") ? v >= t : v <= t)}' && echo pass || { ok=0; echo FAIL; }; }
{
  echo "imaging benchmarks ($(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs), image $size_mb MiB, best of $runs"
  printf '%-52s %12s %10s %s\n' "measure" "value" "target" "result"
  printf '%-52s %12s %10s\n' "download nginx HTTPS (MiB/s)" "$nginx_mibs" "-"
  printf '%-52s %12s %10s\n' "download pbserv HTTPS (MiB/s)" "$pbserv_mibs" "-"
  printf '%-52s %12s %10s %s\n' "pbserv / nginx" "$ratio_dl" ">= 0.9" "$(pass "$ratio_dl" 0.9 ge)"
  printf '%-52s %12s %10s\n' "multicast 1 receiver: server bytes, seconds" "$tx1 ${s1}s" "-"
  printf '%-52s %12s %10s\n' "multicast 3 receivers: server bytes, seconds" "$tx3 ${s3}s" "-"
  printf '%-52s %12s %10s %s\n' "multicast 3: server bytes / image size" "$bytes_ratio" "<= 1.1" "$(pass "$bytes_ratio" 1.1 le)"
  printf '%-52s %12s %10s %s\n' "multicast 3 / 1 receiver time" "$time_ratio" "<= 1.3" "$(pass "$time_ratio" 1.3 le)"
  if [ -n "$txl" ]; then
    printf '%-52s %12s %10s\n' "multicast 3, $loss_pct% loss at one: bytes ratio, seconds" "$(awk -v t="$txl" -v b="$bytes" 'BEGIN {printf "%.3f", t / b}') ${sl}s" "whole"
  fi
} | tee "$out/imaging.txt"
[ "$ok" = 1 ]
