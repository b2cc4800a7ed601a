package content

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// Info is a package's info file: one self-closing DOWNLOAD element whose
// attributes OCS Inventory NG agents read. Its values are what the agent
// acts on, so it is only ever served over HTTPS.
type Info struct {
	ID             string // digits, equal to the package's directory name
	Priority       int
	Action         string // LAUNCH, EXECUTE or STORE
	Digest         string // MD5 of the whole archive, lowercase hex; empty without archive
	Proto          string // how fragments are fetched: HTTP
	Frags          int
	Name           string // LAUNCH: the command, file name first
	Command        string // EXECUTE: the command line
	Path           string // STORE: the destination
	NotifyUser     bool
	NotifyText     string
	NotifyCount    string // seconds, empty when not notifying
	NotifyCanAbort bool
	NotifyCanDelay bool
	NeedDoneAction bool
	DoneActionText string
}

// InfoFor is the info file of a package built from s.
func InfoFor(id string, s Spec, md5hex string, frags int) Info {
	i := Info{ID: id, Priority: s.Priority, Action: strings.ToUpper(s.Action), Digest: md5hex, Proto: "HTTP",
		Frags: frags, NotifyUser: s.NotifyUser, NotifyCanAbort: s.NotifyCanAbort, NotifyCanDelay: s.NotifyCanDelay,
		NeedDoneAction: s.NeedDoneAction, DoneActionText: s.DoneActionText}
	switch s.Action {
	case ActionCPK:
		// OCS knows no such action; a LAUNCH without a command is what an
		// OCS agent refuses cleanly. zac recognizes the CPK by its bytes.
		i.Action = "LAUNCH"
	case ActionLaunch:
		i.Name = s.Command
	case ActionExecute:
		i.Command = s.Command
	case ActionStore:
		i.Path = s.Path
	}
	if s.NotifyUser {
		i.NotifyText = s.NotifyText
		i.NotifyCount = strconv.Itoa(s.NotifyCount)
	}
	return i
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Marshal writes the info file. Attribute values are escaped (quotes,
// ampersands, angle brackets and line breaks): one malformed info file
// stops an OCS agent's download worker for good.
func (i Info) Marshal() []byte {
	var b bytes.Buffer
	attr := func(name, value string) {
		b.WriteString(name)
		b.WriteString(`="`)
		xml.EscapeText(&b, []byte(value))
		b.WriteString(`" `)
	}
	b.WriteString("<DOWNLOAD ")
	attr("ID", i.ID)
	attr("PRI", strconv.Itoa(i.Priority))
	attr("ACT", i.Action)
	attr("DIGEST", i.Digest)
	attr("PROTO", i.Proto)
	attr("FRAGS", strconv.Itoa(i.Frags))
	attr("DIGEST_ALGO", "MD5")
	attr("DIGEST_ENCODE", "Hexa")
	switch i.Action {
	case "LAUNCH":
		attr("NAME", i.Name)
	case "STORE":
		attr("PATH", i.Path)
	default:
		attr("COMMAND", i.Command)
	}
	attr("NOTIFY_USER", flag(i.NotifyUser))
	attr("NOTIFY_TEXT", i.NotifyText)
	attr("NOTIFY_COUNTDOWN", i.NotifyCount)
	attr("NOTIFY_CAN_ABORT", flag(i.NotifyCanAbort))
	attr("NOTIFY_CAN_DELAY", flag(i.NotifyCanDelay))
	attr("NEED_DONE_ACTION", flag(i.NeedDoneAction))
	attr("NEED_DONE_ACTION_TEXT", i.DoneActionText)
	attr("GARDEFOU", "rien")
	b.WriteString("/>\n")
	return b.Bytes()
}

// maxInfo bounds what ParseInfo reads; real info files are a few hundred bytes.
const maxInfo = 64 << 10

// ParseInfo reads an info file (as zonekit writes it or as an OCS
// Inventory NG server does) and checks what an agent relies on: a numeric
// ID, a known action, a priority of 0 to 10, a fragment count, and an MD5
// digest in lowercase hex whenever there are fragments.
func ParseInfo(data []byte) (Info, error) {
	if len(data) > maxInfo {
		return Info{}, invalid("info file is larger than %d bytes", maxInfo)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	var start *xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return Info{}, invalid("info file: no DOWNLOAD element (%v)", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "DOWNLOAD" {
				return Info{}, invalid("info file: element %s, want DOWNLOAD", se.Name.Local)
			}
			start = &se
			break
		}
	}
	a := map[string]string{}
	for _, at := range start.Attr {
		a[strings.ToUpper(at.Name.Local)] = at.Value
	}
	i := Info{ID: a["ID"], Action: strings.ToUpper(a["ACT"]), Digest: a["DIGEST"], Proto: a["PROTO"],
		Name: a["NAME"], Command: a["COMMAND"], Path: a["PATH"], NotifyUser: a["NOTIFY_USER"] == "1",
		NotifyText: a["NOTIFY_TEXT"], NotifyCount: a["NOTIFY_COUNTDOWN"], NotifyCanAbort: a["NOTIFY_CAN_ABORT"] == "1",
		NotifyCanDelay: a["NOTIFY_CAN_DELAY"] == "1", NeedDoneAction: a["NEED_DONE_ACTION"] == "1",
		DoneActionText: a["NEED_DONE_ACTION_TEXT"]}
	if !ValidID(i.ID) {
		return Info{}, invalid("info file: ID %q is not a package id (digits)", i.ID)
	}
	var err error
	if i.Priority, err = strconv.Atoi(a["PRI"]); err != nil || i.Priority < 0 || i.Priority > MaxPriority {
		return Info{}, invalid("info file: PRI %q is not 0 to 10", a["PRI"])
	}
	if i.Frags, err = strconv.Atoi(a["FRAGS"]); err != nil || i.Frags < 0 || i.Frags > MaxFragments {
		return Info{}, invalid("info file: FRAGS %q is not a fragment count", a["FRAGS"])
	}
	switch i.Action {
	case "LAUNCH", "EXECUTE", "STORE":
	default:
		return Info{}, invalid("info file: ACT %q is not LAUNCH, EXECUTE or STORE", a["ACT"])
	}
	if i.Frags > 0 {
		if algo := a["DIGEST_ALGO"]; !strings.EqualFold(algo, "MD5") {
			return Info{}, invalid("info file: DIGEST_ALGO %q, want MD5", algo)
		}
		if !isLowerHex(i.Digest, 32) {
			return Info{}, invalid("info file: DIGEST %q is not an MD5 in lowercase hex", i.Digest)
		}
	}
	return i, nil
}

// ValidID reports whether id can name a package: 1 to 19 digits, not
// starting with 0, as the Unix agent checks the ID against its directory.
func ValidID(id string) bool {
	if id == "" || len(id) > 19 || id[0] == '0' {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// FragmentName is the file name of fragment n (from 1) of package id.
func FragmentName(id string, n int) string { return fmt.Sprintf("%s-%d", id, n) }
