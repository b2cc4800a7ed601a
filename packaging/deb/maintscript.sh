# Shared by the maintainer scripts of zonekit-server and zonekit-pbserv
# (build.sh puts it in place of @@COMMON@@, with UNITS set): the systemd
# steps are the ones dh_installsystemd writes for --no-enable --no-start,
# since a unit cannot start before the zone exists.
#
# zonekit_user: the system user both packages' services run as. Its home
# is the zone's home; the user and the zone's data stay on purge (Debian
# policy: a user may own files elsewhere; the data is the zone).
zonekit_user() {
	if ! getent passwd zonekit >/dev/null; then
		adduser --system --group --quiet --home /var/opt/zonekit --no-create-home \
			--gecos "zonekit zone server and preboot services" zonekit
	fi
}

systemd_reload() {
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
	fi
}
