#!/usr/bin/env bash
# Fragment serving benchmark: CONNS (default 200) concurrent HTTP clients
# (wrk) fetching the fragments of a package, for each fragment size of
# SIZES (1 MiB files, then many small 64 KiB ones), from the zone server's
# plain-HTTP content port, from a content satellite (zac satellite-serve,
# its cache filled by prefetch) and from nginx serving the same files on
# the same machine, side by side in one run; and the zone server's RSS
# throughout. Installs nginx and wrk with apt-get when they are missing.
#
#   scripts/bench/package-serve.sh       # PKG_MIB=64 SIZES="1M 64K" CONNS=200 DURATION=10s ROUNDS=3 SATELLITE=1
# Targets (issues 5, 11, 23): at each size, the zone server's and the
# satellite's throughput >= 0.9 x nginx's and their CPU seconds per GiB
# sent <= 1.2 x nginx's; the zone server's RSS (VmHWM) under 200 MiB.
# Exit status 1 when missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pkg_mib=${PKG_MIB:-64}
sizes=${SIZES:-${FRAGMENT_SIZE:-1M 64K}}
conns=${CONNS:-200}
duration=${DURATION:-10s}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
satellite=${SATELLITE:-1}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-serve-bench.XXXXXX)
bin=$work/bin
home=$work/zone
nginx_pid=""
sat_pid=""
hold_pid=""
cleanup() {
  [ -n "$hold_pid" ] && kill "$hold_pid" 2>/dev/null || true
  [ -n "$sat_pid" ] && kill "$sat_pid" 2>/dev/null || true
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "==> installing nginx and wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light wrk >/dev/null
fi
ulimit -n 65536 2>/dev/null || true

echo "==> building"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure ./cmd/zac)
export PATH=$bin:$PATH ZONEKIT_HOME=$home ZMAN_CONFIG_DIR=$work/zman
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
port=$(free_port 19800)
cport=$(free_port $((port + 1)))
nport=$(free_port $((cport + 1)))
sport=$(free_port $((nport + 1)))
printf 'bench-admin-pw\n' >"$work/pw"
zconfigure -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --port "$port" --dns localhost --ip 127.0.0.1 >/dev/null
zconfigure -D server.content-port="$cport" >/dev/null
zconfigure -c Start --action start >/dev/null
ZMAN_USER=Administrator ZMAN_PASSWORD=bench-admin-pw zman admin-store-credential >/dev/null

mkdir "$work/src"
head -c $((pkg_mib << 20)) /dev/urandom >"$work/src/payload.bin"
printf '#!/bin/sh\necho installed\n' >"$work/src/install.sh"
declare -A pkgid nfrags
for frag in $sizes; do
  echo "==> building a $pkg_mib MiB package in fragments of $frag"
  zman package-create "bench-$frag" --os linux --action launch --command install.sh --file "$work/src" --fragment-size "$frag" -o json >"$work/pkg.json"
  pkgid[$frag]=$(sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' "$work/pkg.json")
  nfrags[$frag]=$(sed -n 's/^ *"fragments": \([0-9]*\).*/\1/p' "$work/pkg.json")
  echo "package ${pkgid[$frag]}: ${nfrags[$frag]} fragments"
done
repo=$home/data/content-repo
# Restart: the RSS measured is the serving's, not the build's.
zconfigure -c Start --action restart >/dev/null
pid=$(cat "$home/data/zoneserver.pid")

# nginx serves the same directory, as an OCS download server would.
mkdir -p "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
user root; # the content repository is readable by the zone server's user only
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  default_type application/octet-stream;
  server {
    listen [::]:$nport ipv6only=off; # as the zone server listens (server.address empty)
    location /content/ { alias $repo/; }
  }
}
CONF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
sleep 0.5

# wrk walks the fragments, each connection from its own starting point.
for frag in $sizes; do
  cat >"$work/frags-$frag.lua" <<LUA
local n, id, i = ${nfrags[$frag]}, "${pkgid[$frag]}", 0
init = function(args) i = math.random(n) end
request = function()
  i = i % n + 1
  return wrk.format("GET", "/content/" .. id .. "/" .. id .. "-" .. i)
end
LUA
  cat "$repo/${pkgid[$frag]}/"* >/dev/null
done

check() { curl -sS --fail -o /dev/null "http://127.0.0.1:$1/content/$2/$2-1"; }
for frag in $sizes; do
  check "$cport" "${pkgid[$frag]}"
  check "$nport" "${pkgid[$frag]}"
done

