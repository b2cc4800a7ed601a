#!/bin/sh
# zonekit agent installer for zone @@ZONE@@ (@@PLATFORM@@, zac @@VERSION@@).
# Installs or upgrades zac, places the zone CA certificate, registers the
# device when it is not registered, enables the agent service. For a login
# script:  sh /path/to/this-file -q
#
#   --prefix DIR     where zac goes (DIR/bin/zac; default /opt/zonekit-agent)
#   --home DIR       the agent's home (default /var/opt/zonekit-agent)
#   --log FILE       log file (default HOME/logs/install.log)
#   --key KEY        registration key (default: the pack's, if any)
#   --hostname NAME  register under NAME (default $ZONEKIT_AGENT_HOSTNAME,
#                    else this host's name)
#   --no-service     do not install or enable the systemd service
#   -q               print nothing; only log
# Exit status: 0 done or nothing to do, 1 failure (see the log), 2 usage.
set -u
umask 022
PREFIX=/opt/zonekit-agent
AGENT_HOME=/var/opt/zonekit-agent
LOG=""
SERVICE=auto
QUIET=0
REGKEY=""
HOSTNAME_OVERRIDE="${ZONEKIT_AGENT_HOSTNAME:-}"
ROOT=""
CHANGED=0
usage() { printf 'usage: %s [--prefix DIR] [--home DIR] [--log FILE] [--key KEY] [--hostname NAME] [--no-service] [-q]\n' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) [ $# -ge 2 ] || usage; PREFIX="$2"; shift ;;
	--home) [ $# -ge 2 ] || usage; AGENT_HOME="$2"; shift ;;
	--log) [ $# -ge 2 ] || usage; LOG="$2"; shift ;;
	--key) [ $# -ge 2 ] || usage; REGKEY="$2"; shift ;;
	--hostname) [ $# -ge 2 ] || usage; HOSTNAME_OVERRIDE="$2"; shift ;;
	--no-service) SERVICE=no ;;
	-q) QUIET=1 ;;
	*) usage ;;
	esac
	shift
done
[ -n "$LOG" ] || LOG="$AGENT_HOME/logs/install.log"
mkdir -p "$(dirname "$LOG")" 2>/dev/null
ZAC="$PREFIX/bin/zac"

@@SETUP@@

case "$(uname -s)/$(uname -m)" in
@@UNAME@@) ;;
*) fail "this pack is for @@PLATFORM@@, not $(uname -s)/$(uname -m)" ;;
esac

# One installer at a time: two logons at once must not race.
mkdir -p "$AGENT_HOME" || fail "cannot create the agent home $AGENT_HOME"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$AGENT_HOME/.install.lock"
	flock -w 60 9 || fail "another installer holds $AGENT_HOME/.install.lock"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/zonekit-agent.XXXXXX")" || fail "cannot create a temporary directory"
trap 'rm -rf "$TMP"' EXIT
tail -n +@@PAYLOAD_LINE@@ "$0" | gzip -dc | (cd "$TMP" && tar -xf -) || fail "the pack is damaged (payload does not extract)"
PACK="$TMP"

if ! cmp -s "$PACK/zac" "$ZAC"; then
	old=""
	[ -x "$ZAC" ] && old="$("$ZAC" --version 2>/dev/null)"
	mkdir -p "$PREFIX/bin" || fail "cannot create $PREFIX/bin"
	cp "$PACK/zac" "$PREFIX/bin/.zac.new" && chmod 755 "$PREFIX/bin/.zac.new" && mv -f "$PREFIX/bin/.zac.new" "$ZAC" ||
		fail "cannot install $ZAC"
	if [ -n "$old" ]; then
		log "upgraded $ZAC ($old -> $("$ZAC" --version))"
	else
		log "installed $ZAC ($("$ZAC" --version))"
	fi
	CHANGED=1
fi
setup_agent
[ "$CHANGED" = 1 ] || log "nothing to do: zac is current and the device is registered"
exit 0
# The payload (a gzipped tar of zac, cacert.pem, servers, settings and the
# registration key) follows this line.
