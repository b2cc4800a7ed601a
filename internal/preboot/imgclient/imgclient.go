// Package imgclient is the imaging client that runs in the imaging
// environment (the initramfs pbserv builds): it takes the task from the
// kernel command line, captures the machine's disk to the imaging
// service or restores an image onto it, and reports the task's progress.
// The real tools do the disk work: sfdisk for the partition table,
// partclone for the used blocks of filesystems it knows, zstd for
// compression; this client only moves their output and speaks to pbserv.
package imgclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/pki"
	"zonekit/internal/preboot/imgformat"
	"zonekit/internal/preboot/ptls"
)

// DigestHeader is the imaging service's SHA-256 header (and trailer).
const DigestHeader = "X-Image-SHA256"

// Task is what the kernel command line asks for.
type Task struct {
	Action string // "take-image" (capture) or "image" (restore)
	Image  string
	Server string // https://host:port of the imaging service
	Token  string
	MAC    string
	Disk   string // /dev/vda; empty: the first disk found
	Iface  string // the network interface for multicast; empty: eth0
	CA     string // the zone CA certificate file
}

// ParseCmdline reads zonekit.* parameters.
func ParseCmdline(cmdline string) Task {
	t := Task{CA: "/etc/zonekit/zone-ca.pem"}
	for _, w := range strings.Fields(cmdline) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		switch k {
		case "zonekit.action":
			t.Action = v
		case "zonekit.image":
			t.Image = v
		case "zonekit.server":
			t.Server = strings.TrimRight(v, "/")
		case "zonekit.token":
			t.Token = v
		case "zonekit.mac":
			t.MAC = v
		case "zonekit.disk":
			t.Disk = v
		case "zonekit.iface":
			t.Iface = v
		}
	}
	return t
}

// Client does one task.
type Client struct {
	T    Task
	HTTP *http.Client
	Log  io.Writer // progress lines, for the console
	Tmp  string    // for the tools' logs
}

// New reads the zone CA and returns a client for t.
func New(t Task, log io.Writer) (*Client, error) {
	ca, err := pki.ReadCertFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("zone CA: %w", err)
	}
	return &Client{T: t, Log: log, Tmp: os.TempDir(), HTTP: &http.Client{Transport: &http.Transport{
		TLSClientConfig: ptls.ClientConfig(ca, nil), ResponseHeaderTimeout: 5 * time.Minute}}}, nil
}

func (c *Client) logf(format string, args ...any) {
	fmt.Fprintf(c.Log, "zonekit-imaging: "+format+"\n", args...)
}

// Run does the task and reports it: running, then done or failed.
func (c *Client) Run(ctx context.Context) error {
	if c.T.Disk == "" {
		for _, d := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1"} {
			if _, err := os.Stat(d); err == nil {
				c.T.Disk = d
				break
			}
		}
		if c.T.Disk == "" {
			err := errors.New("no disk found (vda, sda, nvme0n1)")
			c.report(ctx, "failed", 0, err)
			return err
		}
	}
	if err := c.report(ctx, "running", 0, nil); err != nil {
		return err
	}
	start := time.Now()
	var n int64
	var err error
	switch c.T.Action {
	case "take-image":
		n, err = c.capture(ctx)
	case "image":
		n, err = c.restore(ctx)
	default:
		err = fmt.Errorf("unknown action %q", c.T.Action)
	}
	if err != nil {
		c.logf("failed: %v", err)
		c.report(ctx, "failed", n, err)
		return err
	}
	d := time.Since(start)
	c.logf("%s of %s done: %d bytes in %s (%.1f MiB/s)", c.T.Action, c.T.Image, n, d.Round(time.Millisecond), float64(n)/(1<<20)/d.Seconds())
	return c.report(ctx, "done", n, nil)
}

func (c *Client) report(ctx context.Context, status string, n int64, failure error) error {
	body := map[string]any{"status": status, "bytes": n}
	if failure != nil {
		body["error"] = failure.Error()
	}
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", c.T.Server+"/tasks/report", bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.T.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("report %s: %w", status, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("report %s: %s: %s", status, resp.Status, strings.TrimSpace(string(msg)))
	}
	c.logf("reported %s", status)
	return nil
}

func (c *Client) imageURL() string { return c.T.Server + "/images/" + url.PathEscape(c.T.Image) }

// partitions lists the disk's partitions from sysfs.
func (c *Client) partitions() ([]imgformat.Partition, error) {
	disk := filepath.Base(c.T.Disk)
	ents, err := os.ReadDir(filepath.Join("/sys/class/block", disk))
	if err != nil {
		return nil, err
	}
	var out []imgformat.Partition
	for _, e := range ents {
		dir := filepath.Join("/sys/class/block", disk, e.Name())
		num, err1 := readInt(filepath.Join(dir, "partition"))
		start, err2 := readInt(filepath.Join(dir, "start"))
		size, err3 := readInt(filepath.Join(dir, "size"))
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, imgformat.Partition{Number: int(num), Start: start * 512, Size: size * 512})
	}
	return out, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// partNode is a partition's device node: vda1, nvme0n1p1.
