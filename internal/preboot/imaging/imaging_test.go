package imaging

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/pki"
	"zonekit/internal/preboot/plog"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/preboot/ptls"
)

// testZone is a zone with one administrator (admin / secret) and the
// work of one machine.
type testZone struct {
	work    map[string]policy.Work
	reports []Report
}

func (z *testZone) Report(_ context.Context, mac string, r Report) error {
	z.reports = append(z.reports, r)
	w := z.work[mac]
	w.Status = r.Status
	z.work[mac] = w
	return nil
}

func (z *testZone) Work(_ context.Context, mac string) (policy.Work, error) {
	if w, ok := z.work[mac]; ok {
		return w, nil
	}
	return policy.Work{Action: "none"}, nil
}

func (z *testZone) Admin(_ context.Context, authz string) (string, error) {
	r := http.Request{Header: http.Header{"Authorization": {authz}}}
	if u, p, ok := r.BasicAuth(); ok && u == "admin" && p == "secret" {
		return u, nil
	}
	return "", errors.New("not a zone administrator's credential")
}

// testTLS makes a zone CA, a server certificate and a device certificate.
func testTLS(t *testing.T) (m *ptls.Material, device tls.Certificate) {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("Test", pki.ECDSAP256, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.IssueServer(pki.ServerRequest{CommonName: "imaging.test", PublicKey: key.Public()}, now)
	if err != nil {
		t.Fatal(err)
	}
	dkey, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(dkey, "dev")
	dcert, err := ca.SignDeviceCSR(csr, "device-1", now)
	if err != nil {
		t.Fatal(err)
	}
	return &ptls.Material{CA: ca.Cert, Cert: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		tls.Certificate{Certificate: [][]byte{dcert.Raw}, PrivateKey: dkey, Leaf: dcert}
}

const adminAuth = "Basic YWRtaW46c2VjcmV0" // admin:secret

func startZoneService(t *testing.T, z *testZone) (*Server, string, *ptls.Material, tls.Certificate) {
	t.Helper()
	dir := t.TempDir()
	m, dev := testTLS(t)
	log, _ := plog.Open(filepath.Join(dir, "i.log"), "pbserv", plog.Request, 15, nil)
	t.Cleanup(func() { log.Close() })
	s := New(Config{Addr: "127.0.0.1", Dir: filepath.Join(dir, "images"), StatsFile: filepath.Join(dir, "stats.json"), TLS: m, TokenKey: filepath.Join(dir, "token.key")}, z, log)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, dir, m, dev
}

func TestRoundTripAndIntegrity(t *testing.T) {
	s, dir, m, _ := startZoneService(t, &testZone{})
	c := NewClient("https://"+s.Addr().String(), ptls.ClientConfig(m.CA, nil), adminAuth)
	ctx := context.Background()
	src := filepath.Join(dir, "disk.img")
	data := bytes.Repeat([]byte("zonekit image "), 100000)
	os.WriteFile(src, data, 0o644)
	if _, err := c.Upload(ctx, "disk.img", src, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, "disk.img", src, false); errkind.Of(err) != errkind.Exists {
		t.Fatalf("second upload: %v", err)
	}
	out := filepath.Join(dir, "back.img")
	if _, err := c.Download(ctx, "disk.img", out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("downloaded image differs")
	}
	// Damage the stored image: the service breaks the transfer off before
	// its end, and the client writes nothing.
	stored := filepath.Join(dir, "images", "disk.img")
	damaged := append([]byte{}, data...)
	damaged[12345] ^= 1
	os.WriteFile(stored, damaged, 0o640)
	out2 := filepath.Join(dir, "back2.img")
	if _, err := c.Download(ctx, "disk.img", out2); err == nil {
		t.Fatalf("damaged download: %v", err)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Fatal("a damaged download left a file")
	}
	imgs, err := c.List(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].Name != "disk.img" {
		t.Fatalf("list %v %v", imgs, err)
	}
	st, err := ReadStats(filepath.Join(dir, "stats.json"))
	if err != nil || st.ImagesReceived != 1 || st.ImagesSent != 1 || st.PXERequests != 4 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if _, err := c.Upload(ctx, "../x", src, false); err == nil {
		t.Fatal("a path as image name was accepted")
	}
}

// TestConcurrentUploadOfNewName: while one upload of a new name is under
// way, a second one of the same name is told that it exists; the first
// completes.
func TestConcurrentUploadOfNewName(t *testing.T) {
	s, dir, m, _ := startZoneService(t, &testZone{})
	data := bytes.Repeat([]byte("x"), 1<<20)
	sum := sha256.Sum256(data)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", "https://"+s.Addr().String()+"/images/new.img", pr)
	req.ContentLength = int64(len(data))
	req.Header.Set(DigestHeader, hex.EncodeToString(sum[:]))
	req.Header.Set("Authorization", adminAuth)
	first := make(chan *http.Response, 1)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ptls.ClientConfig(m.CA, nil)}}
	go func() {
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
		}
		first <- resp
	}()
	pw.Write(data[:1000])
	for deadline := time.Now().Add(10 * time.Second); ; { // the first upload is now under way
		s.mu.Lock()
		n := len(s.uploading)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first upload did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	src := filepath.Join(dir, "other")
	os.WriteFile(src, []byte("other"), 0o644)
	c := NewClient("https://"+s.Addr().String(), ptls.ClientConfig(m.CA, nil), adminAuth)
	if _, err := c.Upload(context.Background(), "new.img", src, false); errkind.Of(err) != errkind.Exists || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second upload: %v", err)
	}
	pw.Write(data[1000:])
	pw.Close()
	resp := <-first
	if resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("first upload: %v", resp)
	}
	resp.Body.Close()
	if got, _ := os.ReadFile(filepath.Join(dir, "images", "new.img")); !bytes.Equal(got, data) {
		t.Fatal("stored image is not the first upload's")
	}
}

