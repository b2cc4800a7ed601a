// Package packaging holds no code: its tests check what 'make install' and
// packaging/deb/build.sh produce (man pages that man reads, systemd units
// that systemd-analyze accepts, Debian packages that lintian passes).
package packaging
