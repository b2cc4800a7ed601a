#!/usr/bin/env bash
# Run every fuzz target in the module for a short time each: scripts/fuzz.sh 30s
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-20s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== $pkg $fn"
    go test -run XXX -fuzz "^$fn\$" -fuzztime "$t" "$pkg"
  done
done
