package zman

import (
	"slices"
	"testing"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdtest"
	"zonekit/internal/ui"
)

// parseFails runs a command that must refuse args before its runF.
func parseFails[O any](t *testing.T, build func(*Factory, func(*O) error) *cobra.Command, args ...string) error {
	t.Helper()
	io, _, _, _ := ui.Test()
	return cmdtest.Refused(t, &Factory{IO: io, Global: &Global{}}, build, args...)
}

// The commands that take arguments: what they hand their run function.
func TestFlagParsingArguments(t *testing.T) {
	if o := parse(t, newAdminDelete, "bob", "alice", "--yes"); !slices.Equal(o.Names, []string{"bob", "alice"}) || !o.Yes {
		t.Errorf("admin-delete: %+v", o)
	}
	if o := parse(t, newRegKeyDelete, "k1", "-y"); !slices.Equal(o.Keys, []string{"k1"}) || !o.Yes {
		t.Errorf("registration-key-delete: %+v", o)
	}
	if o := parse(t, newContextUse, "lab"); o.Name != "lab" {
		t.Errorf("context-use: %+v", o)
	}
	if o := parse(t, newCAImport, "ca.p12"); o.File != "ca.p12" {
		t.Errorf("certificate-authority-import: %+v", o)
	}
	for _, build := range []func(*Factory, func(*packageIDOptions) error) *cobra.Command{newPackageInfo, newPackageDeactivate} {
		if o := parse(t, build, "1700000001"); !slices.Equal(o.IDs, []string{"1700000001"}) {
			t.Errorf("%+v", o)
		}
	}
	if o := parse(t, newPackageDelete, "1700000001", "1700000002", "-y"); !slices.Equal(o.IDs, []string{"1700000001", "1700000002"}) || !o.Yes {
		t.Errorf("package-delete: %+v", o)
	}
	if o := parse(t, newPackageActivate, "1700000001"); o.ID != "1700000001" {
		t.Errorf("package-activate: %+v", o)
	}
	if o := parse(t, newPrebootAssignMenu, "52:54:00:12:34:56", "tools"); o.MAC != "52:54:00:12:34:56" || o.Name != "tools" {
		t.Errorf("preboot-assign-menu: %+v", o)
	}
	parse(t, newClosestRuleClear, "--zone")
	// Missing arguments are refused before anything runs.
	parseFails(t, newAdminDelete)
	parseFails(t, newPackageActivate)
	parseFails(t, newPrebootAssignMenu, "52:54:00:12:34:56")
	parseFails(t, newContextUse, "a", "b")
}

// The commands that take no argument refuse one before running.
func TestFlagParsingNoArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   func(t *testing.T)
		bad  func(t *testing.T)
	}{
		{"admin-list", func(t *testing.T) { parse(t, newAdminList) }, func(t *testing.T) { parseFails(t, newAdminList, "x") }},
		{"certificate-authority-info", func(t *testing.T) { parse(t, newCAInfo) }, func(t *testing.T) { parseFails(t, newCAInfo, "x") }},
		{"server-certificate-list", func(t *testing.T) { parse(t, newServerCertList) }, func(t *testing.T) { parseFails(t, newServerCertList, "x") }},
		{"context-list", func(t *testing.T) { parse(t, newContextList) }, func(t *testing.T) { parseFails(t, newContextList, "x") }},
		{"admin-store-credential", func(t *testing.T) { parse(t, newStoreCredential) }, func(t *testing.T) { parseFails(t, newStoreCredential, "x") }},
		{"admin-clear-credential", func(t *testing.T) { parse(t, newClearCredential) }, func(t *testing.T) { parseFails(t, newClearCredential, "x") }},
		{"device-list", func(t *testing.T) { parse(t, newDeviceList) }, func(t *testing.T) { parseFails(t, newDeviceList, "x") }},
		{"group-list", func(t *testing.T) { parse(t, newGroupList) }, func(t *testing.T) { parseFails(t, newGroupList, "x") }},
		{"registration-key-list", func(t *testing.T) { parse(t, newRegKeyList) }, func(t *testing.T) { parseFails(t, newRegKeyList, "x") }},
		{"certificate-device-ca-rotate", func(t *testing.T) { parse(t, newDeviceCARotate) }, func(t *testing.T) { parseFails(t, newDeviceCARotate, "x") }},
		{"package-list", func(t *testing.T) { parse(t, newPackageList) }, func(t *testing.T) { parseFails(t, newPackageList, "x") }},
		{"preboot-list", func(t *testing.T) { parse(t, newPrebootList) }, func(t *testing.T) { parseFails(t, newPrebootList, "x") }},
		{"closest-server-rule-list", func(t *testing.T) { parse(t, newClosestRuleList) }, func(t *testing.T) { parseFails(t, newClosestRuleList, "x") }},
		{"satellite-list", func(t *testing.T) { parse(t, newSatelliteList) }, func(t *testing.T) { parseFails(t, newSatelliteList, "x") }},
		{"zone-info", func(t *testing.T) { parse(t, newZoneInfo) }, func(t *testing.T) { parseFails(t, newZoneInfo, "x") }},
		{"server-list", func(t *testing.T) { parse(t, newServerList) }, func(t *testing.T) { parseFails(t, newServerList, "x") }},
		{"certificate-authority-role-enable", func(t *testing.T) { parse(t, newCARoleEnable) }, func(t *testing.T) { parseFails(t, newCARoleEnable, "x") }},
		{"certificate-authority-role-disable", func(t *testing.T) { parse(t, newCARoleDisable) }, func(t *testing.T) { parseFails(t, newCARoleDisable, "x") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ok(t)
			tc.bad(t)
		})
	}
}
