package service

import (
	"fmt"
	"strings"

	"zonekit/internal/preboot/conf"
)

// PackagedUnit is Unit as the Debian package and 'make install' ship it
// (packaging/systemd): the service runs as user, not root, keeping only
// CAP_NET_BIND_SERVICE (ports 67, 69, 4011) as an ambient capability. The
// zone's home is shared with the zone server and may hold files root
// wrote (zconfigure, pbserv install run as root), so a privileged
// ExecStartPre ("+": no User=, no sandbox) gives it back to user first.
func PackagedUnit(l conf.Layout, service, exe, user string) string {
	extra := fmt.Sprintf("[Service]\nUser=%[1]s\nGroup=%[1]s\nExecStartPre=+/bin/chown -R %[1]s:%[1]s %[2]s\n", user, l.Home)
	return strings.Replace(Unit(l, service, exe), "[Service]\n", extra, 1)
}
