package conf

import (
	"os"
	"strings"
	"testing"
)

// TestRenderParse checks that every service's new file parses back to its
// defaults and names every parameter.
func TestRenderParse(t *testing.T) {
	l := Layout{Home: t.TempDir()}
	for _, svc := range Services() {
		spec, err := l.Spec(svc)
		if err != nil {
			t.Fatal(err)
		}
		text := spec.Render()
		v, err := spec.Parse(text)
		if err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
		for _, p := range spec.Params {
			if v.String(p.Name) != p.Default {
				t.Errorf("%s %s = %q, want %q", svc, p.Name, v.String(p.Name), p.Default)
			}
			line := p.Name + " = " + p.Default
			if p.Commented {
				line = "#" + line
			}
			if !strings.Contains(string(text), "\n"+line+"\n") {
				t.Errorf("%s: no line %q", svc, line)
			}
		}
	}
}

func TestParse(t *testing.T) {
	l := Layout{Home: "/h"}
	spec, _ := l.Spec(TFTP)
	v, err := spec.Parse([]byte("# comment\n tftpallowwrites=1\nTransferBlockSize =\nTFTPInterface = 10.0.0.1\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Int("TFTPAllowWrites") != 1 || v.Int("TransferBlockSize") != 1428 || v.String("TFTPInterface") != "10.0.0.1" {
		t.Fatalf("parsed %v", v.m)
	}
	if !v.IsSet("TFTPAllowWrites") || v.IsSet("TransferBlockSize") {
		t.Fatal("IsSet")
	}
	for in, want := range map[string]string{
		"TransferBlockSize = 511":    "line 1: TransferBlockSize must be a whole number from 512 to 4428",
		"TimeoutInterval = 61":       "from 1 to 60",
		"TFTPInterface = eth0":       "must be an IP address",
		"Bogus = 1":                  `unknown parameter "Bogus" for tftp`,
		"just words":                 "is not Name = Value",
		"\n\nTFTPAllowWrites = yes":  "line 3: TFTPAllowWrites must be a whole number from 0 to 1",
		"TFTPLogLevel = 5":           "from 0 to 4",
		"TFTPMaxTransfers = 0":       "from 1 to 10000",
		"TFTPAllowOverwrites = 2":    "from 0 to 1",
		"TFTPLogFileSize = -1":       "from 1 to 4096",
		"TransferBlockSize = 1e3":    "whole number",
		"TFTPInterface = 10.0.0.256": "IP address",
	} {
		if _, err := spec.Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
	pspec, _ := l.Spec(Policy)
	if _, err := pspec.Parse([]byte("PolicyLogLevel = 5")); err == nil {
		t.Error("policy level 5 accepted (the reference allows 0-4)")
	}
	if _, err := pspec.Parse([]byte("PrebootServer = 10.0.0.5:8070\nEnableAMTSupport = Yes")); err != nil {
		t.Error(err)
	}
	if _, err := pspec.Parse([]byte("PrebootServer = 10.0.0.5:0")); err == nil {
		t.Error("port 0 accepted")
	}
}

func TestLoadAndWriteDefault(t *testing.T) {
	l := Layout{Home: t.TempDir()}
	v, err := l.Load(ProxyDHCP)
	if err != nil || v.Int("MenuTimeout") != 2 || v.String("NBPx86") != "undionly.kpxe" {
		t.Fatalf("defaults without a file: %v", err)
	}
	wrote, err := l.WriteDefault(ProxyDHCP)
	if err != nil || !wrote {
		t.Fatal(wrote, err)
	}
	os.WriteFile(l.File(ProxyDHCP), []byte("MenuTimeout = 0\n"), 0o644)
	if wrote, _ := l.WriteDefault(ProxyDHCP); wrote {
		t.Fatal("an existing file was replaced")
	}
	if v, _ := l.Load(ProxyDHCP); v.Int("MenuTimeout") != 0 {
		t.Fatal("file not read")
	}
	if _, err := l.Spec("dhcpd"); err == nil {
		t.Fatal("unknown service accepted")
	}
}

// TestTrailingComment: "Name = Value  # why" is Value; a '#' inside a
// word stays; a value that is only a comment is the default.
func TestTrailingComment(t *testing.T) {
	spec, _ := Layout{Home: "/h"}.Spec(TFTP)
	v, err := spec.Parse([]byte("TFTPPort = 6969   # tests move it\nTFTPDirectory = /srv/tftp#1\t# odd name\nTFTPLogLevel = # default\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Int("TFTPPort") != 6969 || v.String("TFTPDirectory") != "/srv/tftp#1" || v.Int("TFTPLogLevel") != 2 {
		t.Fatalf("got %q %q %q", v.String("TFTPPort"), v.String("TFTPDirectory"), v.String("TFTPLogLevel"))
	}
	if _, err := spec.Parse([]byte("TFTPPort = 69x # bad\n")); err == nil {
		t.Fatal("bad value before a comment accepted")
	}
	pspec, _ := Layout{Home: "/h"}.Spec(Policy)
	if v, err := pspec.Parse([]byte("PolicyLogLevel = 0\n")); err != nil || v.Int("PolicyLogLevel") != 0 {
		t.Fatalf("PolicyLogLevel 0: %v", err)
	}
}

// FuzzParse: any file either parses into values that pass their checks
// or is refused with an error; nothing panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte("TFTPPort = 69 # comment\nTFTPDirectory = /srv/tftp#1\n"))
	f.Add([]byte("# only a comment\n\nTransferBlockSize =\n"))
	spec, _ := Layout{Home: "/h"}.Spec(TFTP)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := spec.Parse(data)
		if err != nil {
			return
		}
		for _, p := range spec.Params {
			if val := v.String(p.Name); val != p.Default {
				if err := p.Check(val); err != nil {
					t.Fatalf("%s = %q accepted: %v", p.Name, val, err)
				}
			}
		}
	})
}
