// Package ocs speaks the OCS Inventory NG communication protocol that
// existing OCS agents use: zlib-compressed XML requests (PROLOG, INVENTORY,
// DOWNLOAD results) to /ocsinventory, and the replies that hand them
// packages. It knows nothing of the zone; internal/server maps it.
package ocs

import (
	"bytes"
	"compress/zlib"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Limits on what an agent may send: a real inventory is tens to hundreds
// of kilobytes; anything far beyond is an attack (a zlib bomb inflates a
// kilobyte into gigabytes).
const (
	MaxCompressed = 8 << 20
	MaxInflated   = 32 << 20
)

// ErrTooLarge says a body went past the limits.
var ErrTooLarge = errors.New("request too large")

// ReadBody reads a request body: zlib (what agents send) or plain XML
// (what some tools send), within the limits.
func ReadBody(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxCompressed+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxCompressed {
		return nil, ErrTooLarge
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if bytes.HasPrefix(trimmed, []byte("<")) {
		return raw, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not zlib-compressed XML: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, MaxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("corrupt zlib stream: %w", err)
	}
	if len(out) > MaxInflated {
		return nil, ErrTooLarge
	}
	return out, nil
}

// writers keeps zlib compressors for reuse: a new one allocates most of a
// megabyte, which dominated the time of a PROLOG answer.
var writers = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	return w
}}

// compressing bounds how many replies are compressed at once: it is CPU
// work, so more than the cores only costs memory (each compressor holds
// hundreds of kilobytes), which 500 agents at once would turn into
// hundreds of megabytes.
var compressing = make(chan struct{}, 2*runtime.GOMAXPROCS(0))

// Compress zlib-compresses a reply.
func Compress(reply []byte) []byte {
	compressing <- struct{}{}
	defer func() { <-compressing }()
	var b bytes.Buffer
	zw := writers.Get().(*zlib.Writer)
	zw.Reset(&b)
	zw.Write(reply)
	zw.Close()
	writers.Put(zw)
	return b.Bytes()
}

// Request is an agent's request. PROLOG and INVENTORY carry their fields
// as elements; a DOWNLOAD result as attributes of REQUEST.
type Request struct {
	XMLName   xml.Name `xml:"REQUEST"`
	DeviceID  string   `xml:"DEVICEID"`
	Query     string   `xml:"QUERY"`
	AttrID    string   `xml:"DEVICEID,attr"`
	AttrQuery string   `xml:"QUERY,attr"`
	Err       string   `xml:"ERR,attr"`
	PackageID string   `xml:"ID,attr"`
	Content   *Content `xml:"CONTENT"`
}

// Content is the part of an INVENTORY that zonekit keeps.
type Content struct {
	Hardware  Hardware   `xml:"HARDWARE"`
	Softwares []Software `xml:"SOFTWARES"`
	Networks  []Network  `xml:"NETWORKS"`
}

// Hardware is the HARDWARE section.
type Hardware struct {
	Name        string `xml:"NAME"`
	OSName      string `xml:"OSNAME"`
	OSVersion   string `xml:"OSVERSION"`
	OSComments  string `xml:"OSCOMMENTS"`
	ProcessorT  string `xml:"PROCESSORT"`
	ProcessorN  string `xml:"PROCESSORN"`
	Memory      string `xml:"MEMORY"`
	IPAddr      string `xml:"IPADDR"`
	Workgroup   string `xml:"WORKGROUP"`
	Description string `xml:"DESCRIPTION"`
}

// Software is one SOFTWARES entry.
type Software struct {
	Name    string `xml:"NAME"`
	Version string `xml:"VERSION"`
}

// Network is one NETWORKS entry.
type Network struct {
	IPAddress string `xml:"IPADDRESS"`
	MACAddr   string `xml:"MACADDR"`
	Descr     string `xml:"DESCRIPTION"`
}

// ID returns the agent's device ID (element or attribute).
func (r *Request) ID() string {
	if r.DeviceID != "" {
		return strings.TrimSpace(r.DeviceID)
	}
	return strings.TrimSpace(r.AttrID)
}

// Kind returns the query: PROLOG, INVENTORY, DOWNLOAD, ...
func (r *Request) Kind() string {
	q := r.Query
	if q == "" {
		q = r.AttrQuery
	}
	return strings.ToUpper(strings.TrimSpace(q))
}

