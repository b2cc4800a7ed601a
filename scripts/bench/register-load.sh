#!/usr/bin/env bash
# Registration load test: N real `zac register` processes, C at a time, each
# with its own agent home, against a running zone server. Reports the
# sustained rate, the server's peak RSS (VmHWM) and where the CPU went.
#
#   register-load.sh [-n N] [-c C] [-r ROUNDS] [-o OUT.json] [-w WORKDIR] [-z ZAC] [-k]
#                    URL CACERT SERVER_PID
#
# Each round registers N new devices; the rate reported is the median round.
# -k adds, after each round, a reference round of N curl processes (C at a
# time) fetching URL/api/version: the rate of a bare TLS client process;
# and a round of N `zac --version` (the cost of starting a zac process).
# The agent homes are removed at exit, not between rounds: ext4 without a
# journal scans recently freed inodes on every create, which would charge
# one round's cleanup to the next round's zac processes.
set -euo pipefail

n=1000 conc=50 rounds=1 out="" work="" zac=zac curl_ref=""
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "n:c:r:o:w:z:kh" opt; do
  case $opt in
    n) n=$OPTARG ;; c) conc=$OPTARG ;; r) rounds=$OPTARG ;; k) curl_ref=1 ;;
    o) out=$OPTARG ;; w) work=$OPTARG ;; z) zac=$OPTARG ;; *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || usage
url=$1 ca=$2 pid=$3
[ -r "/proc/$pid/status" ] || { echo "register-load: no process $pid (the zone server's pid)" >&2; exit 1; }

own_work=""
if [ -z "$work" ]; then
  work=$(mktemp -d -t zonekit-regload.XXXXXX)
  own_work=$work
fi
trap '[ -z "$own_work" ] || rm -rf "$own_work"' EXIT

hz=$(getconf CLK_TCK)
server_cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # utime+stime, ticks
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$pid/status"; }

