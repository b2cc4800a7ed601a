#!/usr/bin/env bash
# zonekit performance benchmarks against the targets of the foundation issue.
#
# Builds zac, zman and zconfigure into a temporary directory, creates a
# throwaway zone on a free port, starts its server, times whole client
# processes with hyperfine (or a plain loop timer when hyperfine is absent)
# side by side with curl and openssl, runs the registration load test
# (register-load.sh) and prints a summary with the targets and pass/fail.
# Results go to scripts/bench/out/ (JSON per benchmark, summary.txt).
#
# Environment: RUNS (default 50) and WARMUP (5) per command; REG_N (1000),
# REG_CONC (50) and REG_ROUNDS (3) for the load test; PORT to start the
# free-port search at; TIMER=loop to use the loop timer even when hyperfine
# is installed; KEEP=1 keeps the work directory.
# Exit status: 0 when every target is met, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$here/out
runs=${RUNS:-50}
warmup=${WARMUP:-5}
reg_n=${REG_N:-1000}
reg_conc=${REG_CONC:-50}
reg_rounds=${REG_ROUNDS:-3}

mkdir -p "$out"
work=$(mktemp -d -t zonekit-bench.XXXXXX)
bin=$work/bin
home=$work/zone

cleanup() {
  if [ -f "$home/data/zoneserver.pid" ]; then
    "$bin/zconfigure" --home "$home" -c Start --action stop >/dev/null 2>&1 ||
      kill "$(cat "$home/data/zoneserver.pid")" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

have() { command -v "$1" >/dev/null 2>&1; }

echo "==> building zac, zman and zconfigure into $bin"
# zac as the agent packs ship it (`make agents`: static, no symbols): a
# cgo build would add the dynamic loader to every zac process measured.
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/" ./cmd/zac &&
  go build -o "$bin/" ./cmd/zman ./cmd/zconfigure)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${PORT:-$((20000 + RANDOM % 20000))}
while port_busy "$port"; do port=$((port + 1)); done

# Secrets travel by file and environment, never argv.
umask 077
head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$work/admin-password"
mkdir -p "$work/zman-empty" "$work/zman"
umask 022

echo "==> creating zone 'bench' in $home on port $port and starting its server"
"$bin/zconfigure" --home "$home" -c NewZone -Z --zone-name bench \
  --admin-password-file "$work/admin-password" --port "$port" >"$work/newzone.log"
"$bin/zconfigure" --home "$home" -c Start --action start
pid=$(cat "$home/data/zoneserver.pid")
ca=$home/conf/zone-ca.pem
url=https://localhost:$port

export ZONEKIT_HOME=$home ZMAN_USER=Administrator ZMAN_CONFIG_DIR=$work/zman-empty
ZMAN_PASSWORD=$(cat "$work/admin-password")
export ZMAN_PASSWORD

# The first password login pays Argon2id; the server then caches it for 10 minutes.
t0=$EPOCHREALTIME
"$bin/zman" server-list >/dev/null
t1=$EPOCHREALTIME
first_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) * 1000}')

"$bin/zac" --home "$work/agent" register --cacert "$ca" "$url" >/dev/null 2>&1
ZMAN_CONFIG_DIR=$work/zman "$bin/zman" admin-store-credential >/dev/null
token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$work/zman/zman-credentials.json")

# curl reads its credentials from config files, like zman from its environment.
umask 077
printf 'user = "Administrator:%s"\n' "$ZMAN_PASSWORD" >"$work/curl-password.cfg"
printf 'header = "Authorization: Bearer %s"\n' "$token" >"$work/curl-token.cfg"
umask 022

use_hf=""
if [ "${TIMER:-}" != loop ] && have hyperfine; then use_hf=1; fi
hf_shell=()
if [ -n "$use_hf" ]; then
  if hyperfine --help | grep -q -- '--shell=none'; then hf_shell=(-N); fi
  timer="hyperfine $(hyperfine --version | awk '{print $2}')"
