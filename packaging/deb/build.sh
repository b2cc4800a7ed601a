#!/usr/bin/env bash
# build.sh OUTDIR: the Debian packages of the zone server (zonekit-server:
# zconfigure and zman) and of the preboot services (zonekit-pbserv), built
# with dpkg-deb from a 'make install' staging tree. The agent's package is
# not here: 'zconfigure -c CreateExtractorPacks' builds one per zone, with
# the zone's CA inside (docs/agent-packs.md).
#
# Reproducible: the same commit gives the same .deb bytes (-trimpath, file
# times and ar/tar times from SOURCE_DATE_EPOCH, default the commit's time,
# root-owned members, sorted tar).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mkdir -p "$1" && cd "$1" && pwd)
GO=${GO:-go}
version=${VERSION:-0.1.0~dev}
arch=$(dpkg --print-architecture)
goarch=$($GO env GOARCH)
[ "$arch" = "$goarch" ] || { echo "build.sh: Debian architecture $arch is not Go's $goarch" >&2; exit 1; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
maintainer=${MAINTAINER:-"zonekit developers <zonekit-dev@example.org>"}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${STAGE:-}" ]; then
	# STAGE: a tree 'make install DESTDIR=STAGE PREFIX=/usr
	# UNITDIR=/lib/systemd/system' made already, with GOBUILDFLAGS and EXTRA_LDFLAGS as below
	# (the packaging test installs once for both of its checks).
	ln -s "$(cd "$STAGE" && pwd)" "$work/root"
else
	# Position-independent (as Debian builds Go), with no libc to depend
	# on (cgo off), stripped as Debian wants.
	CGO_ENABLED=0 make --no-print-directory install DESTDIR="$work/root" PREFIX=/usr UNITDIR=/lib/systemd/system \
		BIN="$work/bin" GOBUILDFLAGS="-trimpath -buildvcs=false -buildmode=pie" \
		EXTRA_LDFLAGS="-s -w -X zonekit/internal/version.Version=${version//\~/-}" \
		BUILD_DATE="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" >/dev/null
fi

# pkg NAME PROGRAMS UNITS SUMMARY DESCRIPTION: one package from the staging tree.
pkg() {
	local name=$1 progs=$2 units=$3 summary=$4 desc=$5
	local d=$work/$name
	mkdir -p "$d/DEBIAN" "$d/usr/bin" "$d/usr/share/man/man1" "$d/usr/share/doc/$name" "$d/lib/systemd/system" \
		"$d/usr/share/bash-completion/completions" "$d/usr/share/zsh/vendor-completions" "$d/usr/share/fish/vendor_completions.d"
	local p u
	for p in $progs; do
		cp "$work/root/usr/bin/$p" "$d/usr/bin/"
		cp "$work/root/usr/share/man/man1/$p".1 "$work/root/usr/share/man/man1/$p"-*.1 "$d/usr/share/man/man1/"
		cp "$work/root/usr/share/bash-completion/completions/$p" "$d/usr/share/bash-completion/completions/"
		cp "$work/root/usr/share/zsh/vendor-completions/_$p" "$d/usr/share/zsh/vendor-completions/"
		cp "$work/root/usr/share/fish/vendor_completions.d/$p.fish" "$d/usr/share/fish/vendor_completions.d/"
	done
	for u in $units; do
		cp "$work/root/lib/systemd/system/$u" "$d/lib/systemd/system/"
	done
	gzip -9n "$d"/usr/share/man/man1/*.1
	cp packaging/deb/copyright "$d/usr/share/doc/$name/copyright"
	cat >"$d/usr/share/doc/$name/changelog" <<CHANGES
$name ($version) unstable; urgency=medium

  * Built from the zonekit repository; its CHANGELOG.md says what changed.

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
CHANGES
	gzip -9n "$d/usr/share/doc/$name/changelog"
	local s
	for s in postinst prerm postrm; do
		{
			sed -n '1,2p' "packaging/deb/$s"
			echo "UNITS=\"$units\""
			cat packaging/deb/maintscript.sh
			sed '1,3d' "packaging/deb/$s"
		} >"$d/DEBIAN/$s"
		chmod 0755 "$d/DEBIAN/$s"
	done
	local size
	size=$(du -sk --apparent-size --exclude=DEBIAN "$d" | cut -f1)
	cat >"$d/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser
Section: admin
Priority: optional
Description: $summary
$desc
CONTROL
	(cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$d/DEBIAN/md5sums"
	find "$d" -type d -exec chmod 0755 {} +
	find "$d" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	dpkg-deb --root-owner-group -Zxz --build "$d" "$out/${name}_${version}_$arch.deb" >/dev/null
	echo "$out/${name}_${version}_$arch.deb"
}

pkg zonekit-server "zconfigure zman" "zonekit-server.service" \
	"zonekit zone server and administration client" \
" zonekit runs a management zone: the servers and endpoints an
 administrator keeps certified, backed up, patched and imaged.
 .
 This package holds zconfigure, which creates or joins a zone and runs
 its zone server (the zonekit-server service, as the zonekit user), and
 zman, the administrators' client. Create the zone with
 'zconfigure -c NewZone', then 'systemctl enable --now zonekit-server'."

pkg zonekit-pbserv pbserv "zonekit-pbserv.service zonekit-proxydhcp.service zonekit-tftp.service zonekit-zmgprebootpolicy.service" \
	"zonekit preboot services (proxy DHCP, TFTP, boot policy, imaging)" \
" zonekit runs a management zone: the servers and endpoints an
 administrator keeps certified, backed up, patched and imaged.
 .
 This package holds pbserv, the preboot services of a zonekit Primary
 Server or imaging satellite: proxy DHCP, TFTP, the preboot policy
 service and imaging. Each runs as a systemd service as the zonekit
 user, with only the capability to bind its low ports."