func partNode(disk string, n int) string {
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

// fsType tells ext2/3/4 by the superblock magic; "" otherwise.
func fsType(node string) string {
	f, err := os.Open(node)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 2)
	if _, err := f.ReadAt(b, 1024+56); err == nil && b[0] == 0x53 && b[1] == 0xef {
		return "ext"
	}
	return ""
}

// countWriter counts and hashes what passes.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// capture streams the disk's image to the service: a chunked PUT whose
// SHA-256 follows the body as a trailer, so the disk is read once.
func (c *Client) capture(ctx context.Context) (int64, error) {
	layout, err := exec.CommandContext(ctx, "sfdisk", "--dump", c.T.Disk).Output()
	if err != nil {
		return 0, fmt.Errorf("sfdisk --dump %s: %w", c.T.Disk, err)
	}
	parts, err := c.partitions()
	if err != nil {
		return 0, err
	}
	size, _ := readInt(filepath.Join("/sys/class/block", filepath.Base(c.T.Disk), "size"))
	m := imgformat.Manifest{DiskBytes: size * 512, Layout: string(layout)}
	for _, p := range parts {
		node := partNode(c.T.Disk, p.Number)
		p.Tool = imgformat.ToolRaw
		if fsType(node) == "ext" {
			p.FS, p.Tool = "ext", imgformat.ToolPartclone
		}
		m.Partitions = append(m.Partitions, p)
	}
	pr, pw := io.Pipe()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(pw, h)}
	req, err := http.NewRequestWithContext(ctx, "PUT", c.imageURL(), pr)
	if err != nil {
		return 0, err
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+c.T.Token)
	req.Trailer = http.Header{DigestHeader: nil}
	go func() {
		err := c.writeImage(ctx, cw, m)
		if err == nil {
			req.Trailer.Set(DigestHeader, hex.EncodeToString(h.Sum(nil)))
		}
		pw.CloseWithError(err)
	}()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return cw.n, fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return cw.n, fmt.Errorf("upload: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return cw.n, nil
}