else
  timer="loop timer (hyperfine not installed: apt-get install hyperfine)"
fi

# bench NAME COMMAND...: median whole-process time of COMMAND, into out/NAME.json.
bench() {
  local name=$1
  shift
  local json=$out/$name.json
  if [ -n "$use_hf" ]; then
    hyperfine "${hf_shell[@]}" --style basic --warmup "$warmup" --runs "$runs" \
      --command-name "$name" --export-json "$json" "$(printf '%q ' "$@")" </dev/null
  else
    loop_time "$json" "$name" "$@"
  fi
}

# loop_time JSON NAME COMMAND...: the fallback, with the same JSON shape.
loop_time() {
  local json=$1 name=$2 i s e
  shift 2
  local times=()
  for ((i = 0; i < warmup; i++)); do "$@" >/dev/null 2>&1 </dev/null; done
  for ((i = 0; i < runs; i++)); do
    s=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 </dev/null
    e=$EPOCHREALTIME
    times+=("$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.6f", b - a}')")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" '
    { t[NR] = $1; sum += $1 }
    END {
      med = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
      printf "{\n  \"results\": [\n    {\n      \"command\": \"%s\",\n", name
      printf "      \"mean\": %.6f,\n      \"median\": %.6f,\n      \"min\": %.6f,\n      \"max\": %.6f\n    }\n  ]\n}\n", sum / NR, med, t[1], t[NR]
      printf "  %-32s median %.1f ms (min %.1f, max %.1f, %d runs)\n", name, med * 1000, t[1] * 1000, t[NR] * 1000, NR > "/dev/stderr"
    }' >"$json"
}

median_ms() { sed -n 's/^ *"median": *\([0-9.eE+-]*\),\{0,1\}$/\1/p' "$out/$1.json" | head -1 | awk '{printf "%.1f", $1 * 1000}'; }

echo "==> timing whole processes with $timer: $warmup warmup runs, then $runs"
bench zac-version "$bin/zac" --version
bench zac-zone-config "$bin/zac" --home "$work/agent" zone-config
bench zman-server-list-password "$bin/zman" server-list
(
  unset ZMAN_USER ZMAN_PASSWORD
  export ZMAN_CONFIG_DIR=$work/zman
  bench zman-server-list-credential "$bin/zman" server-list
)
curl_ok=""
if have curl; then
  curl_ok=1
  bench curl-server-list-password curl -sS --fail -o /dev/null --cacert "$ca" -K "$work/curl-password.cfg" "$url/api/v1/servers"
  bench curl-server-list-credential curl -sS --fail -o /dev/null --cacert "$ca" -K "$work/curl-token.cfg" "$url/api/v1/servers"
  bench curl-version curl -sS --fail -o /dev/null --cacert "$ca" "$url/api/version"
fi
openssl_ok=""
if have openssl; then
  openssl_ok=1
  bench openssl-handshake openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$ca" -verify_return_error -brief
fi

echo "==> registration load test: $reg_rounds round(s) of $reg_n zac register, $reg_conc at a time${curl_ok:+, each followed by as many curl processes}"
reg_status=0
"$here/register-load.sh" ${curl_ok:+-k} -n "$reg_n" -c "$reg_conc" -r "$reg_rounds" -o "$out/register-load.json" \
  -w "$work/regload" -z "$bin/zac" "$url" "$ca" "$pid" || reg_status=$?
