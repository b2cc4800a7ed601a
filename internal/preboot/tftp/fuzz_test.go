package tftp

import "testing"

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"\x00\x01pxelinux.0\x00octet\x00",
		"\x00\x02up.bin\x00netascii\x00tsize\x00100\x00",
		"\x00\x01ipxe.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00",
		"\x00\x01a\x00octet\x00blksize\x00",
		"\x00\x01\x00octet\x00",
		"\x00\x03\x00\x01data",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if r.Filename == "" || (r.Mode != "octet" && r.Mode != "netascii") {
			t.Fatalf("accepted %q as %+v", b, r)
		}
		if _, err := cleanName(r.Filename); err == nil {
			// A clean name never climbs out.
			n, _ := cleanName(r.Filename)
			if n == ".." || len(n) >= 3 && n[:3] == "../" || n[0] == '/' {
				t.Fatalf("cleanName(%q) = %q", r.Filename, n)
			}
		}
		parseReply(b)
	})
}
