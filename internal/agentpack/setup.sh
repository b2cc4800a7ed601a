# zonekit agent setup: places the zone CA, registers the device when it is
# not registered yet and enables the agent service. It never prompts, exits
# 0 when there is nothing to do, and logs what it did. Safe to run from a
# login script on every logon.
#
# Expects: PACK (directory with cacert.pem, servers, and optionally regkey
# and settings), ZAC (the installed zac), AGENT_HOME, LOG, SERVICE (auto or
# no), ROOT (an alternate root, for dpkg --root), CHANGED (0 or 1).

log() {
	line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"
	printf '%s\n' "$line" >>"$LOG" 2>/dev/null
	[ "${QUIET:-0}" = 1 ] || printf 'zonekit-agent: %s\n' "$*"
}

fail() {
	log "error: $*"
	exit 1
}

registered() {
	"$ZAC" --home "$AGENT_HOME" zone-config >/dev/null 2>&1
}

setup_agent() {
	mkdir -p "$AGENT_HOME" || fail "cannot create the agent home $AGENT_HOME"
	if registered; then
		# A registered agent keeps its own trust store: after a CA change
		# it learns the new CA from the zone (zac refresh), never from a pack.
		:
	else
		if ! cmp -s "$PACK/cacert.pem" "$AGENT_HOME/cacert.pem"; then
			cp "$PACK/cacert.pem" "$AGENT_HOME/.cacert.pem.new" &&
				chmod 644 "$AGENT_HOME/.cacert.pem.new" &&
				mv -f "$AGENT_HOME/.cacert.pem.new" "$AGENT_HOME/cacert.pem" ||
				fail "cannot write $AGENT_HOME/cacert.pem"
			log "placed the zone CA certificate in $AGENT_HOME/cacert.pem"
			CHANGED=1
		fi
		key=""
		[ -s "$PACK/regkey" ] && key="$(cat "$PACK/regkey")"
		[ -n "${REGKEY:-}" ] && key="$REGKEY"
		done=0
		while IFS= read -r server; do
			[ -n "$server" ] || continue
			set -- --home "$AGENT_HOME" register --cacert "$AGENT_HOME/cacert.pem"
			[ -n "$key" ] && set -- "$@" -k "$key"
			[ -n "${HOSTNAME_OVERRIDE:-}" ] && set -- "$@" --hostname "$HOSTNAME_OVERRIDE"
			if out="$("$ZAC" "$@" "$server" 2>&1)"; then
				log "registered with $server: $(printf '%s' "$out" | tail -n 1)"
				done=1
				CHANGED=1
				break
			fi
			log "registration with $server failed: $(printf '%s' "$out" | tail -n 1)"
		done <"$PACK/servers"
		[ "$done" = 1 ] || fail "could not register with any zone server; the next run tries again"
	fi
	enable_service
}

enable_service() {
	[ "$SERVICE" = no ] && return 0
	if [ -n "$ROOT" ] || [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null 2>&1; then
		[ "$CHANGED" = 1 ] && log "systemd is not running here: start '$ZAC --home $AGENT_HOME agent' by other means"
		return 0
	fi
	interval="$(sed -n 's/^interval=//p' "$PACK/settings" 2>/dev/null)"
	unit=/etc/systemd/system/zonekit-agent.service
	new="$unit.new"
	cat >"$new" <<UNIT || fail "cannot write $new"
[Unit]
Description=zonekit agent (zac)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=$ZAC --home $AGENT_HOME agent --interval ${interval:-10m}
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
UNIT
	if cmp -s "$new" "$unit"; then
		rm -f "$new"
	else
		mv -f "$new" "$unit" || fail "cannot write $unit"
		systemctl daemon-reload
		log "installed $unit"
		CHANGED=1
	fi
	if ! systemctl is-enabled --quiet zonekit-agent.service 2>/dev/null || ! systemctl is-active --quiet zonekit-agent.service; then
		systemctl enable zonekit-agent.service >/dev/null 2>&1 && systemctl restart zonekit-agent.service >/dev/null 2>&1 ||
			fail "could not enable and start zonekit-agent.service (systemctl status zonekit-agent)"
		log "enabled and started zonekit-agent.service"
		CHANGED=1
	fi
}
