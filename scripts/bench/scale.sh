#!/usr/bin/env bash
# Scale curve (issue 23, part 5): zones of SIZES devices, filled by
# fillzone, each measured in the same run: the zone server's RSS (VmRSS
# once started, VmHWM at the end), `zman device-list -o json` (wall time
# and server CPU), a refresh's server CPU (`zac refresh`), a
# registration's server CPU (`zac register`) and the store's size. The
# smallest zone is the anchor: each cost is given as a ratio to it.
#
#   scripts/bench/scale.sh          # SIZES="1000 10000 100000" OPS=30
# Targets: per-operation costs (refresh, registration, device-list per
# device) within 1.5x of the smallest zone's at the largest; RSS under
# 200 MiB and device-list under 2 s at the largest. Exit status 1 when
# missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
sizes=${SIZES:-1000 10000 100000}
ops=${OPS:-30}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-scale.XXXXXX)
bin=$work/bin
cleanup() {
  for h in "$work"/z*; do [ -d "$h" ] && "$bin/zconfigure" --home "$h" -c Start --action stop >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> building"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure ./cmd/zac ./scripts/bench/fillzone)
export PATH=$bin:$PATH
# shellcheck source=zone-lib.sh
. "$root/scripts/bench/zone-lib.sh"

# cpu_ns PID: CPU time of all the process's threads, in nanoseconds
# (schedstat, finer than the 10 ms ticks of /proc/PID/stat).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
now_ns() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" -v n="${3:-1}" 'BEGIN {printf "%.2f", (b - a) / 1e6 / n}'; }
declare -A rss hwm list_ms list_cpu list_zman reg_ms ref_ms store
for n in $sizes; do
  echo "==> zone of $n devices"
  home=$work/z$n
  export ZONEKIT_HOME=$home ZMAN_CONFIG_DIR=$work/zman$n
  start_zone 19700
  zconfigure -c Start --action stop >/dev/null
  fillzone -home "$home" -devices "$n" >/dev/null
  zconfigure -c Start --action start >/dev/null
  pid=$(cat "$home/data/zoneserver.pid")
  zman device-list -o json >/dev/null # warm: the store's pages in the cache
  rss[$n]=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")

  # Registrations, one at a time: the server's share of each.
  c0=$(cpu_ns "$pid")
  for i in $(seq "$ops"); do
    zac --home "$work/a$n-$i" register --cacert "$ca" --hostname "scale-$n-$i" "https://localhost:$port" >"$work/zac.log" 2>&1 ||
      { cat "$work/zac.log" >&2; exit 1; }
  done
  c1=$(cpu_ns "$pid")
  reg_ms[$n]=$(ms "$c0" "$c1" "$ops")

  # Refreshes of one registered device.
  c0=$(cpu_ns "$pid")
  for i in $(seq "$ops"); do zac --home "$work/a$n-1" refresh >/dev/null; done
  c1=$(cpu_ns "$pid")
  ref_ms[$n]=$(ms "$c0" "$c1" "$ops")

  # The whole device list, as a script would take it.
  c0=$(cpu_ns "$pid") t0=$(now_ns)
  /usr/bin/time -f '%U %S' -o "$work/zman.time" zman device-list -o json >"$work/list.json"
  t1=$(now_ns) c1=$(cpu_ns "$pid")
  list_zman[$n]=$(awk '{printf "%.0f", ($1 + $2) * 1000}' "$work/zman.time")
  got=$(grep -c '"id"' "$work/list.json" || true)
  [ "$got" -ge "$n" ] || { echo "device-list returned $got devices, want >= $n" >&2; exit 1; }
  list_ms[$n]=$(ms "$t0" "$t1")
  list_cpu[$n]=$(ms "$c0" "$c1")
  hwm[$n]=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  store[$n]=$(awk -v b="$(stat -c %s "$home/data/zone.db")" 'BEGIN {printf "%.1f", b / 1048576}')
  printf '  RSS %s MiB (peak %s), device-list %s ms (server CPU %s ms, zman CPU %s ms), registration %s ms CPU, refresh %s ms CPU, store %s MiB\n' \
    "${rss[$n]}" "${hwm[$n]}" "${list_ms[$n]}" "${list_cpu[$n]}" "${list_zman[$n]}" "${reg_ms[$n]}" "${ref_ms[$n]}" "${store[$n]}"
  zconfigure -c Start --action stop >/dev/null
done

first=${sizes%% *} last=${sizes##* }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
perdev() { awk -v a="$1" -v n="$2" 'BEGIN {printf "%.2f", a * 1000 / n}'; } # ms over n -> us each
ok=1
{
  echo
  echo "scale curve, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), SHA extensions: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)), $ops operations each"
  echo "(list: wall ms of zman device-list -o json, the server's and zman's CPU ms, server CPU us per device; register and refresh: server CPU ms each)"
  printf '%9s %9s %9s %10s %10s %10s %12s %14s %14s %10s\n' devices "RSS MiB" "peak MiB" "list ms" "srv CPU" "zman CPU" "srv us/dev" "register ms" "refresh ms" "store MiB"
  for n in $sizes; do
    printf '%9s %9s %9s %10s %10s %10s %12s %14s %14s %10s\n' "$n" "${rss[$n]}" "${hwm[$n]}" "${list_ms[$n]}" "${list_cpu[$n]}" "${list_zman[$n]}" \
      "$(perdev "${list_cpu[$n]}" "$n")" "${reg_ms[$n]} ($(ratio "${reg_ms[$n]}" "${reg_ms[$first]}")x)" \
      "${ref_ms[$n]} ($(ratio "${ref_ms[$n]}" "${ref_ms[$first]}")x)" "${store[$n]}"
  done
  r_reg=$(ratio "${reg_ms[$last]}" "${reg_ms[$first]}")
  r_ref=$(ratio "${ref_ms[$last]}" "${ref_ms[$first]}")
  r_list=$(ratio "$(perdev "${list_cpu[$last]}" "$last")" "$(perdev "${list_cpu[$first]}" "$first")")
  for check in "registration CPU, $last / $first devices: $r_reg (target <= 1.5)|$r_reg <= 1.5" \
    "refresh CPU, $last / $first devices: $r_ref (target <= 1.5)|$r_ref <= 1.5" \
    "device-list CPU per device, $last / $first devices: $r_list (target <= 1.5)|$r_list <= 1.5" \
    "peak RSS at $last devices: ${hwm[$last]} MiB (target < 200)|${hwm[$last]} < 200" \
    "device-list of $last devices: ${list_ms[$last]} ms wall, $(awk -v a="${list_cpu[$last]}" -v b="${list_zman[$last]}" 'BEGIN {printf "%.0f", a + b}') ms CPU of server and zman (target < 2000 wall)|${list_ms[$last]} < 2000"; do
    if awk "BEGIN {exit !(${check#*|})}"; then echo "${check%|*}: PASS"; else echo "${check%|*}: FAIL"; ok=0; fi
  done
} | tee "$out/scale.txt"
grep -q FAIL "$out/scale.txt" && exit 1 || true
