package zone

import (
	"encoding/json"

	"zonekit/internal/jsonscan"
)

// DecodeDevice decodes a stored device record as json.Unmarshal does,
// into a zero Device, with its errors, without reflection in the common case: listings of a
// large zone decode 100,000 of them (the device list, the web console's
// first request).
func DecodeDevice(raw []byte, d *Device) error {
	s := jsonscan.Scanner{B: raw}
	var dev Device
	s.Expect('{')
	if !s.Next('}') {
		for !s.Bad {
			k := s.Str()
			s.Expect(':')
			switch string(k) {
			case "id":
				dev.ID = string(s.Str())
			case "name":
				dev.Name = string(s.Str())
			case "os":
				dev.OS = string(s.Str())
			case "cert_serial":
				dev.CertSerial = string(s.Str())
			case "cert_not_after":
				s.Time(&dev.CertNotAfter)
			case "registered":
				s.Time(&dev.Registered)
			case "last_contact":
				s.Time(&dev.LastContact)
			case "address":
				dev.Address = string(s.Str())
			case "registration_key":
				dev.RegKey = string(s.Str())
			case "kind":
				dev.Kind = string(s.Str())
			default:
				// A satellite's record, an unknown or differently cased
				// key: encoding/json decides.
				s.Bad = true
			}
			if !s.Next(',') {
				s.Expect('}')
				break
			}
		}
	}
	if !s.End() {
		*d = Device{}
		return json.Unmarshal(raw, d)
	}
	*d = dev
	return nil
}
