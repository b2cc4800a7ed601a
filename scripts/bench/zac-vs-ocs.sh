#!/usr/bin/env bash
# One PKG_MIB (default 100) MiB package (random data, a launch of a no-op,
# FRAGMENT_SIZE fragments) deployed from the same zone server by zac and
# by the Debian ocsinventory-agent, every latency 0 (issue 18). Times: from
# the agent's start until the zone records SUCCESS for its device. Target:
# zac at most 0.5 x the OCS agent's time. Needs root (the OCS agent) and
# ocsinventory-agent (apt-get install ocsinventory-agent
# liblwp-protocol-https-perl). Exit status 1 when the target is missed.
#
#   scripts/bench/zac-vs-ocs.sh            # PKG_MIB=100 FRAGMENT_SIZE=1M RUNS=3
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pkg_mib=${PKG_MIB:-100}
frag=${FRAGMENT_SIZE:-1M}
runs=${RUNS:-3}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-zac-ocs.XXXXXX)
bin=$work/bin
home=$work/zone
cleanup() {
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
command -v ocsinventory-agent >/dev/null || { echo "ocsinventory-agent is not installed" >&2; exit 2; }

(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure ./cmd/zac)
export PATH=$bin:$PATH ZONEKIT_HOME=$home ZMAN_CONFIG_DIR=$work/zman
. "$(dirname "$0")/zone-lib.sh"
start_zone 19960
zman package-download-config --frag-latency 0 --cycle-latency 0 --period-latency 0 --period-length 10 --timeout 1 --execution-timeout 10 >/dev/null
ocs=https://localhost:$port/ocsinventory

# The OCS agent's device: its first contact.
ocsinventory-agent --server="$ocs" --nolocal --basevardir="$work/ocs" --ca="$ca" --logfile="$work/ocs.log" >/dev/null 2>&1
for _ in $(seq 1 300); do zman dl | grep -q " ocs " && break; sleep 0.1; done
dev=$(zman dl -o json | sed -n 's/.*"id": "\(ocs-[0-9a-f]*\)".*/\1/p' | head -1)
zac --home "$work/zac" register --cacert "$ca" --hostname zacbench "https://localhost:$port" >/dev/null

mkdir "$work/src"
head -c $((pkg_mib << 20)) /dev/urandom >"$work/src/payload.bin"
printf '#!/bin/sh\nexit 0\n' >"$work/src/install.sh"

status() { zman package-stats "$1" --device "$2" -o json | sed -n 's/^ *"status": "\([^"]*\)".*/\1/p' | tail -1; }
now() { date +%s.%N; }
zac_times=() ocs_times=()
for r in $(seq 1 "$runs"); do
  zman package-create "bench$r" --os linux --action launch --command install.sh --file "$work/src" --fragment-size "$frag" --priority 1 -o json >"$work/pkg.json"
  id=$(sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' "$work/pkg.json")
  zman package-activate "$id" --info-location "localhost:$port/content" --pack-location "127.0.0.1:$cport/content" >/dev/null
  zman package-assign "$id" zacbench "$dev" >/dev/null
  sync
  t0=$(now)
  zac --home "$work/zac" refresh >/dev/null
  t1=$(now)
  [ "$(status "$id" zacbench)" = SUCCESS ] || { echo "zac did not reach SUCCESS" >&2; exit 1; }
  sync
  t2=$(now)
  ocsinventory-agent --server="$ocs" --nolocal --basevardir="$work/ocs" --ca="$ca" --logfile="$work/ocs.log" >/dev/null 2>&1
  until [ "$(status "$id" "$dev")" = SUCCESS ]; do
    case "$(status "$id" "$dev")" in ERR_*) echo "the OCS agent failed: $(status "$id" "$dev")" >&2; exit 1 ;; esac
    sleep 0.05
  done
  t3=$(now)
  z=$(echo "$t1 - $t0" | bc) o=$(echo "$t3 - $t2" | bc)
  echo "run $r: zac ${z}s, ocsinventory-agent ${o}s"
  zac_times+=("$z") ocs_times+=("$o")
  zman package-delete --yes "$id" >/dev/null
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
zm=$(median "${zac_times[@]}") om=$(median "${ocs_times[@]}")
ratio=$(echo "scale=2; $zm / $om" | bc)
echo "median: zac ${zm}s, ocsinventory-agent ${om}s, ratio $ratio (target <= 0.5)" | tee "$out/zac-vs-ocs.txt"
awk -v r="$ratio" 'BEGIN{exit !(r <= 0.5)}' || { echo "MISSED: zac > 0.5 x the OCS agent"; exit 1; }
