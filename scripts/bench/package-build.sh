#!/usr/bin/env bash
# Package build benchmark: zman package-create of a SIZE_MIB MiB tar.gz
# (default 1024) against a local zone server, side by side in one run with
# md5sum and sha256sum over the same file, all from a warm page cache.
# The build does more than either tool: it uploads the archive over TLS,
# computes its MD5 (for OCS agents), its SHA-256 and the SHA-256 of every
# fragment (for zonekit agents), checks the whole tar.gz, and writes and
# syncs the fragments.
#
#   scripts/bench/package-build.sh               # SIZE_MIB=1024 RUNS=3
#   SIZE_MIB=256 RUNS=1 scripts/bench/package-build.sh
# Target (issue 5): build speed >= 0.7 x the speed of md5sum and sha256sum
# run one after the other over the file (what an administrator computing
# both digests does). Exit status 1 when missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
size_mib=${SIZE_MIB:-1024}
runs=${RUNS:-3}
frag=${FRAGMENT_SIZE:-1M}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-package-bench.XXXXXX)
bin=$work/bin
home=$work/zone
cleanup() {
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> building"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure)
export PATH=$bin:$PATH ZONEKIT_HOME=$home ZMAN_CONFIG_DIR=$work/zman
port=19700
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
printf 'bench-admin-pw\n' >"$work/pw"
zconfigure -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --port "$port" --dns localhost --ip 127.0.0.1 >/dev/null
zconfigure -c Start --action start >/dev/null
ZMAN_USER=Administrator ZMAN_PASSWORD=bench-admin-pw zman admin-store-credential >/dev/null
pid=$(cat "$home/data/zoneserver.pid")

# Incompressible content, as installers are: the archive is about SIZE_MIB.
echo "==> making a $size_mib MiB tar.gz"
mkdir "$work/src"
head -c $((size_mib * 1024 * 1024 - 65536)) /dev/urandom >"$work/src/payload.bin"
printf '#!/bin/sh\necho installed\n' >"$work/src/install.sh"
tar -C "$work/src" -cf - . | gzip -1 >"$work/pkg.tgz"
rm -rf "$work/src"
bytes=$(stat -c %s "$work/pkg.tgz")
echo "archive: $bytes bytes"
cat "$work/pkg.tgz" >/dev/null # warm the page cache for every contender

# best NAME CMD...: the fastest of RUNS wall times, in seconds.
declare -A best
timeit() {
  local name=$1 i s e t
  shift
  for ((i = 0; i < runs; i++)); do
    s=$EPOCHREALTIME
    "$@" >/dev/null
    e=$EPOCHREALTIME
    t=$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.3f", b - a}')
    echo "  $name run $((i + 1)): ${t}s"
    if [ -z "${best[$name]:-}" ] || awk -v a="$t" -v b="${best[$name]}" 'BEGIN {exit !(a < b)}'; then best[$name]=$t; fi
  done
}
build() {
  zman package-create bench --os linux --action launch --command install.sh --file "$work/pkg.tgz" --fragment-size "$frag" -o json >"$work/pkg.json"
  id=$(sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' "$work/pkg.json")
  zman package-delete --yes "$id" >/dev/null # keeps the disk from filling across runs
}
both() { md5sum "$work/pkg.tgz" & sha256sum "$work/pkg.tgz"; wait; }

echo "==> timing (best of $runs)"
timeit md5sum md5sum "$work/pkg.tgz"
timeit sha256sum sha256sum "$work/pkg.tgz"
timeit md5sum+sha256sum-parallel both
timeit zman-package-create build
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")

mibs() { awk -v b="$bytes" -v t="$1" 'BEGIN {printf "%.0f", b / t / 1048576}'; }
seq=$(awk -v a="${best[md5sum]}" -v b="${best[sha256sum]}" 'BEGIN {printf "%.3f", a + b}')
b=${best[zman-package-create]}
ratio() { awk -v t="$1" -v b="$b" 'BEGIN {printf "%.2f", t / b}'; }
r_seq=$(ratio "$seq")
{
  echo
  echo "package build, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $((bytes >> 20)) MiB tar.gz, fragments of $frag"
  printf '%-40s %8s %9s %s\n' "contender" "wall s" "MiB/s" "zman speed / its speed"
  printf '%-40s %8s %9s %s\n' "md5sum" "${best[md5sum]}" "$(mibs "${best[md5sum]}")" "$(ratio "${best[md5sum]}")"
  printf '%-40s %8s %9s %s\n' "sha256sum" "${best[sha256sum]}" "$(mibs "${best[sha256sum]}")" "$(ratio "${best[sha256sum]}")"
  printf '%-40s %8s %9s %s\n' "md5sum then sha256sum" "$seq" "$(mibs "$seq")" "$r_seq"
  printf '%-40s %8s %9s %s\n' "md5sum and sha256sum at once" "${best[md5sum+sha256sum-parallel]}" "$(mibs "${best[md5sum+sha256sum-parallel]}")" "$(ratio "${best[md5sum+sha256sum-parallel]}")"
  printf '%-40s %8s %9s\n' "zman package-create (upload+build+sync)" "$b" "$(mibs "$b")"
  echo "zone server peak RSS (VmHWM): $hwm MiB"
  echo "target: zman >= 0.7 x md5sum then sha256sum: $(awk -v r="$r_seq" 'BEGIN {print (r >= 0.7) ? "PASS" : "FAIL"}')"
} | tee "$out/package-build.txt"
awk -v r="$r_seq" 'BEGIN {exit !(r >= 0.7)}'
