#!/usr/bin/env bash
# Registrations with real zac processes, side by side with curl processes
# in the same run: builds zac as the agent packs ship it (static, no
# symbols: `make agents`) and the zone server, creates a throwaway zone,
# and runs register-load.sh -k against it.
#
#   scripts/bench/register.sh                 # 3 rounds of 1,000, 50 at a time
#   N=500 C=50 ROUNDS=1 scripts/bench/register.sh
#
# Prints, per round: registrations/s with the CPU per registration of zac
# and of the server, N curl GET /api/version processes (the anchor: a TLS
# client process no one here wrote) and N `zac --version` (process start).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d -t zonekit-register-bench.XXXXXX)
home=$work/zone
cleanup() {
  [ -f "$home/data/zoneserver.pid" ] && kill "$(cat "$home/data/zoneserver.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/" ./cmd/zac &&
  go build -o "$work/bin/" ./cmd/zconfigure ./cmd/zman)
export PATH=$work/bin:$PATH ZONEKIT_HOME=$home
# shellcheck source=zone-lib.sh
. "$here/zone-lib.sh"
start_zone $((20000 + RANDOM % 20000))
grep -m1 'model name' /proc/cpuinfo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); zac $(du -k "$work/bin/zac" | cut -f1) KiB, static"
"$here/register-load.sh" -k -n "${N:-1000}" -c "${C:-50}" -r "${ROUNDS:-3}" -w "$work/load" -z "$work/bin/zac" \
  "https://localhost:$port" "$ca" "$(cat "$home/data/zoneserver.pid")"
