#!/usr/bin/env bash
# Content replication benchmark (issue 10): a zone server on 127.0.0.1
# holds a PKG_MIB (default 1024) MiB package; a second server joins on
# 127.0.0.2 and pulls it (HTTPS, mutual TLS, every fragment checked
# against its SHA-256, written and synced). Reported: the pull's rate
# (bytes / duration, from the joining server's log), the time from the
# new server's start to the package present in content-replication-status,
# and, side by side, curl fetching the same files from the same server
# with the same client certificate (PARALLEL transfers at a time, as the
# puller does), written to the same disk.
#
#   scripts/bench/content-replication.sh     # PKG_MIB=1024 FRAGMENT_SIZE=1M PARALLEL=4
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pkg_mib=${PKG_MIB:-1024}
frag=${FRAGMENT_SIZE:-1M}
parallel=${PARALLEL:-4}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-crep-bench.XXXXXX)
bin=$work/bin
h1=$work/s1
h2=$work/s2
cleanup() {
  for h in "$h2" "$h1"; do
    [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$h" -c Start --action stop >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
command -v curl >/dev/null || { echo "curl is needed (apt-get install curl)" >&2; exit 2; }

echo "==> building"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure)
export PATH=$bin:$PATH ZMAN_CONFIG_DIR=$work/zman ZMAN_USER=Administrator ZMAN_PASSWORD=bench-admin-pw
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
port=$(free_port 19900)
cport=$(free_port $((port + 1)))
printf 'bench-admin-pw\n' >"$work/pw"
zconfigure --home "$h1" -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --port "$port" --dns localhost --ip 127.0.0.1 \
  -D server.address=127.0.0.1 -D server.content-port="$cport" >/dev/null
zconfigure --home "$h1" -c Start --action start >/dev/null
export ZONEKIT_HOME=$h1

echo "==> building a $pkg_mib MiB package in fragments of $frag"
mkdir "$work/src"
head -c $((pkg_mib << 20)) /dev/urandom >"$work/src/payload.bin"
printf '#!/bin/sh\necho installed\n' >"$work/src/install.sh"
zman package-create bench --os linux --action launch --command install.sh --file "$work/src" --fragment-size "$frag" -o json >"$work/pkg.json"
rm -rf "$work/src"
id=$(sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' "$work/pkg.json")
frags=$(sed -n 's/^ *"fragments": \([0-9]*\).*/\1/p' "$work/pkg.json")
size=$(sed -n 's/^ *"size": \([0-9]*\).*/\1/p' "$work/pkg.json")
echo "package $id: $frags fragments, $size bytes"
fp=$(zman certificate-authority-info | sed -n 's/.*SHA-256: *\([^ ]*\).*/\1/p')

echo "==> a second server joins and pulls it"
zconfigure --home "$h2" -c JoinZone --server "https://localhost:$port" --fingerprint "$fp" --admin-password-file "$work/pw" \
  --dns 127.0.0.2 --ip 127.0.0.2 --port "$port" -D server.address=127.0.0.2 -D server.content-port="$cport" >/dev/null
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(date +%s.%N)
zconfigure --home "$h2" -c Start --action start >/dev/null
until zman content-replication-status --server 127.0.0.2 --package "$id" -o json | grep -q '"state": "present"'; do sleep 0.2; done
t1=$(date +%s.%N)
line=$(grep 'package pulled' "$h2/logs/zoneserver.log" | tail -1)
ms=$(sed -n 's/.*"duration_ms":\([0-9]*\).*/\1/p' <<<"$line")
received=$(sed -n 's/.*"received":\([0-9]*\).*/\1/p' <<<"$line")
echo "$line"

echo "==> curl fetches the same files, $parallel at a time"
dl=$work/curl
mkdir "$dl"
{
  echo 'cacert = "'"$h1/conf/zone-ca.pem"'"'
  echo 'cert = "'"$h2/conf/server.pem"'"'
  echo 'key = "'"$h2/conf/security/server.key"'"'
  for f in info manifest.json; do
    echo "url = \"https://localhost:$port/content/$id/$f\""
    echo "output = \"$dl/$f\""
  done
  for i in $(seq 1 "$frags"); do
    echo "url = \"https://localhost:$port/content/$id/$id-$i\""
    echo "output = \"$dl/$id-$i\""
  done
} >"$work/curl.cfg"
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
c0=$(date +%s.%N)
curl -sS --no-progress-meter --fail -Z --parallel-max "$parallel" -K "$work/curl.cfg"
sync -f "$dl"
c1=$(date +%s.%N)
cmp "$dl/$id-1" "$h2/data/content-repo/$id/$id-1"

awk -v size="$size" -v ms="$ms" -v got="$received" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" 'BEGIN {
  mb = 1000 * 1000
  z = got / (ms / 1000) / mb
  c = size / (c1 - c0) / mb
  printf "zonekit pull: %d bytes in %.2f s = %.0f MB/s\n", got, ms / 1000, z
  printf "new server start to package present: %.2f s\n", t1 - t0
  printf "curl (same files, same certificate): %.2f s = %.0f MB/s\n", c1 - c0, c
  printf "zonekit / curl: %.2f\n", z / c
}' | tee "$out/content-replication.txt"
