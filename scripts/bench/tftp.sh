#!/usr/bin/env bash
# TFTP throughput of pbserv's TFTP service side by side with tftpd-hpa and
# dnsmasq, in one run, over a veth pair between two network namespaces (as
# pxe-testing.md measured them), with the atftp client; then 50 concurrent
# transfers against pbserv.
#
# Needs root, ip, atftp, in.tftpd (tftpd-hpa), dnsmasq and Go. A server that
# is not installed is left out. Environment: SIZE_MB (default 24), RUNS per
# cell (default 3, the best is kept), CELLS (option sets separated by ';',
# options within one by '|', e.g. 'blksize 1428;blksize 1428|windowsize 16'),
# CONC (50) concurrent transfers of CONC_MB (8) MiB each. Results: a table on stdout and scripts/bench/out/tftp.txt.
# Exit status: 0 when the issue's targets are met, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$here/out
size_mb=${SIZE_MB:-24}
runs=${RUNS:-3}
conc=${CONC:-50}
conc_mb=${CONC_MB:-8}

[ "$(id -u)" = 0 ] || { echo "tftp.sh: needs root (network namespaces)" >&2; exit 2; }
for t in ip atftp; do command -v $t >/dev/null || { echo "tftp.sh: $t is not installed" >&2; exit 2; }; done

