#!/usr/bin/env bash
# Fragment serving benchmark: CONNS (default 200) concurrent HTTP clients
# (wrk) fetching the fragments of a package from the zone server's
# plain-HTTP content port, from a content satellite (zac satellite-serve,
# its cache filled by prefetch) and from nginx serving the same files on
# the same machine, side by side in one run; and the zone server's RSS
# throughout. Installs nginx and wrk with apt-get when they are missing.
#
#   scripts/bench/package-serve.sh       # PKG_MIB=64 FRAGMENT_SIZE=1M CONNS=200 DURATION=10s ROUNDS=4 SATELLITE=1
# Targets (issue 5): zone server throughput >= 0.9 x nginx's, and its RSS
# (VmHWM) under 200 MiB; (issue 11) the satellite at the same target:
# >= 0.9 x nginx's. Exit status 1 when missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pkg_mib=${PKG_MIB:-64}
frag=${FRAGMENT_SIZE:-1M}
conns=${CONNS:-200}
duration=${DURATION:-10s}
rounds=${ROUNDS:-4}
threads=${THREADS:-2}
satellite=${SATELLITE:-1}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-serve-bench.XXXXXX)
bin=$work/bin
home=$work/zone
nginx_pid=""
sat_pid=""
cleanup() {
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

echo "==> building a $pkg_mib MiB package in fragments of $frag"
mkdir "$work/src"
head -c $((pkg_mib << 20)) /dev/urandom >"$work/src/payload.bin"
printf '#!/bin/sh\necho installed\n' >"$work/src/install.sh"
zman package-create bench --os linux --action launch --command install.sh --file "$work/src" --fragment-size "$frag" -o json >"$work/pkg.json"
id=$(sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' "$work/pkg.json")
frags=$(sed -n 's/^ *"fragments": \([0-9]*\).*/\1/p' "$work/pkg.json")
repo=$home/data/content-repo
echo "package $id: $frags fragments"
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
cat >"$work/frags.lua" <<LUA
local n, id, i = $frags, "$id", 0
init = function(args) i = math.random(n) end
request = function()
  i = i % n + 1
  return wrk.format("GET", "/content/" .. id .. "/" .. id .. "-" .. i)
end
LUA

cat "$repo/$id/"* >/dev/null
check() { curl -sS --fail -o /dev/null "http://127.0.0.1:$1/content/$id/$id-1"; }
check "$cport"
check "$nport"

# The content satellite: a registered device with the Content role, its
# cache filled by the prefetch at start (what agents near it would meet).
if [ "$satellite" = 1 ]; then
  zac --home "$work/sat" register --cacert "$home/conf/zone-ca.pem" --hostname bench-sat "https://localhost:$port" >/dev/null
  zman package-activate "$id" >/dev/null # prefetch takes the active packages
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
  check "$sport"
fi

# cpu_ticks PID...: user+system clock ticks of the processes.
cpu_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }
hz=$(getconf CLK_TCK)
# run NAME PORT: bytes/s from a wrk run, and the server's CPU seconds per GiB sent.
declare -A rate reqs cpu
run() {
  local name=$1 port=$2 pids t0 t1 gib
  wrk -t"$threads" -c"$conns" -d2s -s "$work/frags.lua" "http://127.0.0.1:$port" >/dev/null # warm-up
  if [ "$port" = "$cport" ]; then pids=("$pid"); elif [ "$port" = "$sport" ]; then pids=("$sat_pid"); else pids=("$nginx_pid" $(pgrep -P "$nginx_pid")); fi
  t0=$(cpu_ticks "${pids[@]}")
  wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/frags.lua" "http://127.0.0.1:$port" | tee "$out/serve-$name.txt"
  t1=$(cpu_ticks "${pids[@]}")
  gib=$(awk '/requests in/ {v = $5; u = substr(v, length(v) - 1); v = v + 0;
    print (u == "GB") ? v : (u == "MB") ? v / 1024 : v / 1048576}' "$out/serve-$name.txt")
  cpu[$name]=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v g="$gib" 'BEGIN {printf "%.3f", (b - a) / hz / g}')
  rate[$name]=$(awk '/^Transfer\/sec/ {v = $2; u = substr(v, length(v) - 1); v = v + 0;
    m = (u == "GB") ? 1073741824 : (u == "MB") ? 1048576 : (u == "KB") ? 1024 : 1; printf "%.0f", v * m}' "$out/serve-$name.txt")
  reqs[$name]=$(awk '/^Requests\/sec/ {print $2}' "$out/serve-$name.txt")
  if grep -q 'Non-2xx\|Socket errors' "$out/serve-$name.txt"; then echo "$name: errors during the run" >&2; fi
}
echo "==> wrk, $conns connections, $threads threads, $duration: zone server (port $cport) and nginx (port $nport), $rounds rounds alternating"
# The VM's speed drifts with its neighbours: alternate A B B A and take
# each server's median.
zks=() ngs=() zkc=() ngc=() sts=() stc=()
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order="zonekit satellite nginx"; else order="nginx satellite zonekit"; fi
  for srv in $order; do
    if [ "$srv" = satellite ]; then
      [ "$satellite" = 1 ] || continue
      run "satellite-$r" "$sport"
      sts+=("${rate[satellite-$r]}") stc+=("${cpu[satellite-$r]}")
    elif [ "$srv" = zonekit ]; then
      run "zonekit-$r" "$cport"
      zks+=("${rate[zonekit-$r]}") zkc+=("${cpu[zonekit-$r]}")
    else
      run "nginx-$r" "$nport"
      ngs+=("${rate[nginx-$r]}") ngc+=("${cpu[nginx-$r]}")
    fi
  done