# The content satellite: a registered device with the Content role, its
# cache filled by the prefetch at start (what agents near it would meet).
if [ "$satellite" = 1 ]; then
  zac --home "$work/sat" register --cacert "$home/conf/zone-ca.pem" --hostname bench-sat "https://localhost:$port" >/dev/null
  for frag in $sizes; do zman package-activate "${pkgid[$frag]}" >/dev/null; done # prefetch takes the active packages
  zman satellite-add-role bench-sat --content-url "http://127.0.0.1:$sport/content" --parent "http://127.0.0.1:$cport/content" --prefetch-interval 1h >/dev/null
  zac --home "$work/sat" satellite-serve --listen "127.0.0.1:$sport" >"$work/sat.log" 2>&1 &
  sat_pid=$!
  for _ in $(seq 600); do [ -s "$work/sat/satellite-cache/prefetch.json" ] && break; sleep 0.1; done
  if ! grep -q '"failed": 0' "$work/sat/satellite-cache/prefetch.json" 2>/dev/null; then
    echo "the satellite's prefetch did not complete:" >&2
    cat "$work/sat.log" "$work/sat/satellite-cache/prefetch.json" >&2 2>/dev/null || true
    exit 1
  fi
  cat "$work/sat/satellite-cache/cas/"* >/dev/null
  for frag in $sizes; do check "$sport" "${pkgid[$frag]}"; done
fi

