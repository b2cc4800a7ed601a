package api

import (
	"encoding/json"

	"zonekit/internal/jsonscan"
)

// The device list is the one answer that grows with the zone (100,000
// devices, 35 MB of indented JSON): its codecs below write and read
// exactly what encoding/json does, without reflection. Tests and fuzz
// targets hold them to encoding/json.

// AppendDevice appends d as encoding/json marshals it, indented as
// json.MarshalIndent(d, prefix, indent) when indent is not empty.
func AppendDevice(b []byte, d *Device, prefix, indent string) ([]byte, error) {
	nl := func(depth int) {
		if indent == "" {
			return
		}
		b = append(b, '\n')
		b = append(b, prefix...)
		for range depth {
			b = append(b, indent...)
		}
	}
	sep := ":"
	if indent != "" {
		sep = ": "
	}
	field := func(name string, first bool) {
		if !first {
			b = append(b, ',')
		}
		nl(1)
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"')
		b = append(b, sep...)
	}
	var err error
	b = append(b, '{')
	field("id", true)
	b = jsonscan.AppendString(b, d.ID)
	field("name", false)
	b = jsonscan.AppendString(b, d.Name)
	field("kind", false)
	b = jsonscan.AppendString(b, d.Kind)
	field("os", false)
	b = jsonscan.AppendString(b, d.OS)
	field("registered", false)
	if b, err = jsonscan.AppendTime(b, d.Registered); err != nil {
		return b, err
	}
	if !d.LastContact.IsZero() {
		field("last_contact", false)
		if b, err = jsonscan.AppendTime(b, d.LastContact); err != nil {
			return b, err
		}
	}
	field("address", false)
	b = jsonscan.AppendString(b, d.Address)
	field("cert_not_after", false)
	if b, err = jsonscan.AppendTime(b, d.CertNotAfter); err != nil {
		return b, err
	}
	field("groups", false)
	switch {
	case d.Groups == nil:
		b = append(b, "null"...)
	case len(d.Groups) == 0:
		b = append(b, "[]"...)
	default:
		b = append(b, '[')
		for i, g := range d.Groups {
			if i > 0 {
				b = append(b, ',')
			}
			nl(2)
			b = jsonscan.AppendString(b, g)
		}
		nl(1)
		b = append(b, ']')
	}
	nl(0)
	return append(b, '}'), nil
}

// DecodeDevices decodes a JSON array of devices (a page of GET
// /devices) as json.Unmarshal does, with its errors. The devices' strings
// share one copy of data.
func DecodeDevices(data []byte) ([]Device, error) {
	s := jsonscan.Scanner{B: data}
	text := string(data)
	s.Expect('[')
	out := []Device{} // as json.Unmarshal makes "[]"
	if !s.Next(']') {
		for !s.Bad {
			out = append(out, Device{})
			decodeDevice(&s, text, &out[len(out)-1])
			if !s.Next(',') {
				s.Expect(']')
				break
			}
		}
	}
	if !s.End() {
		out = nil
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeDevice(s *jsonscan.Scanner, text string, d *Device) {
	s.Expect('{')
	if s.Next('}') {
		return
	}
	for !s.Bad {
		k := s.Str()
		s.Expect(':')
		switch string(k) {
		case "id":
			d.ID = s.StrIn(text)
		case "name":
			d.Name = s.StrIn(text)
		case "kind":
			d.Kind = s.StrIn(text)
		case "os":
			d.OS = s.StrIn(text)
		case "registered":
			s.Time(&d.Registered)
		case "last_contact":
			s.Time(&d.LastContact)
		case "address":
			d.Address = s.StrIn(text)
		case "cert_not_after":
			s.Time(&d.CertNotAfter)
		case "groups":
			d.Groups = s.Strings(text)
		default:
			s.Bad = true // unknown or differently cased: encoding/json decides
		}
		if !s.Next(',') {
			s.Expect('}')
			return
		}
	}
}
