#!/usr/bin/env bash
# OCS endpoint benchmark (issue targets): 500 OCS agents sending their
# PROLOG at once to a real zone server (all answered, server RSS under
# 200 MiB), twice (first contact creates 500 devices; the second is the
# steady state). The PROLOG server time for 50 packages is a Go benchmark:
#   go test ./internal/server -run XXX -bench OCSProlog50
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agents=${AGENTS:-500}
work=$(mktemp -d -t zonekit-ocs-bench.XXXXXX)
bin=$work/bin
home=$work/zone
cleanup() {
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$root" && go build -o "$bin/" ./cmd/zconfigure ./cmd/zman ./scripts/bench/ocsload)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free); cport=$(free)
printf 'bench-password-1\n' > "$work/pw"
"$bin/zconfigure" --home "$home" -c NewZone --zone-name bench --admin-password-file "$work/pw" --dns localhost --ip 127.0.0.1 --port "$port" >/dev/null
"$bin/zconfigure" --home "$home" -D server.content-port="$cport" -c Start --action start >/dev/null
pid=$(cat "$home/data/zoneserver.pid")
for round in first-contact steady; do
  "$bin/ocsload" -url "http://127.0.0.1:$cport/ocsinventory" -agents "$agents" | sed "s/^/$round: /"
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
printf 'zone server peak RSS: %d MiB (target < 200 MiB: %s)\n' $((hwm / 1024)) "$( [ "$hwm" -lt $((200 * 1024)) ] && echo met || echo MISSED)"
(cd "$root" && go test ./internal/server -run XXX -bench '^BenchmarkOCSProlog50$' -benchtime 2s | grep Benchmark)
