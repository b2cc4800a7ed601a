#!/usr/bin/env bash
# Quickstart: build the four programs, create a demo zone under ./demo, start
# its zone server, add an administrator, register this machine's agent and
# show the zone. Safe to run again: it replaces the previous demo.
# quickstart.sh --stop stops the demo's zone server (make clean does, before
# it deletes the demo).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=${DEMO_DIR:-$PWD/demo}
port=${DEMO_PORT:-18443}
bin=$PWD/bin

if [ "${1:-}" = --stop ]; then
  [ -d "$demo/zone" ] || exit 0
  if [ -x "$bin/zconfigure" ]; then
    "$bin/zconfigure" --home "$demo/zone" -c Start --action stop
  else
    go run ./cmd/zconfigure --home "$demo/zone" -c Start --action stop
  fi
  exit
fi

echo "==> Building zman, zac, zconfigure and pbserv into $bin"
go build -o "$bin/" ./cmd/...
export PATH=$bin:$PATH

if [ -d "$demo/zone" ]; then
  zconfigure --home "$demo/zone" -c Start --action stop >/dev/null 2>&1 || true
  rm -rf "$demo"
fi
mkdir -p "$demo"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while port_busy "$port"; do port=$((port + 1)); done
cport=$((port + 1))
while port_busy "$cport"; do cport=$((cport + 1)); done

# Passwords travel by file and environment, never argv.
umask 077
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$demo/admin-password"
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$demo/operator-password"
umask 022

export ZONEKIT_HOME=$demo/zone ZAC_HOME=$demo/agent ZMAN_CONFIG_DIR=$demo/zman

echo "==> Creating zone 'demo' in $ZONEKIT_HOME (port $port)"
zconfigure -c NewZone -Z --zone-name demo --admin-password-file "$demo/admin-password" --port "$port"

echo "==> Starting the zone server (package fragments over plain HTTP on port $cport)"
zconfigure -D server.content-port="$cport" -c Start --action start

export ZMAN_USER=Administrator
ZMAN_PASSWORD=$(cat "$demo/admin-password")
export ZMAN_PASSWORD

echo "==> Creating administrator 'operator'"
zman admin-create operator --new-password-file "$demo/operator-password"

echo "==> Registering this machine's agent"
zman group-create demo-devices --desc "devices of the quickstart"
zman registration-key-create quickstart --group demo-devices --limit 10
zac register --cacert "$ZONEKIT_HOME/conf/zone-ca.pem" -k quickstart "https://localhost:$port"
zac zone-config

echo "==> Building a small package, activating it and assigning it to this machine"
mkdir -p "$demo/hello-pkg"
printf '#!/bin/sh\necho "hello from zonekit" > /tmp/zonekit-hello.txt\n' > "$demo/hello-pkg/hello.sh"
chmod +x "$demo/hello-pkg/hello.sh"
zman package-create hello --os linux --action launch --file "$demo/hello-pkg" --command hello.sh
pkg=$(zman package-list -o json | sed -n 's/^ *"id": "\([0-9]*\)".*/\1/p' | tail -1)
zman package-activate "$pkg"
zman package-assign "$pkg" --all
zman package-list
echo "==> Deploying it on this machine"
# The zone's download settings pace agents as OCS agents are paced: by
# default 60 s between download cycles, 10 s after each fragment, and a
# package of priority 5 takes a step every 5th cycle, so a small package
# takes about 10 minutes (zac refresh shows where it stands on a terminal).
# --now skips those latencies for this run; 'zman package-deploy-now' does
# it from the zone's side.
zac refresh --now || true
zman package-stats "$pkg"

echo "==> zman zone-info"
zman zone-info
echo "==> zman server-list"
zman server-list
echo "==> zman device-list"
zman device-list
echo "==> zman admin-list"
zman admin-list

cat <<MSG

The demo zone is running. To use it from this shell:
  export PATH=$bin:\$PATH ZONEKIT_HOME=$ZONEKIT_HOME ZAC_HOME=$ZAC_HOME ZMAN_CONFIG_DIR=$ZMAN_CONFIG_DIR
  zman -U Administrator server-list      # password in $demo/admin-password
The package 'hello' (id $pkg) is assigned to this machine; an agent picks
it up at its next refresh. To deploy it now, or again after changing it:
  zman package-deploy-now $pkg --all    # from the zone: skip the latencies at the next refresh
  zac refresh --now                     # on this machine: now, skipping the download latencies
Stop the zone server with:
  $bin/zconfigure --home $ZONEKIT_HOME -c Start --action stop
'make clean' stops it too before it deletes bin/ and demo/.
MSG
