#!/usr/bin/env bash
# Store replication benchmark: three zone servers on 127.0.0.1-3 (one
# port). Measures a new server joining a zone of DEVICES (10,000) devices and a
# CONTENT_MIB package until it is in sync (store and content), the latency
# of single commands sent to the leader and to a follower, and how long
# writes stop when the leader is killed. The leader and the follower get
# their commands interleaved, so the machine's load weighs on both alike.
#
#   scripts/bench/cluster.sh            # N=500 commands per server, CONTENT_MIB=1024, DEVICES=10000
#   N=1000 CONTENT_MIB=0 DEVICES=0 scripts/bench/cluster.sh     # the write latencies alone
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${N:-500}
content_mib=${CONTENT_MIB:-1024}
devices=${DEVICES:-10000}
work=$(mktemp -d -t zonekit-cluster-bench.XXXXXX)
bin=$work/bin
cleanup() {
  for h in "$work"/s*; do
    [ -f "$h/data/zoneserver.pid" ] && kill "$(cat "$h/data/zoneserver.pid")" 2>/dev/null || true
  done
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$root" && go build -o "$bin/" ./cmd/... && go build -o "$bin/" ./scripts/bench/fillzone ./scripts/bench/clusterlat)
export PATH=$bin:$PATH ZMAN_USER=Administrator ZMAN_PASSWORD=correct-horse-1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo correct-horse-1 >"$work/pw"

zconfigure --home "$work/s1" -c NewZone --zone-name Bench --admin-password-file "$work/pw" --dns localhost --ip 127.0.0.1 \
  --port "$port" -D server.address=127.0.0.1 -D server.content-port="$cport" >/dev/null
[ "$devices" -eq 0 ] || fillzone -home "$work/s1" -devices "$devices"
zconfigure --home "$work/s1" -c Start --action start >/dev/null
ca=$work/s1/conf/zone-ca.pem
fp=$(ZONEKIT_HOME=$work/s1 zman certificate-authority-info | awk '/^SHA-256/ {print $2; exit}')
pkg=
if [ "$content_mib" -gt 0 ]; then
  echo "==> a $content_mib MiB package on the first server"
  mkdir "$work/src"
  head -c $((content_mib << 20)) /dev/urandom >"$work/src/payload.bin"
  printf '#!/bin/sh\necho installed\n' >"$work/src/install.sh"
  pkg=$(ZONEKIT_HOME=$work/s1 zman package-create bench --os linux --action launch --command install.sh --file "$work/src" -o json |
    sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p')
  rm -rf "$work/src"
fi

join() {
  zconfigure --home "$work/s$1" -c JoinZone --server "https://localhost:$port" --fingerprint "$fp" \
    --admin-password-file "$work/pw" --dns "127.0.0.$1" --ip "127.0.0.$1" --port "$port" -D "server.address=127.0.0.$1" \
    -D server.content-port="$cport" >/dev/null
  zconfigure --home "$work/s$1" -c Start --action start >/dev/null
}
insync() { # server number: a follower nothing behind, holding every device and the package
  zman --host "127.0.0.$1" --port "$port" --cacert "$ca" server-list 2>/dev/null | awk -F'\t' -v ip="127.0.0.$1" '$1 == ip && $NF ~ /Follower$/ { f = 1 } END { exit !f }' &&
    [ "$(zman --host "127.0.0.$1" --port "$port" --cacert "$ca" device-list -o json 2>/dev/null | grep -c '"id"')" -ge "$devices" ] &&
    { [ -z "$pkg" ] || zman --host "127.0.0.$1" --port "$port" --cacert "$ca" content-replication-status --server "127.0.0.$1" \
      --package "$pkg" -o json 2>/dev/null | grep -q '"state": "present"'; }
}
echo "==> a new server joins a zone of $devices devices and a $content_mib MiB package"
join 2
until insync 2; do sleep 0.2; done
start=$(date +%s.%N)
join 3
until insync 3; do sleep 0.1; done
end=$(date +%s.%N)
printf 'join + first start + in sync: %.2f s\n' "$(echo "$end - $start" | bc -l)"

leader() { # number of the server that leads now
  zman --cacert "$ca" --host 127.0.0.2 --port "$port" server-list | awk -F'\t' '$NF ~ /Leader$/ { if ($1 == "localhost") print 1; else { split($1, a, "."); print a[4] } }'
}
l=$(leader); f=$(( l % 3 + 1 ))
echo "==> $n single commands (group-create over HTTPS, stored credential) to the leader (server $l) and a follower (server $f), in turn"
grep -m1 "model name" /proc/cpuinfo
cpu_ms() { # CPU time (user + system) of the three zone servers so far, in ms
  for h in "$work"/s*; do awk '{print $14 + $15}' "/proc/$(cat "$h/data/zoneserver.pid")/stat"; done |
    awk -v hz="$(getconf CLK_TCK)" '{ t += $1 } END { printf "%d\n", t * 1000 / hz }'
}
c0=$(cpu_ms)
clusterlat -cacert "$ca" -n "$n" "https://127.0.0.$l:$port" "https://127.0.0.$f:$port"
c1=$(cpu_ms)
printf 'CPU of the three servers: %.2f ms per command (%d commands)\n' "$(echo "($c1 - $c0) / ($n * 2 + 2)" | bc -l)" $((n * 2 + 2))

echo "==> the leader (server $l) is killed (SIGKILL); a write sent to server $f waits for the new leader"
clusterlat -cacert "$ca" -until-write -kill "$work/s$l/data/zoneserver.pid" "https://127.0.0.$f:$port"
zman --cacert "$ca" --host "127.0.0.$f" --port "$port" server-list
