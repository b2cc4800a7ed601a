#!/usr/bin/env bash
# Server software package benchmarks (issue targets): processing a CPK
# that edits 1,000 files (under 2 s), and compiling a 500 MiB content
# package in bounded memory (under 64 MiB). Needs GNU time (apt-get
# install time).
#
#   scripts/bench/spk.sh            # EDITS=1000 CONTENT_MIB=500
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
edits=${EDITS:-1000}
mib=${CONTENT_MIB:-500}
command -v /usr/bin/time >/dev/null || { echo "spk.sh: GNU time is missing (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d -t zonekit-spk-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$root" && go build -o "$work/bin/" ./cmd/zac)
zac=$work/bin/zac
export ZAC_HOME=$work/agent

echo "==> a package editing $edits files"
mkdir -p "$work/edit/conf" "$work/target"
{
  echo "spk: 1"
  echo "name: edit-many"
  echo "variables: [{name: DEST, required: true}, {name: HOST, default: db2.example}]"
  echo "components:"
  echo "  - component: COPY"
  echo "    files: [{from_package: conf, to: \"%DEST%\"}]"
  echo "  - component: EDIT"
  echo "    edits:"
  for i in $(seq 1 "$edits"); do
    printf 'host=db1.example\nport=5432\n# file %d\n' "$i" > "$work/edit/conf/app$i.conf"
    echo "      - {file: \"%DEST%/app$i.conf\", replace: {search: db1.example, with: \"%HOST%\"}}"
  done
} > "$work/edit/edit.spk"
"$zac" spk-compile "$work/edit/edit.spk" "$work/edit.cpk" >/dev/null
start=$(date +%s.%N)
"$zac" spk-process -o json "$work/edit.cpk" DEST="$work/target" >/dev/null
end=$(date +%s.%N)
grep -q db2.example "$work/target/app$edits.conf"
proc=$(echo "$end - $start" | bc -l)
printf 'process (copy %d files, edit %d files): %.2f s (target < 2 s: %s)\n' "$edits" "$edits" "$proc" "$( (( $(echo "$proc < 2" | bc -l) )) && echo met || echo MISSED)"

echo "==> compiling $mib MiB of content"
mkdir -p "$work/big/content"
head -c $((mib << 20)) /dev/urandom > "$work/big/content/blob.bin"
cat > "$work/big/big.spk" <<SPK
spk: 1
name: big
variables: [{name: DEST, required: true}]
components:
  - component: COPY
    files: [{from_package: content, to: "%DEST%"}]
SPK
/usr/bin/time -f '%e s, max RSS %M KiB' -o "$work/time.txt" "$zac" spk-compile "$work/big/big.spk" "$work/big.cpk" >/dev/null
rss=$(sed -n 's/.*max RSS \([0-9]*\) KiB/\1/p' "$work/time.txt")
printf 'compile %d MiB: %s (target RSS < 64 MiB: %s)\n' "$mib" "$(cat "$work/time.txt")" "$( [ "$rss" -lt 65536 ] && echo met || echo MISSED)"
/usr/bin/time -f '%e s, max RSS %M KiB' -o "$work/time2.txt" "$zac" spk-process -o json --dry-run "$work/big.cpk" DEST="$work/bigdest" >/dev/null
echo "open and check the $mib MiB CPK (dry run): $(cat "$work/time2.txt")"
