package zone

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10", "1.9", 1}, {"1.2.3", "1.2.3", 0}, {"2.0-rc1", "2.0-rc2", -1}, {"1.2", "1.2.1", -1},
		{"1:2.36-9+deb12u4", "1:2.36-9+deb12u10", -1}, {"10.0.19045", "10.0.22631", -1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestDeviceFilter(t *testing.T) {
	inv := &Inventory{IP: "10.1.2.50", Software: []InventorySoftware{{Name: "OpenSSL", Version: "3.0.11"}, {Name: "firefox-esr", Version: "115.4.0"}}}
	zac := Device{Name: "ws-12", OS: "linux", Address: "192.168.7.20:53122"}
	ocs := Device{Name: "pc-3", OS: "Debian GNU/Linux 12"}
	for _, c := range []struct {
		f    DeviceFilter
		dev  Device
		inv  *Inventory
		want bool
	}{
		{DeviceFilter{Software: "openssl"}, ocs, inv, true},
		{DeviceFilter{Software: "firefox*", Version: ">=115"}, ocs, inv, true},
		{DeviceFilter{Software: "firefox*", Version: "<115"}, ocs, inv, false},
		{DeviceFilter{Software: "openssl", Version: "3.0.11"}, ocs, inv, true},
		{DeviceFilter{Software: "openssl", Version: "!=3.0.11"}, ocs, inv, false},
		{DeviceFilter{Software: "chrome"}, ocs, inv, false},
		{DeviceFilter{Software: "openssl"}, zac, nil, false}, // no inventory: not known to have it
		{DeviceFilter{IPRange: "10.1.0.0/16"}, ocs, inv, true},
		{DeviceFilter{IPRange: "10.1.2.10-10.1.2.49"}, ocs, inv, false},
		{DeviceFilter{IPRange: "192.168.7.0/24"}, zac, nil, true},
		{DeviceFilter{IPRange: "192.168.7.0/24", NamePattern: "ws-*", OS: "LINUX"}, zac, nil, true},
		{DeviceFilter{IPRange: "192.168.7.0/24", NamePattern: "pc-*"}, zac, nil, false},
	} {
		if got := c.f.Match(c.dev, c.inv); got != c.want {
			t.Errorf("%+v on %s: %v, want %v", c.f, c.dev.Name, got, c.want)
		}
	}
	for _, bad := range []DeviceFilter{{IPRange: "10.1.2.99-10.1.2.10"}, {IPRange: "lab"}, {Version: "1.0"}, {Software: "x", Version: ">="}, {NamePattern: "["}} {
		if err := bad.Check(); err == nil {
			t.Errorf("Check(%+v) passed", bad)
		}
	}
}
