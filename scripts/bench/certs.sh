#!/usr/bin/env bash
# Certificate issuance benchmark: zonekit issuing ECDSA P-256 server
# certificates (new key, signature, store write) on all cores, side by side
# in one run with a loop of 'openssl req -x509 -newkey' of the same key type
# (what an administrator scripting certificates runs today). Also RSA 2048
# key generation for 8 servers, sequential and on all cores.
#
#   scripts/bench/certs.sh          # N=300 openssl runs
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${N:-300}
command -v openssl >/dev/null || { echo "certs.sh: openssl is missing (apt-get install openssl)" >&2; exit 1; }
work=$(mktemp -d -t zonekit-certs-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "==> zonekit: go test -bench IssueServerCertificates (3s)"
zk=$(cd "$root" && go test -run XXX -bench 'IssueServerCertificates|GenerateRSAKeys' -benchtime 3s ./internal/zone/ | tee /dev/stderr |
  awk '/IssueServerCertificates/ { for (i = 1; i <= NF; i++) if ($(i+1) == "certs/s") print $i }')

echo "==> openssl: $n x openssl req -x509 -newkey ec (P-256), one after the other"
start=$(date +%s.%N)
for i in $(seq 1 "$n"); do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/k.pem" \
    -subj "/CN=server$i.acme.test" -days 365 -out "$work/c.pem" 2>/dev/null
done
end=$(date +%s.%N)
ossl=$(echo "$n / ($end - $start)" | bc -l)

echo "==> openssl: the same loop on every core ($(nproc) at once)"
start=$(date +%s.%N)
seq 1 "$n" | xargs -P "$(nproc)" -I{} sh -c "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout $work/k{}.pem -subj /CN=server{}.acme.test -days 365 -out $work/c{}.pem 2>/dev/null"
end=$(date +%s.%N)
osslp=$(echo "$n / ($end - $start)" | bc -l)

printf '\n%-44s %10s\n' "issuer" "certs/s"
printf '%-44s %10.0f\n' "zonekit (key, sign, store write; all cores)" "$zk"
printf '%-44s %10.0f\n' "openssl req -x509 -newkey loop" "$ossl"
printf '%-44s %10.0f\n' "openssl loop, $(nproc) in parallel" "$osslp"
printf 'ratio zonekit / openssl loop: %.1fx; / parallel openssl: %.1fx; target 2000 certs/s: %s\n' \
  "$(echo "$zk / $ossl" | bc -l)" "$(echo "$zk / $osslp" | bc -l)" "$( [ "${zk%.*}" -ge 2000 ] && echo met || echo MISSED)"