done
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {printf "%.0f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
zk=$(median "${zks[@]}")
ng=$(median "${ngs[@]}")
r=$(awk -v a="$zk" -v b="$ng" 'BEGIN {printf "%.2f", a / b}')
st=0 sr=1 shwm=0
if [ "$satellite" = 1 ]; then
  st=$(median "${sts[@]}")
  sr=$(awk -v a="$st" -v b="$ng" 'BEGIN {printf "%.2f", a / b}')
  shwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$sat_pid/status")
fi
mib() { for v in "$@"; do printf '%d ' $((v >> 20)); done; }
medf() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
{
  echo
  echo "fragment serving, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $frags fragments of $frag, wrk -c$conns -t$threads -d$duration"
  printf '%-10s %14s   %s\n' server "median MiB/s" "each round"
  printf '%-10s %14s   %s\n' zonekit "$((zk >> 20))" "$(mib "${zks[@]}")"
  printf '%-10s %14s   %s\n' nginx "$((ng >> 20))" "$(mib "${ngs[@]}")"
  echo "server CPU per GiB sent (median): zonekit $(medf "${zkc[@]}") s, nginx $(medf "${ngc[@]}") s"
  if [ "$satellite" = 1 ]; then
    printf '%-10s %14s   %s\n' satellite "$((st >> 20))" "$(mib "${sts[@]}")"
    echo "satellite CPU per GiB sent (median): $(medf "${stc[@]}") s; satellite peak RSS (VmHWM): $shwm MiB"
    echo "satellite / zonekit throughput: $(awk -v a="$st" -v b="$zk" 'BEGIN {printf "%.2f", a / b}')"
    echo "satellite / nginx throughput: $sr (target >= 0.9: $(awk -v r="$sr" 'BEGIN {print (r >= 0.9) ? "PASS" : "FAIL"}'))"
  fi
  echo "zonekit / nginx throughput: $r (target >= 0.9: $(awk -v r="$r" 'BEGIN {print (r >= 0.9) ? "PASS" : "FAIL"}'))"
  echo "zone server peak RSS (VmHWM): $hwm MiB (target < 200: $(awk -v h="$hwm" 'BEGIN {print (h < 200) ? "PASS" : "FAIL"}'))"
} | tee "$out/package-serve.txt"
awk -v r="$r" -v h="$hwm" -v s="$sr" 'BEGIN {exit !(r >= 0.9 && h < 200 && s >= 0.9)}'
