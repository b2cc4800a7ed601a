#!/usr/bin/env bash
# zac deployment benchmarks (issue 6), against a zone server built and run
# in a temporary directory:
#  1. `zac refresh` with nothing to do, whole process (hyperfine -N, median
#     of RUNS), beside curl asking the same device route with the same
#     client certificate. Target: < 20 ms (issue 18; issue 6 had 50 ms).
#  2. AGENTS (default 200) agents on this machine, each with its own home,
#     deploying one PKG_MIB (default 100) MiB package (random data, launch
#     of a no-op) in FRAGMENT_SIZE fragments with every latency 0, all at
#     once: `zac refresh` processes until every one has reported SUCCESS;
#     then AGENTS `curl | tar xz` pipelines fetching the same fragments and
#     unpacking them into their own directories (issue 18: what an agent
#     does, less the checks). Target: agents within 1.5 x the pipelines.
#
#   scripts/bench/zac-deploy.sh            # AGENTS=200 PKG_MIB=100 FRAGMENT_SIZE=1M RUNS=50
# Disk: AGENTS x PKG_MIB for curl, and up to twice that for the agents
# (fragments, then the unpacked files) in $TMPDIR. Exit status 1 when a
# target is missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agents=${AGENTS:-200}
pkg_mib=${PKG_MIB:-100}
frag=${FRAGMENT_SIZE:-1M}
runs=${RUNS:-50}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-zac-bench.XXXXXX)
bin=$work/bin
home=$work/zone
cleanup() {
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

echo "==> building"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure ./cmd/zac)
export PATH=$bin:$PATH ZONEKIT_HOME=$home ZMAN_CONFIG_DIR=$work/zman
. "$(dirname "$0")/zone-lib.sh"
start_zone 19900
zman package-download-config --frag-latency 0 --cycle-latency 0 --period-latency 0 --period-length 10 >/dev/null
url=https://localhost:$port

echo "==> 1. zac refresh with nothing to do ($runs runs)"
a0=$work/agents/a0
zac --home "$a0" register --cacert "$ca" --hostname bench0 "$url" >/dev/null
zac --home "$a0" refresh >/dev/null
hyperfine -N -w 5 -r "$runs" --export-json "$out/zac-refresh.json" "zac --home $a0 refresh" \
  "curl -s --fail --cacert $ca --cert $a0/device.pem --key $a0/security/device.key $url/api/v1/device/packages" >/dev/null
med() { awk -v n="$2" 'BEGIN{RS="\"median\": "} NR>1{split($0,a,","); m[NR-1]=a[1]} END{printf "%.1f", m[n]*1000}' "$1"; }
ref_ms=$(med "$out/zac-refresh.json" 1)
curl_ms=$(med "$out/zac-refresh.json" 2)
echo "zac refresh: $ref_ms ms (median); curl GET /device/packages: $curl_ms ms"

echo "==> 2. $agents agents, a $pkg_mib MiB package in fragments of $frag"
seq 1 "$agents" | xargs -P 20 -I{} zac --home "$work/agents/a{}" register --cacert "$ca" --hostname "bench{}" "$url" >/dev/null 2>&1
mkdir "$work/src"
head -c $((pkg_mib << 20)) /dev/urandom >"$work/src/payload.bin"
printf '#!/bin/sh\nexit 0\n' >"$work/src/install.sh"
zman package-create bench --os linux --action launch --command install.sh --file "$work/src" --fragment-size "$frag" --priority 1 -o json >"$work/pkg.json"
rm -rf "$work/src"
id=$(sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' "$work/pkg.json")
frags=$(sed -n 's/^ *"fragments": \([0-9]*\).*/\1/p' "$work/pkg.json")
zman package-activate "$id" >/dev/null
zman package-assign "$id" --all >/dev/null
sync
start=$(date +%s.%N)
seq 1 "$agents" | xargs -P "$agents" -I{} zac --home "$work/agents/a{}" refresh >/dev/null || true
end=$(date +%s.%N)
zac_s=$(echo "$end - $start" | bc)
# The download phase alone: from the start to the last agent's last fragment.
last=$(grep -h "fragment $frags/$frags in" "$work"/agents/a*/logs/deploy.log | cut -d' ' -f1 | sort | tail -1)
dl_s=$(echo "$(date -d "$last" +%s.%N) - $start" | bc)
ok=$(zman package-stats "$id" -o json | tr -d ' \n' | sed -n 's/.*"status":"SUCCESS","count":\([0-9]*\).*/\1/p')
echo "agents: ${zac_s}s, ${ok:-0} of $((agents + 1)) devices SUCCESS (bench0 included)"
rm -rf "$work/curl"
sync
start=$(date +%s.%N)
seq 1 "$agents" | xargs -P "$agents" -I{} sh -c 'mkdir -p "$1" && curl -s --fail "$2" | tar xzf - -C "$1"' - "$work/curl/c{}" "http://127.0.0.1:$cport/content/$id/$id-[1-$frags]"
end=$(date +%s.%N)
curl_s=$(echo "$end - $start" | bc)
got=$(du -sm "$work/curl" | cut -f1)
echo "curl | tar xz: ${curl_s}s ($got MiB unpacked)"
ratio=$(echo "scale=2; $zac_s / $curl_s" | bc)
echo "agents / curl: $ratio (download phase alone: ${dl_s}s, $(echo "scale=2; $dl_s / $curl_s" | bc) x curl)"
{
  echo "zac refresh, nothing to do: $ref_ms ms (curl $curl_ms ms)"
  echo "$agents agents x $pkg_mib MiB ($frags fragments of $frag): zac ${zac_s}s (downloads done at ${dl_s}s), curl ${curl_s}s, ratio $ratio"
} >"$out/zac-deploy.txt"
fail=0
awk -v m="$ref_ms" 'BEGIN{exit !(m < 20)}' || { echo "MISSED: refresh >= 20 ms"; fail=1; }
awk -v r="$ratio" 'BEGIN{exit !(r <= 1.5)}' || { echo "MISSED: agents > 1.5 x curl"; fail=1; }
[ "${ok:-0}" -ge "$agents" ] || { echo "MISSED: not every agent succeeded"; fail=1; }
exit $fail
