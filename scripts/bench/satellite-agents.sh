#!/usr/bin/env bash
# Content satellite serving real agents (issue 11): AGENTS (default 200)
# registered agents on this machine, each with its own home, deploy a
# PKG_MIB (default 8) MiB package (random data, launch of a no-op, every
# latency 0) all at once with `zac refresh`, twice: first with the
# fragments from the zone server's content port (no satellite), then a
# second package of the same size after a content satellite was added
# (`zac satellite-serve`, cache filled by its prefetch): agents then find
# the satellite first in their fragment locations, by themselves. Reports
# both times and their ratio, and how many agents took their fragments from
# the satellite. Target: the satellite at least the zone server's speed.
#
#   scripts/bench/satellite-agents.sh     # AGENTS=200 PKG_MIB=8 FRAGMENT_SIZE=1M
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agents=${AGENTS:-200}
pkg_mib=${PKG_MIB:-8}
frag=${FRAGMENT_SIZE:-1M}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-sat-bench.XXXXXX)
bin=$work/bin
home=$work/zone
sat_pid=""
cleanup() {
  [ -n "$sat_pid" ] && kill "$sat_pid" 2>/dev/null || true
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

echo "==> building"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure ./cmd/zac)
export PATH=$bin:$PATH ZONEKIT_HOME=$home ZMAN_CONFIG_DIR=$work/zman
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
port=$(free_port 19950)
cport=$(free_port $((port + 1)))
sport=$(free_port $((cport + 1)))
printf 'bench-admin-pw\n' >"$work/pw"
zconfigure -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --port "$port" --dns localhost --ip 127.0.0.1 >/dev/null
zconfigure -D server.content-port="$cport" >/dev/null
zconfigure -c Start --action start >/dev/null
ZMAN_USER=Administrator ZMAN_PASSWORD=bench-admin-pw zman admin-store-credential >/dev/null
zman package-download-config --frag-latency 0 --cycle-latency 0 --period-latency 0 --period-length 10 >/dev/null
ca=$home/conf/zone-ca.pem
url=https://localhost:$port

echo "==> registering $agents agents"
seq 1 "$agents" | xargs -P 20 -I{} zac --home "$work/agents/a{}" register --cacert "$ca" --hostname "bench{}" "$url" >/dev/null 2>&1

# package NAME: builds, activates and prints the id of a PKG_MIB package.
package() {
  mkdir -p "$work/src"
  head -c $((pkg_mib << 20)) /dev/urandom >"$work/src/payload.bin"
  printf '#!/bin/sh\nexit 0\n' >"$work/src/install.sh"
  zman package-create "$1" --os linux --action launch --command install.sh --file "$work/src" --fragment-size "$frag" -o json >"$work/$1.json"
  rm -rf "$work/src"
  local id
  id=$(sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' "$work/$1.json")
  zman package-activate "$id" >/dev/null
  echo "$id"
}
# deploy ID: seconds for every agent to deploy ID with zac refresh.
deploy() {
  zman package-assign "$1" --all >/dev/null
  sync
  local start end
  start=$(date +%s.%N)
  seq 1 "$agents" | xargs -P "$agents" -I{} zac --home "$work/agents/a{}" refresh >/dev/null || true
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
success() { zman package-stats "$1" -o json | tr -d ' \n' | sed -n 's/.*"status":"SUCCESS","count":\([0-9]*\).*/\1/p'; }

echo "==> zone server: $agents agents x $pkg_mib MiB"
p1=$(package direct)
zone_s=$(deploy "$p1")
zone_ok=$(success "$p1")
echo "zone content port: ${zone_s}s, ${zone_ok:-0} SUCCESS"

echo "==> content satellite"
zac --home "$work/sat" register --cacert "$ca" --hostname bench-sat "$url" >/dev/null
zman satellite-add-role bench-sat --content-url "http://127.0.0.1:$sport/content" --parent "http://127.0.0.1:$cport/content" --prefetch-interval 1h >/dev/null
# Every agent learns the satellite at its next refresh; the one in deploy
# sees it already in the package list (locations are computed per answer).
p2=$(package via-satellite)
zac --home "$work/sat" satellite-serve --listen "127.0.0.1:$sport" >"$work/sat.log" 2>&1 &
sat_pid=$!
for _ in $(seq 600); do [ -s "$work/sat/satellite-cache/prefetch.json" ] && break; sleep 0.1; done
grep -q '"failed": 0' "$work/sat/satellite-cache/prefetch.json" || { cat "$work/sat.log" >&2; exit 1; }
sat_s=$(deploy "$p2")
sat_ok=$(success "$p2")
from_sat=$(grep -l "package $p2: fragment 1/[0-9]* in, from 127.0.0.1:$sport/content" "$work"/agents/a*/logs/deploy.log | wc -l)
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$sat_pid/status")
echo "satellite: ${sat_s}s, ${sat_ok:-0} SUCCESS, $from_sat agents fetched from it"
ratio=$(echo "scale=2; $zone_s / $sat_s" | bc)
{
  echo "$agents agents x $pkg_mib MiB ($frag fragments), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
  echo "zone content port: ${zone_s}s (${zone_ok:-0} SUCCESS)"
  echo "content satellite: ${sat_s}s (${sat_ok:-0} SUCCESS, $from_sat agents from the satellite), peak RSS $hwm MiB"
  echo "satellite speed / zone server speed: $ratio (target >= 1: $(awk -v r="$ratio" 'BEGIN {print (r >= 1) ? "PASS" : "FAIL"}'))"
} | tee "$out/satellite-agents.txt"
[ "${sat_ok:-0}" -ge "$agents" ] && [ "$from_sat" -ge "$agents" ] && awk -v r="$ratio" 'BEGIN {exit !(r >= 1)}'