// TestSweep: temporary files of killed uploads, and checksum files whose
// image never arrived, are removed at start.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	os.MkdirAll(images, 0o750)
	for _, n := range []string{".a.img.tmp-123456", ".a.img.sha256.tmp-99", "gone.img.sha256", "kept.img", "kept.img.sha256", ".other"} {
		os.WriteFile(filepath.Join(images, n), []byte("x"), 0o640)
	}
	s := New(Config{Addr: "127.0.0.1", Dir: images}, nil, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	ents, _ := os.ReadDir(images)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != ".other kept.img kept.img.sha256" {
		t.Fatalf("left %v", left)
	}
}

// TestFIFOImage: a FIFO named like an image is not served (and does not
// block the handler).
func TestFIFOImage(t *testing.T) {
	s, dir, m, _ := startZoneService(t, &testZone{})
	if err := syscall.Mkfifo(filepath.Join(dir, "images", "fifo.img"), 0o644); err != nil {
		t.Skip(err)
	}
	os.WriteFile(filepath.Join(dir, "images", "fifo.img.sha256"), []byte(strings.Repeat("0", 64)), 0o640)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewClient("https://"+s.Addr().String(), ptls.ClientConfig(m.CA, nil), adminAuth).Download(ctx, "fifo.img", filepath.Join(dir, "out"))
	if errkind.Of(err) != errkind.NotFound {
		t.Fatalf("download of a FIFO: %v", err)
	}
}