// ParseRequest decodes a request body. Agents write XML in UTF-8 or, on
// older systems, ISO-8859-1; both are read.
func ParseRequest(data []byte) (*Request, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return in, nil
		case "iso-8859-1", "latin1", "iso8859-1", "windows-1252":
			return latin1Reader{in}, nil
		}
		return nil, fmt.Errorf("unsupported charset %q", label)
	}
	var r Request
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("malformed OCS request: %w", err)
	}
	if r.ID() == "" {
		return nil, errors.New("malformed OCS request: no DEVICEID")
	}
	if len(r.ID()) > 255 || !utf8.ValidString(r.ID()) {
		return nil, errors.New("malformed OCS request: DEVICEID too long or not text")
	}
	if r.Kind() == "" {
		return nil, errors.New("malformed OCS request: no QUERY")
	}
	return &r, nil
}

// latin1Reader turns ISO-8859-1 bytes into UTF-8.
type latin1Reader struct{ r io.Reader }

func (l latin1Reader) Read(p []byte) (int, error) {
	// Each input byte may become two; read at most half.
	buf := make([]byte, (len(p)+1)/2)
	n, err := l.r.Read(buf)
	out := p[:0]
	for _, c := range buf[:n] {
		out = utf8.AppendRune(out, rune(c))
	}
	return len(out), err
}

// HostName derives a host name from an OCS DEVICEID, which is the host
// name followed by the agent's first run time: host-YYYY-MM-DD-HH-MM-SS.
func HostName(deviceID string) string {
	parts := strings.Split(deviceID, "-")
	if len(parts) > 6 {
		allNum := true
		for _, p := range parts[len(parts)-6:] {
			if _, err := strconv.Atoi(p); err != nil {
				allNum = false
			}
		}
		if allNum {
			return strings.Join(parts[:len(parts)-6], "-")
		}
	}
	return deviceID
}

// DownloadConf is the download configuration sent in the PROLOG.
type DownloadConf struct {
	On               bool
	FragLatency      int
	CycleLatency     int
	PeriodLatency    int
	PeriodLength     int
	Timeout          int
	ExecutionTimeout int
}

// Pack is one package offered in the PROLOG.
type Pack struct {
	ID      string
	InfoLoc string
	PackLoc string
}

// PrologReply builds the answer to a PROLOG: the DOWNLOAD option with the
// configuration and the packages, then SEND (ask for an inventory) or
// STOP, and how often to come back, in hours.
func PrologReply(conf DownloadConf, packs []Pack, sendInventory bool, freqHours int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<REPLY>")
	b.WriteString("<OPTION><NAME>DOWNLOAD</NAME>")
	on := "0"
	if conf.On {
		on = "1"
	}
	// TIMEOUT is always sent: without it the agent fails every package
	// that spans two periods.
	fmt.Fprintf(&b, `<PARAM TYPE="CONF" ON="%s" FRAG_LATENCY="%d" CYCLE_LATENCY="%d" PERIOD_LATENCY="%d" PERIOD_LENGTH="%d" TIMEOUT="%d" EXECUTION_TIMEOUT="%d" />`,
		on, conf.FragLatency, conf.CycleLatency, conf.PeriodLatency, conf.PeriodLength, conf.Timeout, conf.ExecutionTimeout)
	for _, p := range packs {
		fmt.Fprintf(&b, `<PARAM TYPE="PACK" ID="%s" INFO_LOC="%s" PACK_LOC="%s" CERT_PATH="INSTALL_PATH" CERT_FILE="INSTALL_PATH" SCHEDULE="" POSTCMD="" FORCE="0" />`,
			attr(p.ID), attr(p.InfoLoc), attr(p.PackLoc))
	}
	b.WriteString("</OPTION>")
	if sendInventory {
		b.WriteString("<RESPONSE>SEND</RESPONSE>")
	} else {
		b.WriteString("<RESPONSE>STOP</RESPONSE>")
	}
	fmt.Fprintf(&b, "<PROLOG_FREQ>%d</PROLOG_FREQ></REPLY>\n", freqHours)
	return b.Bytes()
}

// NoAccountUpdate answers an INVENTORY.
func NoAccountUpdate() []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<REPLY><RESPONSE>NO_ACCOUNT_UPDATE</RESPONSE></REPLY>\n")
}

func attr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), `"`, "&#34;")
}