mkdir -p "$out"
work=$(mktemp -d -t zonekit-tftp-bench.XXXXXX)
srv=zkbs$$ cli=zkbc$$
cleanup() {
  for ns in $srv $cli; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building pbserv..." >&2
(cd "$root" && go build -o "$work/pbserv" ./cmd/pbserv)

ip netns add $srv; ip netns add $cli
ip -n $srv link add v0 type veth peer name v1 netns $cli
ip -n $srv addr add 10.98.7.1/24 dev v0; ip -n $srv link set v0 up; ip -n $srv link set lo up
ip -n $cli addr add 10.98.7.2/24 dev v1; ip -n $cli link set v1 up; ip -n $cli link set lo up

mkdir -p "$work/root" "$work/get"
head -c $((size_mb << 20)) /dev/urandom >"$work/root/file.bin"
head -c $((conc_mb << 20)) /dev/urandom >"$work/root/conc.bin"

home=$work/home
mkdir -p "$home/conf/preboot"
cat >"$home/conf/preboot/tftp.conf" <<EOF
TFTPInterface = 10.98.7.1
TFTPDirectory = $work/root
TransferBlockSize = 4428
TFTPLogLevel = 2
EOF

server_pid=
start_server() {
  case $1 in
  pbserv)
    ip netns exec $srv "$work/pbserv" --home "$home" tftp run 2>/dev/null &
    server_pid=$! ;;
  tftpd-hpa)
    ip netns exec $srv in.tftpd -L -s -a 10.98.7.1:69 "$work/root" &
    server_pid=$! ;;
  dnsmasq)
    ip netns exec $srv dnsmasq -d --port=0 --conf-file=/dev/null --enable-tftp --tftp-root="$work/root" \
      --listen-address=10.98.7.1 --bind-interfaces --pid-file= 2>/dev/null &
    server_pid=$! ;;
  esac
  sleep 0.5
}
stop_server() {
  [ -n "$server_pid" ] || return 0
  for p in $(ip netns pids $srv); do kill "$p" 2>/dev/null || true; done
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# get OPTIONS... prints MiB/s of the best of $runs fetches, or "-" on failure.
get() {
  local best=0 i t0 t1 args=()
  for o in "$@"; do args+=(--option "$o"); done
  for i in $(seq "$runs"); do
    rm -f "$work/get/out"
    t0=$(date +%s.%N)
    if ! ip netns exec $cli atftp "${args[@]}" --get -r file.bin -l "$work/get/out" 10.98.7.1 69 >/dev/null 2>&1; then
      echo "-"; return
    fi
    t1=$(date +%s.%N)
    cmp -s "$work/get/out" "$work/root/file.bin" || { echo "corrupt"; return; }
    best=$(awk -v b="$best" -v s="$size_mb" -v d="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" 'BEGIN{r=s/d; print (r>b)?r:b}')
  done
  printf '%.1f' "$best"
}

cells=("blksize 512" "blksize 1428" "blksize 8192" "blksize 1428|windowsize 4" "blksize 1428|windowsize 16" "blksize 1428|windowsize 64")
if [ -n "${CELLS:-}" ]; then IFS=';' read -r -a cells <<<"$CELLS"; fi
declare -A result
servers=(pbserv)
command -v in.tftpd >/dev/null && servers+=(tftpd-hpa)
command -v dnsmasq >/dev/null && servers+=(dnsmasq)
for s in "${servers[@]}"; do
  echo "measuring $s..." >&2
  start_server "$s"
  for c in "${cells[@]}"; do
    IFS='|' read -r -a opts <<<"$c"
    result["$s|$c"]=$(get "${opts[@]}")
  done
  stop_server
done

# 50 concurrent transfers against pbserv at blksize 1428, windowsize 16.
echo "concurrent transfers..." >&2
start_server pbserv
fail=0
t0=$(date +%s.%N)
pids=()
for i in $(seq "$conc"); do
  { (ip netns exec $cli atftp --option "blksize 1428" --option "windowsize 16" --get -r conc.bin -l "$work/get/c$i" 10.98.7.1 69 >/dev/null 2>&1 &&
    cmp -s "$work/get/c$i" "$work/root/conc.bin") || echo fail >>"$work/get/failures"; } &
  pids+=($!)
done
wait "${pids[@]}"
t1=$(date +%s.%N)
stop_server
[ -f "$work/get/failures" ] && fail=$(wc -l <"$work/get/failures")
retrans=$({ grep -o "[0-9]* retransmissions" "$home/logs/preboot/tftp.log" 2>/dev/null || true; } | awk '{s+=$1} END{print s+0}')
agg=$(awk -v a="$t0" -v b="$t1" -v n="$conc" -v s="$conc_mb" 'BEGIN{printf "%.1f", n*s/(b-a)}')

{
  echo "TFTP throughput, MiB/s (atftp client, ${size_mb} MiB file, veth, best of $runs)"
  printf '%-11s' server; for c in "${cells[@]}"; do printf ' | %-22s' "${c//|/ + }"; done; echo
  for s in "${servers[@]}"; do
    printf '%-11s' "$s"; for c in "${cells[@]}"; do printf ' | %-22s' "${result[$s|$c]}"; done; echo
  done
  echo
  echo "pbserv, $conc concurrent transfers of ${conc_mb} MiB (blksize 1428, windowsize 16): $fail failed, $retrans retransmissions, ${agg} MiB/s in all"
} | tee "$out/tftp.txt"

# The issue's targets.
ok=0
ref=0
for s in tftpd-hpa dnsmasq; do
  v=${result["$s|blksize 1428"]:-}
  [[ $v =~ ^[0-9.]+$ ]] && ref=$(awk -v a="$ref" -v b="$v" 'BEGIN{print (b>a)?b:a}')
done
p1428=${result["pbserv|blksize 1428"]}
p16=${result["pbserv|blksize 1428|windowsize 16"]}
echo
if [ "$ref" != 0 ]; then
  r1=$(awk -v a="$p1428" -v b="$ref" 'BEGIN{printf "%.2f", a/b}')
  r16=$(awk -v a="$p16" -v b="$ref" 'BEGIN{printf "%.2f", a/b}')
  echo "blksize 1428: pbserv / best of tftpd-hpa and dnsmasq = $r1 (target >= 1)" | tee -a "$out/tftp.txt"
  echo "windowsize 16: pbserv / best of them at 1428 = $r16 (target >= 5)" | tee -a "$out/tftp.txt"
  awk -v r="$r1" 'BEGIN{exit !(r>=0.999)}' || ok=1
  awk -v r="$r16" 'BEGIN{exit !(r>=5)}' || ok=1
fi
[ "$fail" = 0 ] || ok=1
exit $ok