// TestAccess: nothing about images without a zone credential; a zone
// server reads work and images; a task token opens the one image its
// task names, in its one direction, until it expires.
func TestAccess(t *testing.T) {
	z := &testZone{work: map[string]policy.Work{
		"52:54:00:00:00:01": {Action: "image", Image: "a.img"},
		"52:54:00:00:00:02": {Action: "take-image", Image: "new.img"},
	}}
	s, dir, m, device := startZoneService(t, z)
	base := "https://" + s.Addr().String()
	admin := NewClient(base, ptls.ClientConfig(m.CA, nil), adminAuth)
	src := filepath.Join(dir, "a")
	os.WriteFile(src, []byte("image a"), 0o644)
	ctx := context.Background()
	for _, n := range []string{"a.img", "b.img"} {
		if _, err := admin.Upload(ctx, n, src, false); err != nil {
			t.Fatal(err)
		}
	}
	call := func(cert *tls.Certificate, method, path, authz string, body string) (int, string) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ptls.ClientConfig(m.CA, cert)}}
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		if body != "" {
			sum := sha256.Sum256([]byte(body))
			req.Header.Set(DigestHeader, hex.EncodeToString(sum[:]))
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Nobody without a credential, a wrong one, or a device's certificate.
	for _, c := range []struct {
		cert         *tls.Certificate
		method, path string
		authz        string
	}{
		{nil, "GET", "/images", ""}, {nil, "GET", "/images/a.img", ""}, {nil, "GET", "/work/52:54:00:00:00:01", ""},
		{nil, "GET", "/images/a.img", "Basic YWRtaW46d3Jvbmc="}, {&device, "GET", "/images/a.img", ""},
		{&device, "GET", "/work/52:54:00:00:00:01", ""}, {&m.Cert, "PUT", "/images/c.img", ""},
	} {
		body := ""
		if c.method == "PUT" {
			body = "data"
		}
		if code, msg := call(c.cert, c.method, c.path, c.authz, body); code != http.StatusUnauthorized {
			t.Errorf("%s %s: %d %s, want 401", c.method, c.path, code, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "images", "c.img")); err == nil {
		t.Fatal("an unauthenticated upload was stored")
	}
	// A zone server (the policy service) gets the work, with a task token.
	code, body := call(&m.Cert, "GET", "/work/52:54:00:00:00:01", "", "")
	var w policy.Work
	if code != 200 || json.Unmarshal([]byte(body), &w) != nil || !strings.HasPrefix(w.Token, tokenPrefix) {
		t.Fatalf("work: %d %s", code, body)
	}
	restore := "Bearer " + w.Token
	if code, _ := call(&m.Cert, "GET", "/images", "", ""); code != 200 {
		t.Errorf("server list: %d", code)
	}
	if code, body := call(nil, "GET", "/images/a.img", restore, ""); code != 200 || body != "image a" {
		t.Errorf("restore token, its image: %d %q", code, body)
	}
	if code, _ := call(nil, "GET", "/images/b.img", restore, ""); code != http.StatusForbidden {
		t.Errorf("restore token, another image: %d", code)
	}
	if code, _ := call(nil, "PUT", "/images/a.img?replace=1", restore, "other"); code != http.StatusForbidden {
		t.Errorf("restore token used to upload: %d", code)
	}
	if code, _ := call(nil, "GET", "/images/a.img", restore[:len(restore)-2]+"xx", ""); code != http.StatusUnauthorized {
		t.Errorf("altered token: %d", code)
	}
	_, body = call(&m.Cert, "GET", "/work/52:54:00:00:00:02", "", "")
	json.Unmarshal([]byte(body), &w)
	capture := "Bearer " + w.Token
	if code, msg := call(nil, "PUT", "/images/new.img", capture, "captured"); code != http.StatusCreated {
		t.Errorf("capture token, its image: %d %s", code, msg)
	}
	if code, _ := call(nil, "GET", "/images/new.img", capture, ""); code != http.StatusForbidden {
		t.Errorf("capture token used to download: %d", code)
	}
	s.now = func() time.Time { return time.Now().Add(TokenTTL + time.Minute) }
	if code, msg := call(nil, "GET", "/images/a.img", restore, ""); code != http.StatusUnauthorized || !strings.Contains(msg, "expired") {
		t.Errorf("expired token: %d %s", code, msg)
	}
}

// TestNoZoneNoImages: without a zone to check credentials against, the
// service refuses every image request, whatever is presented.
func TestNoZoneNoImages(t *testing.T) {
	dir := t.TempDir()
	s := New(Config{Addr: "127.0.0.1", Dir: filepath.Join(dir, "images")}, nil, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, path := range []string{"/images", "/images/a.img"} {
		req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+path, nil)
		req.Header.Set("Authorization", adminAuth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}

// TestUploadBound: an upload past MaxImageBytes is refused, announced or
// not, and nothing is kept.
func TestUploadBound(t *testing.T) {
	dir := t.TempDir()
	m, _ := testTLS(t)
	s := New(Config{Addr: "127.0.0.1", Dir: filepath.Join(dir, "images"), TLS: m, MaxImageBytes: 1000}, &testZone{}, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ptls.ClientConfig(m.CA, nil)}}
	data := bytes.Repeat([]byte("y"), 5000)
	sum := sha256.Sum256(data)
	for _, chunked := range []bool{false, true} {
		req, _ := http.NewRequest("PUT", "https://"+s.Addr().String()+"/images/big.img", io.NopCloser(bytes.NewReader(data)))
		req.ContentLength = int64(len(data))
		if chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", adminAuth)
		req.Header.Set(DigestHeader, hex.EncodeToString(sum[:]))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked %v: %d", chunked, resp.StatusCode)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "images")); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	// force-reload raises the limit for new uploads.
	if err := s.Reload(Config{Addr: "127.0.0.1", Dir: filepath.Join(dir, "images"), MaxImageBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", "https://"+s.Addr().String()+"/images/big.img", bytes.NewReader(data))
	req.Header.Set("Authorization", adminAuth)
	req.Header.Set(DigestHeader, hex.EncodeToString(sum[:]))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("after reload: %d", resp.StatusCode)
	}
}

// TestTaskRunsOnce: a task is served (with a token) while queued; the
// token reports its progress; once started it is no longer served.
func TestTaskRunsOnce(t *testing.T) {
	mac := "52:54:00:00:00:01"
	z := &testZone{work: map[string]policy.Work{mac: {Action: "image", Image: "a.img", Status: "queued"}}}
	s, _, m, _ := startZoneService(t, z)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ptls.ClientConfig(m.CA, &m.Cert)}}
	work := func() policy.Work {
		resp, err := hc.Get("https://" + s.Addr().String() + "/work/" + mac)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var w policy.Work
		json.NewDecoder(resp.Body).Decode(&w)
		return w
	}
	w := work()
	if w.Action != "image" || w.Token == "" {
		t.Fatalf("queued task not served: %+v", w)
	}
	req, _ := http.NewRequest("POST", "https://"+s.Addr().String()+"/tasks/report", strings.NewReader(`{"status":"running"}`))
	req.Header.Set("Authorization", "Bearer "+w.Token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(z.reports) != 1 || z.reports[0].Status != "running" {
		t.Fatalf("report: %d %+v", resp.StatusCode, z.reports)
	}
	if w := work(); w.Action != "none" || w.Token != "" {
		t.Fatalf("started task served again: %+v", w)
	}
	// A token of an earlier task does not report on a new one.
	z.work[mac] = policy.Work{Action: "take-image", Image: "b.img", Status: "queued"}
	req, _ = http.NewRequest("POST", "https://"+s.Addr().String()+"/tasks/report", strings.NewReader(`{"status":"failed"}`))
	req.Header.Set("Authorization", "Bearer "+w.Token)
	resp, _ = hc.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || len(z.reports) != 1 {
		t.Fatalf("stale token report: %d", resp.StatusCode)
	}
}

// TestTrailerDigest: a chunked upload may send its SHA-256 as a trailer
// (the imaging environment reads the disk once); a wrong or missing one
// keeps nothing.
func TestTrailerDigest(t *testing.T) {
	s, dir, m, _ := startZoneService(t, &testZone{})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ptls.ClientConfig(m.CA, nil)}}
	data := bytes.Repeat([]byte("disk"), 100000)
	sum := sha256.Sum256(data)
	for _, c := range []struct {
		name, digest string
		code         int
	}{{"good.img", hex.EncodeToString(sum[:]), 201}, {"bad.img", strings.Repeat("0", 64), 422}, {"none.img", "", 400}} {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("PUT", "https://"+s.Addr().String()+"/images/"+c.name, pr)
		req.ContentLength = -1
		req.Header.Set("Authorization", adminAuth)
		req.Trailer = http.Header{DigestHeader: nil}
		go func() {
			pw.Write(data)
			req.Trailer.Set(DigestHeader, c.digest)
			pw.Close()
		}()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.code)
		}
		_, err = os.Stat(filepath.Join(dir, "images", c.name))
		if (err == nil) != (c.code == 201) {
			t.Errorf("%s stored: %v", c.name, err == nil)
		}
	}
}

