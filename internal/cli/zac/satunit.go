package zac

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
)

// SatelliteUnit is the systemd unit --install-unit writes.
const SatelliteUnit = "zonekit-satellite.service"

// satelliteUnitText is a unit running 'zac satellite-serve' with home and
// args, restarted when it fails (a parent or zone server down at start).
func satelliteUnitText(zac, home string, args []string) string {
	cmd := []string{systemdQuote(zac), "--home", systemdQuote(home), "satellite-serve"}
	for _, a := range args {
		cmd = append(cmd, systemdQuote(a))
	}
	return `[Unit]
Description=zonekit satellite (zac satellite-serve)
Documentation=man:zac-satellite-serve(1)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=` + strings.Join(cmd, " ") + `
Restart=on-failure
RestartSec=10s

[Install]
WantedBy=multi-user.target
`
}

// systemdQuote quotes one ExecStart word: systemd expands % specifiers and
// $ variables, and splits on white space.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "$", "$$")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

func installUnit(ctx context.Context, o *SatelliteOptions) error {
	a := o.Agent()
	if _, err := a.State(); err != nil {
		return err
	}
	zac, err := os.Executable()
	if err != nil {
		return fmt.Errorf("path of zac: %w", err)
	}
	if p, err := filepath.EvalSymlinks(zac); err == nil {
		zac = p
	}
	home, err := filepath.Abs(a.Home)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.UnitDir, 0o755); err != nil {
		return errkind.Wrap(errkind.Usage, fmt.Errorf("unit directory: %w", err))
	}
	path := filepath.Join(o.UnitDir, SatelliteUnit)
	if err := atomicfile.WriteFile(path, []byte(satelliteUnitText(zac, home, o.unitArgs)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "Wrote %s.\n", path)
	_, sysErr := os.Stat("/run/systemd/system")
	systemctl, lookErr := exec.LookPath("systemctl")
	if o.UnitDir != DefaultUnitDir || sysErr != nil || lookErr != nil {
		fmt.Fprintf(o.IO.Out, "Enable it with: systemctl daemon-reload && systemctl enable --now %s\n", SatelliteUnit)
		return nil
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", SatelliteUnit}, {"restart", SatelliteUnit}} {
		cmd := exec.CommandContext(ctx, systemctl, args...)
		cmd.Stdout, cmd.Stderr = o.IO.ErrOut, o.IO.ErrOut
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
		}
	}
	fmt.Fprintf(o.IO.Out, "Enabled and started %s.\n", SatelliteUnit)
	return nil
}