rates=() srv=() cli=() curl_rates=() curl_cpu=() lines=()
hwm_before=$(hwm_kib)
total_ok=0
for r in $(seq 1 "$rounds"); do
  dir=$work/round$r
  mkdir -p "$dir"
  cpu0=$(server_cpu)
  TIMEFORMAT='%3R %3U %3S'
  rc=0
  # xargs execs zac directly (no shell per registration); `time` reports
  # wall time and the CPU of every zac it waited for.
  { time seq 1 "$n" | xargs -P "$conc" -I{} "$zac" --home "$dir/a{}" register --cacert "$ca" "$url" \
      >"$dir/zac.log" 2>&1; } 2>"$dir/time" || rc=$?
  cpu1=$(server_cpu)
  read -r wall cuser csys <"$dir/time"
  ok=$(find "$dir" -name device.pem | wc -l)
  total_ok=$((total_ok + ok))
  if [ "$ok" -ne "$n" ]; then
    echo "register-load: round $r: $((n - ok)) of $n registrations failed (xargs status $rc); first errors:" >&2
    grep -v -e '^Zone CA:' -e '^SHA-256:' -e '^Registered ' "$dir/zac.log" | sort | uniq -c | sort -rn | head -5 >&2
  fi
  rate=$(awk -v ok="$ok" -v w="$wall" 'BEGIN {printf "%.1f", ok / w}')
  srv_ms=$(awk -v t="$((cpu1 - cpu0))" -v hz="$hz" -v n="$n" 'BEGIN {printf "%.2f", t * 1000 / hz / n}')
  cli_ms=$(awk -v u="$cuser" -v s="$csys" -v n="$n" 'BEGIN {printf "%.2f", (u + s) * 1000 / n}')
  rates+=("$rate") srv+=("$srv_ms") cli+=("$cli_ms")
  line="round $r: $ok/$n registered in $wall s = $rate/s; CPU per registration: server $srv_ms ms, zac $cli_ms ms"
  lines+=("$line")
  echo "$line"
  if [ -n "$curl_ref" ]; then
    { time seq 1 "$n" | xargs -P "$conc" -I{} "$zac" --version >/dev/null 2>&1; } 2>"$work/time" || true
    read -r wall cuser csys <"$work/time"
    vcpu=$(awk -v u="$cuser" -v s="$csys" -v n="$n" 'BEGIN {printf "%.2f", (u + s) * 1000 / n}')
    line="round $r process start: $n zac --version in $wall s; CPU per process $vcpu ms"
    lines+=("$line")
    echo "$line"
    rc=0
    cpu0=$(server_cpu)
    { time seq 1 "$n" | xargs -P "$conc" -I{} curl -sS --fail -o /dev/null --cacert "$ca" "$url/api/version" \
        >"$work/curl.log" 2>&1; } 2>"$work/time" || rc=$?
    cpu1=$(server_cpu)
    read -r wall cuser csys <"$work/time"
    if [ "$rc" -ne 0 ]; then
      echo "register-load: curl reference round $r failed (xargs status $rc): $(head -1 "$work/curl.log")" >&2
      exit 1
    fi
    crate=$(awk -v n="$n" -v w="$wall" 'BEGIN {printf "%.1f", n / w}')
    ccpu=$(awk -v u="$cuser" -v s="$csys" -v n="$n" 'BEGIN {printf "%.2f", (u + s) * 1000 / n}')
    csrv=$(awk -v t="$((cpu1 - cpu0))" -v hz="$hz" -v n="$n" 'BEGIN {printf "%.2f", t * 1000 / hz / n}')
    curl_rates+=("$crate") curl_cpu+=("$ccpu")
    line="round $r reference: $n curl GET /api/version in $wall s = $crate/s; CPU per request: server $csrv ms, curl $ccpu ms"
    lines+=("$line")
    echo "$line"
  fi
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
median_rate=$(median "${rates[@]}")
median_srv=$(median "${srv[@]}")
median_cli=$(median "${cli[@]}")
median_curl=0 median_curl_cpu=0
[ -z "$curl_ref" ] || { median_curl=$(median "${curl_rates[@]}"); median_curl_cpu=$(median "${curl_cpu[@]}"); }
hwm=$(hwm_kib)
hwm_mib=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
hwm_before_mib=$(awk -v k="$hwm_before" 'BEGIN {printf "%.1f", k / 1024}')
echo "median rate: $median_rate registrations/s over $rounds round(s) of $n at concurrency $conc"
echo "server peak RSS (VmHWM): $hwm_mib MiB (before the load test: $hwm_before_mib MiB)"
echo "CPU per registration (median): zac $median_cli ms + server $median_srv ms"
[ -z "$curl_ref" ] || echo "curl reference: median $median_curl requests/s, curl CPU $median_curl_cpu ms per process; zac/curl rate $(awk -v a="$median_rate" -v b="$median_curl" 'BEGIN {printf "%.2f", a / b}')"

if [ -n "$out" ]; then
  {
    echo "{"
    echo "  \"registrations_per_round\": $n,"
    echo "  \"concurrency\": $conc,"
    echo "  \"rounds\": $rounds,"
    echo "  \"registered\": $total_ok,"
    echo "  \"rates_per_s\": [$(IFS=,; echo "${rates[*]}")],"
    echo "  \"median_rate_per_s\": $median_rate,"
    echo "  \"server_cpu_ms_per_registration\": $median_srv,"
    echo "  \"zac_cpu_ms_per_registration\": $median_cli,"
    echo "  \"curl_reference_rates_per_s\": [$(IFS=,; echo "${curl_rates[*]}")],"
    echo "  \"curl_reference_median_rate_per_s\": $median_curl,"
    echo "  \"curl_reference_cpu_ms_per_process\": $median_curl_cpu,"
    echo "  \"server_vmhwm_mib\": $hwm_mib,"
    echo "  \"server_vmhwm_before_mib\": $hwm_before_mib,"
    echo "  \"rounds_detail\": ["
    for i in "${!lines[@]}"; do
      sep=","; [ "$i" -eq $((${#lines[@]} - 1)) ] && sep=""
      echo "    \"${lines[$i]}\"$sep"
    done
    echo "  ]"
    echo "}"
  } >"$out"
fi
[ "$total_ok" -eq $((n * rounds)) ]