func (c *Client) writeImage(ctx context.Context, w io.Writer, m imgformat.Manifest) error {
	if err := imgformat.WriteHeader(w, m); err != nil {
		return err
	}
	for _, p := range m.Partitions {
		node := partNode(c.T.Disk, p.Number)
		c.logf("capture partition %d (%s, %s, %d bytes)", p.Number, node, p.Tool, p.Size)
		fw := imgformat.NewFrameWriter(w)
		zstd := exec.CommandContext(ctx, "zstd", "-q", "-T0", "-3", "-c")
		zstd.Stdout = fw
		zin, err := zstd.StdinPipe()
		if err != nil {
			return err
		}
		var errb bytes.Buffer
		zstd.Stderr = &errb
		if err := zstd.Start(); err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		var perr error
		if p.Tool == imgformat.ToolPartclone {
			pc := exec.CommandContext(ctx, "partclone.extfs", "-c", "-q", "-s", node, "-o", "-", "-L", filepath.Join(c.Tmp, "partclone.log"))
			pc.Stdout = zin
			var pcErr bytes.Buffer
			pc.Stderr = &pcErr
			if err := pc.Run(); err != nil {
				perr = fmt.Errorf("partclone.extfs -c %s: %v: %s", node, err, lastLine(pcErr.String(), filepath.Join(c.Tmp, "partclone.log")))
			}
		} else {
			f, err := os.Open(node)
			if err != nil {
				perr = err
			} else {
				_, perr = imgformat.WriteRaw(zin, f, p.Size)
				f.Close()
			}
		}
		zin.Close()
		if err := zstd.Wait(); err != nil && perr == nil {
			perr = fmt.Errorf("zstd: %v: %s", err, errb.String())
		}
		if perr != nil {
			return perr
		}
		if err := fw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func lastLine(out, logPath string) string {
	if b, err := os.ReadFile(logPath); err == nil {
		out += string(b)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// restore writes the image onto the disk: received from the multicast
// session when the task has one, else (or when the session cannot be
// had) fetched over HTTPS.
func (c *Client) restore(ctx context.Context) (int64, error) {
	info, err := c.session(ctx)
	if err != nil {
		c.logf("no multicast session (%v); restoring over HTTPS", err)
	} else if info.Session != "" {
		n, err := c.restoreMulticast(ctx, info)
		if err == nil {
			return n, nil
		}
		c.logf("multicast session %s: %v; restoring over HTTPS", info.Session, err)
	}
	return c.restoreHTTP(ctx)
}

// SessionInfo is pbserv's answer to GET /tasks/session.
type SessionInfo struct {
	Session  string `json:"session"`
	Portbase int    `json:"portbase"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Wait     int    `json:"wait"`
}

func (c *Client) session(ctx context.Context) (SessionInfo, error) {
	var info SessionInfo
	req, err := http.NewRequestWithContext(ctx, "GET", c.T.Server+"/tasks/session", nil)
	if err != nil {
		return info, err
	}
	req.Header.Set("Authorization", "Bearer "+c.T.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return info, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return info, json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&info)
}

// restoreMulticast receives the image with udp-receiver, which joins the
// session's udp-sender on the network and asks again for what it missed.
func (c *Client) restoreMulticast(ctx context.Context, info SessionInfo) (int64, error) {
	iface := c.T.Iface
	if iface == "" {
		iface = "eth0"
	}
	c.logf("joining multicast session %s (port %d, %d bytes)", info.Session, info.Portbase, info.Size)
	rc := exec.CommandContext(ctx, "udp-receiver", "--interface", iface, "--portbase", fmt.Sprint(info.Portbase),
		// A receive buffer of 8 MiB: with the default (208 KiB) the sender
		// outpaces the receiver and a quarter of the data is sent again.
		"--rcvbuf", "8388608",
		"--nokbd", "--nosync", "--no-progress", "--start-timeout", fmt.Sprint(info.Wait), "--receive-timeout", "120")
	var errb bytes.Buffer
	rc.Stderr = &errb
	out, err := rc.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := rc.Start(); err != nil {
		return 0, fmt.Errorf("udp-receiver: %w", err)
	}
	n, rerr := c.restoreStream(ctx, out, info.SHA256)
	io.Copy(io.Discard, out)
	if err := rc.Wait(); err != nil && rerr == nil {
		rerr = fmt.Errorf("udp-receiver: %v: %s", err, lastLine(errb.String(), ""))
	}
	if rerr == nil && n != info.Size {
		rerr = fmt.Errorf("received %d bytes of %d", n, info.Size)
	}
	return n, rerr
}

// restoreHTTP fetches the image over HTTPS.
func (c *Client) restoreHTTP(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.imageURL(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.T.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, fmt.Errorf("download: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return c.restoreStream(ctx, resp.Body, strings.ToLower(resp.Header.Get(DigestHeader)))
}

// restoreStream writes an image read from r onto the disk: the
// partition table first, then each partition through zstd and partclone
// (or the raw records). The whole stream's SHA-256 must match want before
// the restore counts as done.
func (c *Client) restoreStream(ctx context.Context, r io.Reader, want string) (int64, error) {
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(r, h)}
	m, err := imgformat.ReadHeader(cr)
	if err != nil {
		return cr.n, err
	}
	if m.DiskBytes > 0 {
		if have, err := readInt(filepath.Join("/sys/class/block", filepath.Base(c.T.Disk), "size")); err == nil && have*512 < m.DiskBytes {
			return cr.n, fmt.Errorf("%s has %d bytes, the image's disk had %d", c.T.Disk, have*512, m.DiskBytes)
		}
	}
	sf := exec.CommandContext(ctx, "sfdisk", "-q", "--no-reread", c.T.Disk)
	sf.Stdin = strings.NewReader(m.Layout)
	if out, err := sf.CombinedOutput(); err != nil {
		return cr.n, fmt.Errorf("sfdisk %s: %v: %s", c.T.Disk, err, strings.TrimSpace(string(out)))
	}
	exec.CommandContext(ctx, "blockdev", "--rereadpt", c.T.Disk).Run()
	for _, p := range m.Partitions {
		node := partNode(c.T.Disk, p.Number)
		for i := 0; ; i++ {
			if _, err := os.Stat(node); err == nil {
				break
			}
			if i > 100 {
				return cr.n, fmt.Errorf("%s did not appear after writing the partition table", node)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.logf("restore partition %d (%s, %s)", p.Number, node, p.Tool)
		if err := c.restorePartition(ctx, imgformat.NewFrameReader(cr), p, node); err != nil {
			return cr.n, err
		}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return cr.n, fmt.Errorf("image data: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return cr.n, fmt.Errorf("integrity check failed: the image read has SHA-256 %s, the service holds %s", got, want)
	}
	exec.Command("sync").Run()
	return cr.n, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *Client) restorePartition(ctx context.Context, data io.Reader, p imgformat.Partition, node string) error {
	zstd := exec.CommandContext(ctx, "zstd", "-d", "-q", "-c")
	zstd.Stdin = data
	var zerr bytes.Buffer
	zstd.Stderr = &zerr
	zout, err := zstd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := zstd.Start(); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	var perr error
	if p.Tool == imgformat.ToolPartclone {
		pc := exec.CommandContext(ctx, "partclone.extfs", "-r", "-q", "-s", "-", "-o", node, "-L", filepath.Join(c.Tmp, "partclone.log"))
		pc.Stdin = zout
		var pcErr bytes.Buffer
		pc.Stderr = &pcErr
		pc.Stdout = &pcErr
		if err := pc.Run(); err != nil {
			perr = fmt.Errorf("partclone.extfs -r %s: %v: %s", node, err, lastLine(pcErr.String(), filepath.Join(c.Tmp, "partclone.log")))
		}
	} else {
		f, err := os.OpenFile(node, os.O_WRONLY, 0)
		if err != nil {
			perr = err
		} else {
			perr = imgformat.ReadRaw(f, zout, p.Size)
			if err := f.Close(); perr == nil {
				perr = err
			}
		}
	}
	io.Copy(io.Discard, zout)
	if err := zstd.Wait(); err != nil && perr == nil {
		perr = fmt.Errorf("zstd -d: %v: %s", err, zerr.String())
	}
	return perr
}
