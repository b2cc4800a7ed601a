package ocs

import (
	"bytes"
	"compress/zlib"
	"errors"
	"strings"
	"testing"
)

func zlibOf(b []byte) []byte {
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestParseRequests(t *testing.T) {
	prolog := []byte(`<?xml version="1.0" encoding="UTF-8"?><REQUEST><DEVICEID>web1-2026-01-02-03-04-05</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`)
	body, err := ReadBody(bytes.NewReader(zlibOf(prolog)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRequest(body)
	if err != nil || r.Kind() != "PROLOG" || r.ID() != "web1-2026-01-02-03-04-05" {
		t.Fatalf("%+v %v", r, err)
	}
	if HostName(r.ID()) != "web1" || HostName("odd-name") != "odd-name" {
		t.Errorf("HostName: %q", HostName(r.ID()))
	}
	res, err := ParseRequest([]byte(`<REQUEST DEVICEID="web1-2026-01-02-03-04-05" ERR="SUCCESS_3" ID="1700000002" QUERY="DOWNLOAD" />`))
	if err != nil || res.Kind() != "DOWNLOAD" || res.Err != "SUCCESS_3" || res.PackageID != "1700000002" {
		t.Fatalf("%+v %v", res, err)
	}
	inv, err := ParseRequest([]byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><REQUEST><DEVICEID>h-1</DEVICEID><QUERY>INVENTORY</QUERY><CONTENT><HARDWARE><NAME>caf\xe9</NAME><MEMORY>2048</MEMORY></HARDWARE><SOFTWARES><NAME>openssl</NAME><VERSION>3.0</VERSION></SOFTWARES></CONTENT></REQUEST>"))
	if err != nil || inv.Content == nil || inv.Content.Hardware.Name != "café" || len(inv.Content.Softwares) != 1 {
		t.Fatalf("%+v %v", inv, err)
	}
	for _, bad := range []string{"", "<REQUEST/>", "<REQUEST><QUERY>PROLOG</QUERY></REQUEST>", "<REQUEST><DEVICEID>x</DEVICEID></REQUEST>", "<NOT"} {
		if _, err := ParseRequest([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestZlibBombRefused(t *testing.T) {
	bomb := zlibOf(bytes.Repeat([]byte("A"), MaxInflated+1024))
	if len(bomb) > 1<<20 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}
	if _, err := ReadBody(bytes.NewReader(bomb)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
	if _, err := ReadBody(strings.NewReader("garbage")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestPrologReplyEscapes(t *testing.T) {
	out := string(PrologReply(DownloadConf{On: true, PeriodLength: 10, Timeout: 7}, []Pack{{ID: "1", InfoLoc: `a"b<c`, PackLoc: "h:80/p"}}, true, 10))
	if !strings.Contains(out, `INFO_LOC="a&#34;b&lt;c"`) || !strings.Contains(out, `TIMEOUT="7"`) || !strings.Contains(out, "<RESPONSE>SEND</RESPONSE>") {
		t.Fatal(out)
	}
}

// FuzzParseRequest: whatever an agent (or anyone) posts, the parser
// returns a request or an error.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`<REQUEST><DEVICEID>h-1</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`))
	f.Add([]byte(`<REQUEST DEVICEID="x" ERR="SUCCESS" ID="1" QUERY="DOWNLOAD"/>`))
	f.Add(zlibOf([]byte(`<REQUEST><DEVICEID>h</DEVICEID><QUERY>INVENTORY</QUERY><CONTENT/></REQUEST>`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadBody(bytes.NewReader(data))
		if err != nil {
			return
		}
		if r, err := ParseRequest(body); err == nil && (r.ID() == "" || r.Kind() == "") {
			t.Fatal("accepted a request without DEVICEID or QUERY")
		}
	})
}