echo "==> registration load through the agent engine: $reg_n agents, $reg_conc at once, in one process (regload)"
eng_status=0
(cd "$root" && go build -o "$bin/regload" ./scripts/bench/regload)
"$bin/regload" -n "$reg_n" -c "$reg_conc" -cacert "$ca" "$url" >"$out/regload.json" || eng_status=$?
cat "$out/regload.json"
eng_rate=$(sed -n 's/.*"per_second":\([0-9.]*\).*/\1/p' "$out/regload.json" | awk '{printf "%.1f", $1}')
jnum() { sed -n "s/^ *\"$1\": *\([0-9.]*\),\{0,1\}$/\1/p" "$out/register-load.json"; }
rate=$(jnum median_rate_per_s)
hwm=$(jnum server_vmhwm_mib)
hwm_before=$(jnum server_vmhwm_before_mib)
srv_cpu=$(jnum server_cpu_ms_per_registration)
zac_cpu=$(jnum zac_cpu_ms_per_registration)
curl_rate=""
[ -z "$curl_ok" ] || curl_rate=$(jnum curl_reference_median_rate_per_s)
ncpu=$(nproc)

# verdict VALUE OP LIMIT: PASS or FAIL.
verdict() {
  if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {exit !((op == "<" && v < l) || (op == ">=" && v >= l))}'; then
    echo PASS
  else
    echo FAIL
  fi
}
ratio() { [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}' || echo "-"; }

m_ver=$(median_ms zac-version)
m_zc=$(median_ms zac-zone-config)
m_pw=$(median_ms zman-server-list-password)
m_tok=$(median_ms zman-server-list-credential)
c_pw="" c_tok="" c_ver="" o_hs=""
if [ -n "$curl_ok" ]; then
  c_pw=$(median_ms curl-server-list-password)
  c_tok=$(median_ms curl-server-list-credential)
  c_ver=$(median_ms curl-version)
fi
[ -n "$openssl_ok" ] && o_hs=$(median_ms openssl-handshake)

{
  echo
  echo "zonekit benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $ncpu CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
  echo "$(uname -sr), $(go version | awk '{print $3}'), $timer"
  echo
  printf '%-44s %10s %10s %6s %10s %6s\n' "benchmark (whole process, median)" "measured" "target" "result" "curl" "ratio"
  row() { # name value unit op target [curl]
    printf '%-44s %10s %10s %6s %10s %6s\n' "$1" "$2 $3" "$4 $5 $3" "$(verdict "$2" "$4" "$5")" "${6:+$6 $3}" "$(ratio "$2" "${6:-}")"
  }
  row "zac --version" "$m_ver" ms "<" 20
  row "zac zone-config" "$m_zc" ms "<" 20
  row "zman server-list (password, cached)" "$m_pw" ms "<" 60 "$c_pw"
  row "zman server-list (stored credential)" "$m_tok" ms "<" 60 "$c_tok"
  row "registrations/s ($reg_n x $reg_rounds, $reg_conc zac at once)" "$rate" /s ">=" 300 "$curl_rate"
  row "registrations/s (agent engine, $reg_conc agents)" "$eng_rate" /s ">=" 300
  row "zone server peak RSS (VmHWM, whole run)" "$hwm" MiB "<" 150
  echo
  echo "for reference: first zman server-list (pays Argon2id) $first_ms ms; curl /api/version ${c_ver:--} ms;"
  echo "server VmHWM before the load test (after Argon2id) $hwm_before MiB;"
  echo "openssl s_client handshake ${o_hs:--} ms; CPU per registration: zone server $srv_cpu ms, zac process $zac_cpu ms"
  [ -z "$curl_ok" ] || echo "(the curl column of registrations/s is the rate of curl GET /api/version processes, $reg_conc at a time)"
  echo "(the zone server alone could sustain about $(awk -v c="$srv_cpu" -v n="$ncpu" 'BEGIN {printf "%d", n * 1000 / c}') registrations/s on $ncpu CPUs; zac processes share the same CPUs here)"
  [ "$reg_status" -eq 0 ] || echo "the load test reported failed registrations (status $reg_status)"
} | tee "$out/summary.txt"
failed=$(grep -c ' FAIL ' "$out/summary.txt" || true)
[ "$reg_status" -eq 0 ] && [ "$eng_status" -eq 0 ] && [ "$failed" -eq 0 ]
