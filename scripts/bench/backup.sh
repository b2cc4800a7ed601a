#!/usr/bin/env bash
# Backup and restore benchmark: zman zenserver-backup/-restore of a zone
# server holding about STORE_MIB MiB of store plus FILES small configuration
# files, side by side in one run with what admins use today on the same
# tree: tar | gzip | openssl enc, and restic. Needs restic and openssl
# (apt-get install restic openssl) and GNU time (apt-get install time).
#
#   scripts/bench/backup.sh            # STORE_MIB=1000 FILES=5000
#   STORE_MIB=100 scripts/bench/backup.sh
#   ROUNDS=5 scripts/bench/backup.sh   # then 5 more restores, alternating
#                                      # zonekit and restic, and their median
#   BACKUP_ROUNDS=7 scripts/bench/backup.sh  # then 7 more backups, alternating
#                                      # zonekit and restic (zonekit, restic,
#                                      # restic, zonekit, ...), each restic
#                                      # into a fresh repository; the median
#                                      # ratio, its range and CPU seconds
#   BACKUP_ONLY=1 ...                  # no tar pipeline, no restores
#   BASELINE_BIN=DIR ...               # DIR holds zman and zconfigure of
#                                      # another build: the backup rounds run
#                                      # it too (server restarted with it),
#                                      # for a before/after in the same run
# BENCH_WRAP is put before every measured command: on a shared machine, a
# wrapper that runs it in a cgroup of its own (or freezes the rest).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
store_mib=${STORE_MIB:-1000}
rounds=${ROUNDS:-1}
backup_rounds=${BACKUP_ROUNDS:-0}
backup_only=${BACKUP_ONLY:-0}
baseline=${BASELINE_BIN:-}
read -r -a wrap <<<"${BENCH_WRAP:-}"
files=${FILES:-5000}
out=$root/scripts/bench/out
mkdir -p "$out"
work=$(mktemp -d -t zonekit-backup-bench.XXXXXX)
bin=$work/bin
home=$work/zone
cleanup() {
  [ -x "$bin/zconfigure" ] && "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for t in restic openssl gzip tar /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "backup.sh: $t is missing (apt-get install restic openssl time)" >&2; exit 1; }
done

echo "==> building"
(cd "$root" && go build -o "$bin/" ./cmd/zman ./cmd/zconfigure ./scripts/bench/fillzone)
export PATH=$bin:$PATH ZONEKIT_HOME=$home ZMAN_CONFIG_DIR=$work/zman
port=19600
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
printf 'bench-admin-pw\n' >"$work/pw"
printf 'a long backup passphrase\n' >"$work/pass"
zconfigure -c NewZone -Z --zone-name bench --admin-password-file "$work/pw" --port "$port" --dns localhost --ip 127.0.0.1 >/dev/null

echo "==> filling the zone: store to $store_mib MiB, $files configuration files"
fillzone -home "$home" -store-mib "$store_mib" -files "$files"
tree_bytes=$(du -sb "$home/conf" "$home/data/zone.db" | awk '{s += $1} END {print s}')
echo "tree: $((tree_bytes >> 20)) MiB"

# A stored credential, then a fresh server process: its peak memory then
# belongs to the backup, not to the Argon2id of a password login.
zconfigure -c Start --action start >/dev/null
ZMAN_USER=Administrator ZMAN_PASSWORD=bench-admin-pw zman asc >/dev/null
zconfigure -c Start --action restart >/dev/null
pid=$(cat "$home/data/zoneserver.pid")

# run NAME CMD...: wall seconds, peak RSS (MiB) and CPU seconds (user +
# system) of CMD, and the zone server's CPU seconds while it ran.
declare -A wall rss cpu srvcpu
srv_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$home/data/zoneserver.pid")/stat"; }
run() {
  local name=$1; shift
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  local t0; t0=$(srv_ticks)
  "${wrap[@]}" /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >/dev/null
  srvcpu[$name]=$(awk -v a="$t0" -v b="$(srv_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}')
  read -r w m u s <"$work/time"
  wall[$name]=$w rss[$name]=$((m / 1024)) cpu[$name]=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
  echo "$name: ${w}s, peak RSS ${rss[$name]} MiB, CPU ${cpu[$name]} s, server CPU ${srvcpu[$name]} s"
}


echo "==> backup"
run zonekit-backup zman zsb "$work/zone.zbk" --passphrase-file "$work/pass"
srv_backup=$(awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$pid/status")
if ((backup_only)); then
  wall[tar-gzip-openssl-backup]=- rss[tar-gzip-openssl-backup]=-
else
  run tar-gzip-openssl-backup bash -c "tar -C '$home' -cf - conf data/zone.db | gzip | openssl enc -aes-256-cbc -pbkdf2 -pass file:'$work/pass' -out '$work/tree.tgz.enc'"
fi
restic init -q -r "$work/restic" --password-file "$work/pass"
run restic-backup restic -q -r "$work/restic" --password-file "$work/pass" backup "$home/conf" "$home/data/zone.db"

# More backups, alternating. A repeated restic backup would deduplicate
# against its repository: each round gets a fresh one (made outside the
# timing). The zone server is restarted before each command, so neither
# side finds the store in a mapping the cache drop cannot evict.
contenders=(zonekit restic)
[ -n "$baseline" ] && contenders=(zonekit baseline restic)
backup_one() { # TOOL ROUND
  local tool=$1 i=$2
  case $tool in
  zonekit | baseline)
    local b=$bin
    [ "$tool" = baseline ] && b=$baseline
    "$b/zconfigure" -c Start --action restart >/dev/null
    rm -f "$work/zone-$i.zbk"
    run "$tool-backup-$i" "$b/zman" zsb "$work/zone-$i.zbk" --passphrase-file "$work/pass"
    rm -f "$work/zone-$i.zbk"
    ;;
  restic)
    zconfigure -c Start --action restart >/dev/null
    rm -rf "$work/restic-$i"
    restic init -q -r "$work/restic-$i" --password-file "$work/pass"
    run "restic-backup-$i" restic -q -r "$work/restic-$i" --password-file "$work/pass" backup "$home/conf" "$home/data/zone.db"
    rm -rf "$work/restic-$i"
    ;;
  esac
}
for ((i = 1; i <= backup_rounds; i++)); do
  order=("${contenders[@]}")
  if ((i % 2 == 0)); then # reversed every other round
    order=(); for ((k = ${#contenders[@]} - 1; k >= 0; k--)); do order+=("${contenders[k]}"); done
  fi
  for tool in "${order[@]}"; do backup_one "$tool" "$i"; done
done
zconfigure -c Start --action restart >/dev/null
pid=$(cat "$home/data/zoneserver.pid")

srv_restore=-
if ((backup_only)); then
  rounds=0
  for k in zonekit-restore tar-gzip-openssl-restore restic-restore; do wall[$k]=- rss[$k]=-; done
else
echo "==> restore"
run zonekit-restore zman zsr "$work/zone.zbk" --passphrase-file "$work/pass"
srv_restore=$(awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$pid/status")
zconfigure -c Start --action restart >/dev/null
mkdir -p "$work/restore-tar" "$work/restore-restic"
run tar-gzip-openssl-restore bash -c "openssl enc -d -aes-256-cbc -pbkdf2 -pass file:'$work/pass' -in '$work/tree.tgz.enc' | gzip -dc | tar -C '$work/restore-tar' -xf -"
run restic-restore restic -q -r "$work/restic" --password-file "$work/pass" restore latest --target "$work/restore-restic"

# More restores, alternating, each after a restart and with a cold cache.
ratios=()
for ((i = 2; i <= rounds; i++)); do
  zconfigure -c Start --action restart >/dev/null
  run zonekit-restore-$i zman zsr "$work/zone.zbk" --passphrase-file "$work/pass"
  rm -rf "$work/restore-restic"; mkdir -p "$work/restore-restic"
  run restic-restore-$i restic -q -r "$work/restic" --password-file "$work/pass" restore latest --target "$work/restore-restic"
  ratios+=("$(awk -v a="${wall[zonekit-restore-$i]}" -v b="${wall[restic-restore-$i]}" 'BEGIN {printf "%.2f", a / b}')")
done
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-") print "-"; else printf "%.2f", a / b}'; }
# median_range VALUES...: "median (min-max)"
median_range() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {printf "%s (%s-%s)", a[int((NR + 1) / 2)], a[1], a[NR]}'; }

size() { if [ -e "$1" ]; then du -sb "$1" | awk '{printf "%d", $1 / 1048576}'; else echo -; fi; }
{
  echo
  echo "backup benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, tree $((tree_bytes >> 20)) MiB ($files config files + store)"
  echo "zonekit $(zman --version | awk '{print $2}'), $(restic version | awk '{print $1, $2}'), $(openssl version | awk '{print $1, $2}'), gzip $(gzip --version | awk 'NR==1 {print $2}')"
  printf '%-28s %9s %12s %10s\n' "" "seconds" "peak RSS" "zonekit/x"
  for op in backup restore; do
    for tool in zonekit tar-gzip-openssl restic; do
      k=$tool-$op
      printf '%-28s %9s %8s MiB %10s\n' "$k" "${wall[$k]}" "${rss[$k]}" "$(ratio "${wall[zonekit-$op]}" "${wall[$k]}")"
    done
  done
  if ((backup_rounds > 0)); then
    echo "backup rounds (wall s / CPU s of the command / zone server CPU s; page cache dropped, server restarted before each):"
    for ((i = 1; i <= backup_rounds; i++)); do
      line="  round $i:"
      for tool in "${contenders[@]}"; do
        k=$tool-backup-$i
        line+=" $tool ${wall[$k]}/${cpu[$k]}/${srvcpu[$k]}"
      done
      line+="  zonekit/restic $(ratio "${wall[zonekit-backup-$i]}" "${wall[restic-backup-$i]}")"
      [ -n "$baseline" ] && line+=", baseline/restic $(ratio "${wall[baseline-backup-$i]}" "${wall[restic-backup-$i]}"), zonekit/baseline $(ratio "${wall[zonekit-backup-$i]}" "${wall[baseline-backup-$i]}")"
      echo "$line"
    done
    for tool in "${contenders[@]}"; do
      ws=() cs=() vs=() ss=() rs=()
      for ((i = 1; i <= backup_rounds; i++)); do
        k=$tool-backup-$i
        ws+=("${wall[$k]}"); cs+=("${cpu[$k]}"); vs+=("${srvcpu[$k]}")
        ss+=("$(awk -v a="${cpu[$k]}" -v b="${srvcpu[$k]}" 'BEGIN {printf "%.2f", a + b}')")
        rs+=("$(ratio "${wall[$k]}" "${wall[restic-backup-$i]}")")
      done
      line="  $tool: wall $(median_range "${ws[@]}") s, CPU $(median_range "${cs[@]}") s"
      [ "$tool" != restic ] && line+=", server CPU $(median_range "${vs[@]}") s, both $(median_range "${ss[@]}") s"
      echo "$line; x restic $(median_range "${rs[@]}")"
    done
  fi
  for ((i = 2; i <= rounds; i++)); do
    echo "restore round $i: zonekit ${wall[zonekit-restore-$i]} s, restic ${wall[restic-restore-$i]} s, ratio ${ratios[i - 2]}"
  done
  if ((rounds > 1)); then
    echo "restore ratio, median of rounds 2-$rounds: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')"
  fi
  echo "zone server peak RSS (VmHWM): after backup $srv_backup MiB, after restore $srv_restore MiB"
  echo "archive sizes: zonekit $(size "$work/zone.zbk") MiB, tar.gz.enc $(size "$work/tree.tgz.enc") MiB, restic repo $(size "$work/restic") MiB"
} | tee "$out/backup-summary.txt"
