package console

import (
	"fmt"
	"hash/maphash"
	"sync"

	"zonekit/internal/zone"
)

// DeviceRecords is what a Zone offers for the console's device cache:
// each device's stored record in id order (zone.DB.DeviceRecords).
type DeviceRecords interface {
	DeviceRecords(fn func(id, raw []byte) error) error
}

// deviceCache keeps the devices decoded between requests. Each request
// still reads every record, but decodes only those whose bytes changed
// since the last (a hash of each record is kept): decoding every
// device's JSON at each request was most of the time of the overview
// and the device search. The list it returns is shared: read it only.
type deviceCache struct {
	mu   sync.Mutex
	seed maphash.Seed
	ids  []string      // the records' keys, in order
	devs []zone.Device // ids[i]'s
	sums []uint64      // ids[i]'s record's hash
}

func newDeviceCache() *deviceCache { return &deviceCache{seed: maphash.MakeSeed()} }

// get returns the current devices, in id order, not to be modified.
func (c *deviceCache) get(src DeviceRecords) ([]zone.Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	var devs []zone.Device
	var sums []uint64
	same := true // so far, every record is the cached one at the same index
	j := 0       // the next cached device to compare with, in id order
	i := 0
	err := src.DeviceRecords(func(id, raw []byte) error {
		sum := maphash.Bytes(c.seed, raw)
		if same {
			if i < len(c.ids) && c.sums[i] == sum && c.ids[i] == string(id) {
				i++
				return nil
			}
			// The first change: from here on, build a new list,
			// reusing what is unchanged.
			same = false
			ids = append(make([]string, 0, len(c.ids)+1), c.ids[:i]...)
			devs = append(make([]zone.Device, 0, len(c.ids)+1), c.devs[:i]...)
			sums = append(make([]uint64, 0, len(c.ids)+1), c.sums[:i]...)
			j = i
		}
		for j < len(c.ids) && c.ids[j] < string(id) {
			j++
		}
		if j < len(c.ids) && c.ids[j] == string(id) && c.sums[j] == sum {
			ids, devs, sums = append(ids, c.ids[j]), append(devs, c.devs[j]), append(sums, sum)
			return nil
		}
		var d zone.Device
		if err := zone.DecodeDevice(raw, &d); err != nil {
			return fmt.Errorf("device %q: corrupt record: %w", id, err)
		}
		ids, devs, sums = append(ids, string(id)), append(devs, d), append(sums, sum)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if same {
		if i == len(c.ids) {
			return c.devs, nil
		}
		// Only removals at the end.
		ids, devs, sums = c.ids[:i:i], c.devs[:i:i], c.sums[:i:i]
	}
	c.ids, c.devs, c.sums = ids, devs, sums
	return devs, nil
}