# Hold the files served in the page cache for the whole run: other
# sessions' benchmarks on this machine drop it (drop_caches) several times
# a minute, and a file evicted mid-run is read from disk in the middle of
# a server's round and comes back in readahead's small folios, which cost
# more CPU per byte (scripts/bench/README.md). Pages mapped by a process
# are not dropped; mlock keeps memory pressure off them too. All three
# servers serve from the held pages.
held=("$repo"/*/)
[ "$satellite" = 1 ] && held+=("$work/sat/satellite-cache/cas/")
if command -v python3 >/dev/null; then
  python3 - "${held[@]}" <<'PY' &
import ctypes, mmap, os, signal, sys
maps = []
for d in sys.argv[1:]:
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.path.getsize(p) > 0:
            with open(p, "rb") as f:
                maps.append(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ))
libc = ctypes.CDLL(None, use_errno=True)
if libc.mlockall(1) != 0:  # MCL_CURRENT; without it, mapped pages are still not dropped
    print("package-serve: mlockall:", os.strerror(ctypes.get_errno()), file=sys.stderr)
signal.pause()
PY
  hold_pid=$!
else
  echo "no python3: the files served are not held in the page cache (another benchmark's drop_caches will show)"
fi

# cpu_ticks PID...: user+system clock ticks of the processes.
cpu_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }
hz=$(getconf CLK_TCK)
# warm DIR...: make sure the files served are in the page cache. Another
# benchmark on the machine may drop it (echo 3 >/proc/sys/vm/drop_caches);
# the files then come back through readahead, whose small page-cache folios
# cost every server, nginx included, more CPU per byte than the large ones
# the fragments' writers left (scripts/bench/README.md). Says so when it
# had to read them again.
warm() {
  local want have
  if command -v fincore >/dev/null; then
    read -r want have < <(for d in "$@"; do find "$d" -maxdepth 1 -type f ! -name '*.json' -print0; done |
      xargs -0 fincore -b -n -o SIZE,RES | awk '{w += $1; h += $2} END {print w + 0, h + 0}')
    if [ $((want - have)) -gt 65536 ]; then
      echo "  (page cache dropped since the last round: $(((want - have) >> 10)) KiB read again)"
      evicted=$((evicted + 1))
    fi
  fi
  for d in "$@"; do cat "$d"/* >/dev/null 2>&1 || true; done
}
evicted=0
# run NAME PORT: bytes/s from a wrk run, and the server's CPU seconds per GiB sent.
declare -A rate reqs cpu us
run() {
  local name=$1 port=$2 pids t0 t1 gib
  if [ "$port" = "$sport" ]; then warm "$work/sat/satellite-cache/cas"; else warm "$repo/${pkgid[$frag]}"; fi
  wrk -t"$threads" -c"$conns" -d2s -s "$work/frags-$frag.lua" "http://127.0.0.1:$port" >/dev/null # warm-up
  if [ "$port" = "$cport" ]; then pids=("$pid"); elif [ "$port" = "$sport" ]; then pids=("$sat_pid"); else pids=("$nginx_pid" $(pgrep -P "$nginx_pid")); fi
  t0=$(cpu_ticks "${pids[@]}")
  wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/frags-$frag.lua" "http://127.0.0.1:$port" >"$out/serve-$name.txt"
  t1=$(cpu_ticks "${pids[@]}")
  gib=$(awk '/requests in/ {v = $5; u = substr(v, length(v) - 1); v = v + 0;
    print (u == "GB") ? v : (u == "MB") ? v / 1024 : v / 1048576}' "$out/serve-$name.txt")
  cpu[$name]=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v g="$gib" 'BEGIN {printf "%.3f", (b - a) / hz / g}')
  rate[$name]=$(awk '/^Transfer\/sec/ {v = $2; u = substr(v, length(v) - 1); v = v + 0;
    m = (u == "GB") ? 1073741824 : (u == "MB") ? 1048576 : (u == "KB") ? 1024 : 1; printf "%.0f", v * m}' "$out/serve-$name.txt")
  reqs[$name]=$(awk '/^Requests\/sec/ {print $2}' "$out/serve-$name.txt")
  us[$name]=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" '/requests in/ {printf "%.1f", (b - a) / hz / $1 * 1e6}' "$out/serve-$name.txt")
  printf '  %-22s %6d MiB/s %9s req/s %6s CPU s/GiB %6s us CPU/request\n' "$name" $((${rate[$name]} >> 20)) "${reqs[$name]}" "${cpu[$name]}" "${us[$name]}"
  if grep -q 'Non-2xx\|Socket errors' "$out/serve-$name.txt"; then echo "$name: errors during the run" >&2; grep 'Non-2xx\|Socket errors' "$out/serve-$name.txt" >&2; fi
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {printf "%.0f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
mib() { for v in "$@"; do printf '%d ' $((v >> 20)); done; }
medf() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v r="$1" -v t="$2" -v op="$3" 'BEGIN {print ((op == ">=") ? r >= t : r <= t) ? "PASS" : "FAIL"}'; }
servers="zonekit nginx"
[ "$satellite" = 1 ] && servers="zonekit satellite nginx"
report=$work/report.txt
for frag in $sizes; do
  echo "==> $frag fragments: wrk, $conns connections, $threads threads, $duration: zone server (port $cport), satellite (port $sport), nginx (port $nport), $rounds rounds alternating"
  # The VM's speed drifts with its neighbours: rotate the order each round
  # (A B C, B C A, C A B, ...: no server always runs in the same place)
  # and take each server's median.
  declare -A rates=() cpus=() uss=()
  read -r -a list <<<"$servers"
  for ((r = 1; r <= rounds; r++)); do
    for ((k = 0; k < ${#list[@]}; k++)); do
      srv=${list[$(((r - 1 + k) % ${#list[@]}))]}
      case $srv in zonekit) p=$cport ;; satellite) p=$sport ;; nginx) p=$nport ;; esac
      run "$srv-$frag-$r" "$p"
      rates[$srv]+="${rate[$srv-$frag-$r]} " cpus[$srv]+="${cpu[$srv-$frag-$r]} " uss[$srv]+="${us[$srv-$frag-$r]} "
    done
  done
  ng=$(median ${rates[nginx]}) ngc=$(medf ${cpus[nginx]})
  {
    echo
    echo "fragment serving, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), SHA extensions: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)), ${nfrags[$frag]} fragments of $frag, wrk -c$conns -t$threads -d$duration"
    printf '%-10s %8s %12s %8s %8s %12s   %s\n' server "MiB/s" "CPU s/GiB" "us/req" "x nginx" "CPU x nginx" "MiB/s each round"
    for srv in $servers; do
      v=$(median ${rates[$srv]}) c=$(medf ${cpus[$srv]}) u=$(medf ${uss[$srv]})
      tr=$(ratio "$v" "$ng") cr=$(ratio "$c" "$ngc")
      printf '%-10s %8d %12s %8.1f %8s %12s   %s\n' "$srv" $((v >> 20)) "$c" "$u" "$tr" "$cr" "$(mib ${rates[$srv]})"
      if [ "$srv" != nginx ]; then
        echo "  $srv / nginx at $frag: throughput $tr (target >= 0.9: $(verdict "$tr" 0.9 '>=')), CPU per GiB $cr (target <= 1.2: $(verdict "$cr" 1.2 '<='))"
      fi
    done
  } | tee -a "$report"
done
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
{
  if [ "$evicted" -gt 0 ]; then
    echo "the page cache was dropped by something else before $evicted of the runs (see above): their files came back through readahead"
  fi
  echo "zone server peak RSS (VmHWM): $hwm MiB (target < 200: $(verdict "$hwm" 200 '<='))"
  if [ "$satellite" = 1 ]; then
    echo "satellite peak RSS (VmHWM): $(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$sat_pid/status") MiB"
  fi
} | tee -a "$report"
cp "$report" "$out/package-serve.txt"
# The verdicts are read back from the report: the block that printed them
# ran in a subshell (the pipe to tee), so a variable set there is lost.
! grep -q ': FAIL)' "$report"
