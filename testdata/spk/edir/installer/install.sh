#!/bin/sh
# Stand-in for the vendor's silent installer: reads the response file and
# "installs" into NDS Location, failing like a real one on a bad file.
set -e
[ "$1" = /silent ] || { echo "usage: install.sh /silent RESPONSE" >&2; exit 2; }
resp=$2
get() { sed -n "s/^$1=//p" "$resp" | head -n 1; }
tree=$(get 'Tree Name')
loc=$(get 'NDS Location')
[ -n "$tree" ] && [ "$tree" != SILENT-WIN ] || { echo "install: response file has no tree name" >&2; exit 3; }
case "$loc" in /*) ;; *) echo "install: NDS Location is not set" >&2; exit 4;; esac
if [ -e "$loc/FAIL-INSTALL" ]; then echo "install: simulated failure" >&2; exit 5; fi
mkdir -p "$loc"
echo "tree=$tree" > "$loc/installed"
echo "installed tree $tree into $loc"