// BenchmarkDownload: one image download over HTTPS, as an administrator,
// into io.Discard (compare scripts/bench/imaging.sh for nginx).
func BenchmarkDownload(b *testing.B) {
	t := &testing.T{}
	s, dir, m, _ := startZoneService(t, &testZone{})
	data := make([]byte, 64<<20)
	rand.Read(data)
	src := filepath.Join(dir, "src")
	os.WriteFile(src, data, 0o644)
	c := NewClient("https://"+s.Addr().String(), ptls.ClientConfig(m.CA, nil), adminAuth)
	if _, err := c.Upload(context.Background(), "b.img", src, false); err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ptls.ClientConfig(m.CA, nil)}}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest("GET", "https://"+s.Addr().String()+"/images/b.img", nil)
		req.Header.Set("Authorization", adminAuth)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestUploadCrash: an upload cut off after each step of storing it (a
// crash: no cleanup) leaves, after the next start, either the old image
// with its digest or the new one with its digest, never a mix; a new
// name is either absent or whole.
func TestUploadCrash(t *testing.T) {
	for _, step := range []string{"digest-staged", "image-renamed"} {
		for _, replace := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s replace=%v", step, replace), func(t *testing.T) {
				dir := t.TempDir()
				m, _ := testTLS(t)
				images := filepath.Join(dir, "images")
				crash := func(st string) error {
					if st == "imaging-upload-"+step {
						return errors.New("crash")
					}
					return nil
				}
				start := func(hook failpoint.Hook) *Server {
					s := New(Config{Addr: "127.0.0.1", Dir: images, TLS: m, TokenKey: filepath.Join(dir, "key")}, &testZone{}, nil)
					s.hook = hook
					if err := s.Start(); err != nil {
						t.Fatal(err)
					}
					return s
				}
				old, neu := filepath.Join(dir, "old"), filepath.Join(dir, "new")
				os.WriteFile(old, []byte("old image"), 0o644)
				os.WriteFile(neu, []byte("new image, longer"), 0o644)
				s := start(crash)
				c := NewClient("https://"+s.Addr().String(), ptls.ClientConfig(m.CA, nil), adminAuth)
				if replace {
					s.hook = failpoint.Crash
					if _, err := c.Upload(context.Background(), "x.img", old, false); err != nil {
						t.Fatal(err)
					}
					s.hook = crash
				}
				c.Upload(context.Background(), "x.img", neu, replace) // cut off
				s.Stop()
				s = start(failpoint.Crash) // the next start recovers
				defer s.Stop()
				imgs, err := List(images)
				if err != nil {
					t.Fatal(err)
				}
				for _, img := range imgs {
					got, _ := hashFile(filepath.Join(images, img.Name))
					if got != img.SHA256 {
						t.Fatalf("%s: data %s, digest %s", img.Name, got, img.SHA256)
					}
				}
				data, _ := os.ReadFile(filepath.Join(images, "x.img"))
				switch {
				case step == "image-renamed" && string(data) != "new image, longer":
					t.Fatalf("the stored image is %q, want the new one (its rename happened)", data)
				case step == "digest-staged" && replace && string(data) != "old image":
					t.Fatalf("the stored image is %q, want the old one", data)
				case step == "digest-staged" && !replace && (len(imgs) != 0 || data != nil):
					t.Fatalf("a cut-off new upload left %v %q", imgs, data)
				}
				ents, _ := os.ReadDir(images)
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".new") {
						t.Errorf("left %s", e.Name())
					}
				}
			})
		}
	}
}

// FuzzVerifyToken: nothing but a token minted with the key verifies, and
// a verified token's claims are the minted ones.
func FuzzVerifyToken(f *testing.F) {
	key := tokenKey(bytes.Repeat([]byte{7}, 32))
	good := key.Mint(Claims{MAC: "52:54:00:12:34:56", Action: "image", Image: "a.img", Expires: 2e9})
	f.Add(good)
	f.Add(good[:len(good)-1] + "x")
	f.Add("zkimg1..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := key.Verify(tok, time.Unix(1e9, 0))
		if err == nil && tok != good {
			t.Fatalf("%q verified as %+v", tok, c)
		}
	})
}
