#!/usr/bin/env bash
# Agent install pack benchmark (issue 11): from running the shell installer
# (or dpkg -i of the .deb) on a machine without zac to a device registered
# in the zone, RUNS times each into fresh prefixes; the second,
# nothing-to-do run of the installer (a login script at every logon); and,
# as the reference, 'zac register' alone with the same zac.
#
#   scripts/bench/agent-install.sh      # RUNS=20
# Target: installer run to registered device under 2 s. Exit status 1 when missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${RUNS:-20}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-install-bench.XXXXXX)
bin=$work/bin
home=$work/zone
cleanup() {
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> building (zac for linux/amd64 and linux/arm64, as 'make agents' does)"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure ./cmd/zac)
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/agents/zac-linux-amd64" ./cmd/zac)
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags "-s -w" -o "$bin/agents/zac-linux-arm64" ./cmd/zac)
export PATH=$bin:$PATH ZONEKIT_HOME=$home
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
port=$(free_port 19900)
printf 'bench-admin-pw\n' >"$work/pw"
zconfigure -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --port "$port" --dns localhost --ip 127.0.0.1 >/dev/null
zconfigure -c Start --action start >/dev/null
t0=$(date +%s%N)
zconfigure -c CreateExtractorPacks -Z --zac-dir "$bin/agents" --platform linux/amd64 --platform linux/arm64 >/dev/null
build_ms=$((($(date +%s%N) - t0) / 1000000))
packs=$home/data/agent-packs/default
sh_pack=$packs/zonekit-agent-linux-amd64.sh
deb=$(ls "$packs"/zonekit-agent_*_amd64.deb)

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
: >"$work/first" >"$work/second" >"$work/deb" >"$work/reg"
for i in $(seq "$runs"); do
  t=$(date +%s%N)
  sh "$sh_pack" -q --no-service --prefix "$work/p$i" --home "$work/h$i" --hostname "sh-$i"
  ms "$t" >>"$work/first"
  t=$(date +%s%N)
  sh "$sh_pack" -q --no-service --prefix "$work/p$i" --home "$work/h$i" --hostname "sh-$i"
  ms "$t" >>"$work/second"
  r=$work/root$i
  mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" && : >"$r/var/lib/dpkg/status"
  t=$(date +%s%N)
  ZONEKIT_AGENT_HOSTNAME=deb-$i dpkg --root="$r" --force-not-root --force-script-chrootless --log=/dev/null -i "$deb" >/dev/null
  ms "$t" >>"$work/deb"
  t=$(date +%s%N)
  "$bin/agents/zac-linux-amd64" --home "$work/z$i" register --cacert "$home/conf/zone-ca.pem" --hostname "reg-$i" "https://localhost:$port" >/dev/null 2>&1
  ms "$t" >>"$work/reg"
done
n=$(ZMAN_USER=Administrator ZMAN_PASSWORD=bench-admin-pw zman device-list -o json | grep -c '"id"')
first=$(median <"$work/first")
second=$(median <"$work/second")
debm=$(median <"$work/deb")
reg=$(median <"$work/reg")
{
  echo "agent install packs, $runs runs each, medians ($(date -u +%F), $(nproc) CPU)"
  echo "  CreateExtractorPacks (linux/amd64 + linux/arm64: 2 .sh, 2 .deb): ${build_ms} ms; pack $(du -h "$sh_pack" | cut -f1)"
  echo "  shell installer, first run to registered device: ${first} ms"
  echo "  shell installer, second run (nothing to do):     ${second} ms"
  echo "  dpkg -i .deb into an empty root, to registered:   ${debm} ms"
  echo "  zac register alone (reference):                   ${reg} ms  (installer / register = $(awk -v a="$first" -v b="$reg" 'BEGIN{printf "%.1f", a/b}'))"
  echo "  devices registered in the zone: $n (want $((3 * runs)))"
} | tee "$out/agent-install.txt"
awk -v a="$first" -v b="$debm" 'BEGIN{exit !(a < 2000 && b < 2000)}' || { echo "MISSED: installer over 2 s" >&2; exit 1; }
[ "$n" -eq $((3 * runs)) ] || { echo "MISSED: not every install registered" >&2; exit 1; }
