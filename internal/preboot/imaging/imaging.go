// Package imaging is the imaging service (pbserv): it stores images sent
// by imaging clients and serves them back, each checked against its
// SHA-256 on the way in and carrying it on the way out; it answers the
// preboot policy service with the work assigned to a device; it logs every
// request's source, type, time and result and keeps the statistics of the
// reference (PXE requests, images sent, images received) since it started.
package imaging

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
	"zonekit/internal/failpoint"
	"zonekit/internal/preboot/imgformat"
	"zonekit/internal/preboot/plog"
	"zonekit/internal/preboot/policy"
	"zonekit/internal/preboot/ptls"
	"zonekit/internal/preboot/regfile"
)

// DigestHeader carries an image's SHA-256 (hex) both ways.
const DigestHeader = "X-Image-SHA256"

// WorkSource answers what a device (by MAC address) is to do.
type WorkSource interface {
	Work(ctx context.Context, mac string) (policy.Work, error)
}

// Zone is the zone this service belongs to: it answers what a device is
// to do, and whether a request's Authorization header (Basic or Bearer)
// is a zone administrator's, returning the name.
type Zone interface {
	WorkSource
	Admin(ctx context.Context, authorization string) (string, error)
	// Report records an imaging task's progress for the machine.
	Report(ctx context.Context, mac string, r Report) error
}

// Report is an imaging task's progress, as the imaging environment sends
// it (POST /tasks/report with its task token).
type Report struct {
	Status string `json:"status"` // running, done or failed
	Bytes  int64  `json:"bytes,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Config is the service's resolved configuration.
type Config struct {
	Addr      string // IPAddress, or "" for every address
	Port      int
	Dir       string // ImageDirectory
	StatsFile string
	Library   string // LIBRARY_NAME, logged as ignored
	// TLS is this zone server's certificate and zone CA: the service
	// serves HTTPS with it. Nil (no zone here): plain HTTP, and images
	// are refused to everyone, since no credential can be checked.
	TLS *ptls.Material
	// TokenKey is the file of the key that signs task tokens.
	TokenKey string
	// MaxImageBytes bounds one upload; 0 means DefaultMaxImageBytes.
	MaxImageBytes int64
	// Portbase is the first UDP port of multicast sessions (0: the
	// default); Sender is udp-sender's path ("" looks it up in $PATH).
	Portbase int
	Sender   string
}

// DefaultMaxImageBytes is the largest upload by default: 1 TiB.
const DefaultMaxImageBytes = 1 << 40

// freeSpaceMargin is left free on the image directory's file system.
const freeSpaceMargin = 64 << 20

// Stats are the reference's imaging statistics since the service started.
type Stats struct {
	Started        time.Time `json:"started"`
	Pid            int       `json:"pid"`
	PXERequests    int64     `json:"pxe_requests"`
	ImagesSent     int64     `json:"images_sent"`
	ImagesReceived int64     `json:"images_received"`
}

// Image describes a stored image.
type Image struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Modified time.Time `json:"modified"`
	// The partition layout, for a disk image (imgformat): the disk's
	// size and its partitions as captured.
	DiskBytes  int64                 `json:"disk_bytes,omitempty"`
	Partitions []imgformat.Partition `json:"partitions,omitempty"`
}

// Server is the running imaging service.
type Server struct {
	// Observe, when set before Start, wraps the HTTP handler (metrics).
	Observe func(http.Handler) http.Handler

	log  *plog.Logger
	cfg  Config // Dir is read through dir()
	zone Zone
	key  tokenKey
	now  func() time.Time

	mu        sync.Mutex
	stats     Stats
	dirNow    string
	maxNow    int64             // MaxImageBytes in force
	uploading map[string]bool   // image paths with an upload under way
	verified  map[string]string // image paths whose file was hashed whole when served, by fileKey
	// hook is called after each step of storing an upload; an error ends
	// the handler there as a crash would (failpoint.Crash kills the
	// process at a step armed in ZONEKIT_FAILPOINTS).
	hook failpoint.Hook
	mc   sessions

	srv  *http.Server
	ln   net.Listener
	done chan error
}

// New returns a service; zone may be nil (every device gets no work, and
// nobody gets images).
func New(cfg Config, zone Zone, log *plog.Logger) *Server {
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = DefaultMaxImageBytes
	}
	return &Server{cfg: cfg, zone: zone, log: log, uploading: map[string]bool{}, verified: map[string]string{}, now: time.Now, maxNow: cfg.MaxImageBytes, hook: failpoint.Crash}
}

// tempName matches atomicfile's temporary files: ".NAME.tmp-" and digits.
var tempName = regexp.MustCompile(`^\..+\.tmp-[0-9]+$`)

// sweep removes what uploads cut off by a crash or a kill left in dir:
// temporary files, and checksum files whose image never arrived. It runs
// before the service listens, so no upload of this daemon owns them.
func (s *Server) sweep(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	// An upload stopped between its steps: if the image already holds the
	// staged digest's data, finish by renaming the digest; otherwise the
	// old image (or none) stands, and the staged digest goes.
	for _, e := range ents {
		img, ok := strings.CutSuffix(e.Name(), ".sha256.new")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		staged := filepath.Join(dir, e.Name())
		want, err := os.ReadFile(staged)
		got, herr := hashFile(filepath.Join(dir, img))
		if err == nil && herr == nil && strings.TrimSpace(string(want)) == got {
			if renameSync(staged, filepath.Join(dir, img+".sha256")) == nil {
				s.log.Logf(plog.Warning, "finished storing %s, cut off after the image took its name", img)
			}
			continue
		}
		if os.Remove(staged) == nil {
			s.log.Logf(plog.Warning, "dropped the staged digest of %s: its upload was cut off before the image took its name", img)
		}
	}
	ents, _ = os.ReadDir(dir)
	for _, e := range ents {
		name := e.Name()
		orphan := false
		if img, ok := strings.CutSuffix(name, ".sha256"); ok && e.Type().IsRegular() {
			_, err := os.Lstat(filepath.Join(dir, img))
			orphan = errors.Is(err, fs.ErrNotExist)
		}
		if (e.Type().IsRegular() && tempName.MatchString(name)) || orphan {
			if os.Remove(filepath.Join(dir, name)) == nil {
				s.log.Logf(plog.Warning, "removed %q, left by an upload that did not finish", name)
			}
		}
	}
}

// Start creates the image directory, resets the statistics and serves.
func (s *Server) Start() error {
	if err := os.MkdirAll(s.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("create ImageDirectory: %w", err)
	}
	s.dirNow = s.cfg.Dir
	s.sweep(s.cfg.Dir)
	if s.cfg.TokenKey != "" {
		key, err := loadTokenKey(s.cfg.TokenKey)
		if err != nil {
			return err
		}
		s.key = key
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Addr, fmt.Sprint(s.cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen for imaging requests: %w", err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS.ServerConfig())
	} else {
		s.log.Logf(plog.Critical, "no zone certificate here: serving plain HTTP, and refusing every image request")
	}
	if s.cfg.Library != "" {
		s.log.Logf(plog.Critical, "LIBRARY_NAME %s ignored: zonekit's imaging is built in", s.cfg.Library)
	}
	s.stats = Stats{Started: time.Now().UTC().Truncate(time.Second), Pid: os.Getpid()}
	if err := s.saveStats(); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work/{mac}", s.handleWork)
	mux.HandleFunc("GET /images", s.handleList)
	mux.HandleFunc("GET /images/{name}", s.handleGet)
	mux.HandleFunc("PUT /images/{name}", s.handlePut)
	mux.HandleFunc("POST /tasks/report", s.handleReport)
	mux.HandleFunc("GET /tasks/session", s.handleSession)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Stats()) })
	var h http.Handler = mux
	if s.Observe != nil {
		h = s.Observe(mux)
	}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.ln = ln
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

func (s *Server) dir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirNow
}

// Reload applies a new image directory to new requests; transfers under
// way finish where they started. A new address or port needs a restart.
func (s *Server) Reload(cfg Config) error {
	if cfg.Addr != s.cfg.Addr || cfg.Port != s.cfg.Port {
		return fmt.Errorf("IPAddress or ImagingPort changed: restart the service to move it")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("create ImageDirectory: %w", err)
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = DefaultMaxImageBytes
	}
	s.mu.Lock()
	s.dirNow, s.maxNow = cfg.Dir, cfg.MaxImageBytes
	s.mu.Unlock()
	if cfg.Library != "" {
		s.log.Logf(plog.Critical, "LIBRARY_NAME %s ignored: zonekit's imaging is built in", cfg.Library)
	}
	return nil
}

// Stop ends the service; transfers under way get 30 seconds.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	<-s.done
	s.stopSessions()
	os.Remove(s.cfg.StatsFile)
}

// Stats returns the statistics.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	err := s.saveStats()
	s.mu.Unlock()
	if err != nil {
		s.log.Logf(plog.Warning, "save statistics: %v", err)
	}
}

// saveStats writes the statistics where 'pbserv status' reads them.
func (s *Server) saveStats() error {
	if s.cfg.StatsFile == "" {
		return nil
	}
	data, _ := json.Marshal(s.stats)
	return atomicfile.WriteFile(s.cfg.StatsFile, data, 0o644)
}

// ReadStats reads the statistics file of a running service.
func ReadStats(path string) (Stats, error) {
	var st Stats
	data, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fail answers an error and logs the request's outcome.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, typ string, code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	http.Error(w, msg, code)
	s.log.Logf(plog.Warning, "%s from %s: failed: %s", typ, r.RemoteAddr, msg)
}

func (s *Server) handleWork(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.PXERequests++ })
	mac, err := policy.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		s.fail(w, r, "work request", http.StatusBadRequest, "%v", err)
		return
	}
	work := policy.Work{Action: "none"}
	if s.zone != nil {
		// Assignments are the zone's business: only its servers (the policy
		// service presents this server's certificate) and administrators
		// may read them.
		if _, ok := s.authorize(w, r, "work request for "+mac, op{}); !ok {
			return
		}
		work, err = s.zone.Work(r.Context(), mac)
		if err != nil {
			s.fail(w, r, "work request for "+mac, http.StatusBadGateway, "%v", err)
			return
		}
		isTask := work.Action == "image" || work.Action == "take-image"
		if isTask && work.Status != "" && work.Status != "queued" {
			// A task runs once: started or finished, it is not served again.
			s.log.Logf(plog.Request, "work request for %s: its %s task of %s is %s; not served again", mac, work.Action, work.Image, work.Status)
			work = policy.Work{Action: "none", Device: work.Device}
		}
		if isTask && work.Action != "none" && s.key != nil {
			work.Token = s.key.Mint(Claims{MAC: mac, Action: work.Action, Image: work.Image, Expires: s.now().Add(TokenTTL).Unix()})
		}
	}
	writeJSON(w, work)
	s.log.Logf(plog.Transaction, "work request for %s from %s: %s %s%s", mac, r.RemoteAddr, work.Action, work.Image, work.Menu)
}

func (s *Server) imagePath(name string) (string, bool) {
	if !policy.ValidName(name) || strings.HasSuffix(name, ".sha256") || strings.HasSuffix(name, ".sha256.new") {
		return "", false
	}
	return filepath.Join(s.dir(), name), true
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.PXERequests++ })
	name := r.PathValue("name")
	typ := "upload of " + name
	path, ok := s.imagePath(name)
	if !ok {
		s.fail(w, r, typ, http.StatusBadRequest, "bad image name %q", name)
		return
	}
	who, ok := s.authorize(w, r, typ, op{put: true, image: name})
	if !ok {
		return
	}
	typ += " by " + who
	// The SHA-256 comes before the body, or (a one-pass capture that
	// learns it only at the end) as a trailer after it.
	want := strings.ToLower(r.Header.Get(DigestHeader))
	_, inTrailer := r.Trailer[http.CanonicalHeaderKey(DigestHeader)]
	if len(want) != 64 && !inTrailer {
		s.fail(w, r, typ, http.StatusBadRequest, "the %s header or trailer (the image's SHA-256) is required", DigestHeader)
		return
	}
	if err := s.checkSize(r.ContentLength); err != nil {
		s.fail(w, r, typ, http.StatusRequestEntityTooLarge, "%v", err)
		return
	}
	// One upload per name at a time: of two concurrent uploads of a new
	// name, the second is told the image exists, as it will.
	s.mu.Lock()
	busy := s.uploading[path]
	if !busy {
		s.uploading[path] = true
	}
	s.mu.Unlock()
	if busy {
		s.fail(w, r, typ, http.StatusConflict, "image %s already exists (another upload of it is under way)", name)
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.uploading, path)
		s.mu.Unlock()
	}()
	if _, err := os.Lstat(path); err == nil && r.URL.Query().Get("replace") != "1" {
		s.fail(w, r, typ, http.StatusConflict, "image %s already exists", name)
		return
	}
	start := time.Now()
	f, err := atomicfile.New(path, 0o640)
	if err != nil {
		s.fail(w, r, typ, http.StatusInternalServerError, "%v", err)
		return
	}
	defer f.Abort()
	h := sha256.New()
	limit := s.maxImage()
	n, err := io.Copy(io.MultiWriter(f, h), http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.fail(w, r, typ, http.StatusRequestEntityTooLarge, "the image is larger than the limit of %d bytes", limit)
		return
	}
	if err != nil {
		s.fail(w, r, typ, http.StatusBadRequest, "receive: %v", err)
		return
	}
	if len(want) != 64 {
		want = strings.ToLower(r.Trailer.Get(DigestHeader))
		if len(want) != 64 {
			s.fail(w, r, typ, http.StatusBadRequest, "no %s trailer after the body", DigestHeader)
			return
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		s.fail(w, r, typ, http.StatusUnprocessableEntity, "integrity check failed: received data has SHA-256 %s, the client announced %s", got, want)
		return
	}
	// The image and its digest change together: the new digest is staged
	// (NAME.sha256.new), the image takes its name, the digest takes its
	// name. A crash between the steps is finished or undone at the next
	// start (recover), so a name never pairs one upload's data with
	// another's digest.
	if err := atomicfile.WriteFile(path+".sha256.new", []byte(want+"\n"), 0o640); err != nil {
		s.fail(w, r, typ, http.StatusInternalServerError, "%v", err)
		return
	}
	if s.crashAt("digest-staged") {
		return
	}
	if err := f.Commit(); err != nil {
		os.Remove(path + ".sha256.new")
		s.fail(w, r, typ, http.StatusInternalServerError, "%v", err)
		return
	}
	if s.crashAt("image-renamed") {
		return
	}
	if err := renameSync(path+".sha256.new", path+".sha256"); err != nil {
		s.fail(w, r, typ, http.StatusInternalServerError, "%v", err)
		return
	}
	s.count(func(st *Stats) { st.ImagesReceived++ })
	w.WriteHeader(http.StatusCreated)
	s.log.Logf(plog.Transaction, "%s from %s: stored, %d bytes in %s, SHA-256 %s", typ, r.RemoteAddr, n, time.Since(start).Round(time.Millisecond), want)
}

func (s *Server) digest(path string) (string, error) {
	d, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(d)), nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.PXERequests++ })
	name := r.PathValue("name")
	typ := "download of " + name
	path, ok := s.imagePath(name)
	if !ok {
		s.fail(w, r, typ, http.StatusBadRequest, "bad image name %q", name)
		return
	}
	who, ok := s.authorize(w, r, typ, op{get: true, image: name})
	if !ok {
		return
	}
	typ += " by " + who
	f, fi, err := regfile.OpenPath(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, regfile.ErrNotRegular) {
			s.fail(w, r, typ, http.StatusNotFound, "no image %s", name)
			return
		}
		s.fail(w, r, typ, http.StatusInternalServerError, "%v", err)
		return
	}
	defer f.Close()
	sum, err := s.digest(path)
	if err != nil {
		s.fail(w, r, typ, http.StatusInternalServerError, "image %s has no checksum: %v", name, err)
		return
	}
	start := time.Now()
	w.Header().Set(DigestHeader, sum)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(fi.Size()))
	// The first time this daemon serves an image file it hashes what it
	// sends and holds the last bytes back until the data has proved to be
	// the stored image: a file damaged at rest never arrives complete.
	// Later downloads of the same unchanged file skip the hash (it cost a
	// third of the throughput): every zonekit client checks the SHA-256 of
	// what it received before it uses it.
	key := fileKey(fi)
	s.mu.Lock()
	verified := s.verified[path] == key
	s.mu.Unlock()
	var n int64
	if verified {
		n, err = sendHashed(w, f, io.Discard, fi.Size())
	} else {
		h := sha256.New()
		tail := min(fi.Size(), 64<<10)
		n, err = sendHashed(w, f, h, fi.Size()-tail)
		if err == nil {
			last := make([]byte, tail)
			if _, err = io.ReadFull(f, last); err == nil {
				h.Write(last)
				if got := hex.EncodeToString(h.Sum(nil)); got != sum {
					s.log.Logf(plog.Warning, "%s to %s: failed: the stored image is damaged (SHA-256 %s, recorded %s); transfer broken off", typ, r.RemoteAddr, got, sum)
					panic(http.ErrAbortHandler)
				}
				s.mu.Lock()
				s.verified[path] = key
				s.mu.Unlock()
				var m int
				m, err = w.Write(last)
				n += int64(m)
			}
		}
	}
	if err != nil || n != fi.Size() {
		s.log.Logf(plog.Warning, "%s to %s: failed after %d of %d bytes: %v", typ, r.RemoteAddr, n, fi.Size(), err)
		return
	}
	s.count(func(st *Stats) { st.ImagesSent++ })
	s.log.Logf(plog.Transaction, "%s to %s: sent, %d bytes in %s", typ, r.RemoteAddr, n, time.Since(start).Round(time.Millisecond))
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "image list", op{get: true}); !ok {
		return
	}
	imgs, err := List(s.dir())
	if err != nil {
		s.fail(w, r, "image list", http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(w, imgs)
	s.log.Logf(plog.Request, "image list for %s: %d images", r.RemoteAddr, len(imgs))
}

// List returns the stored images (those with a checksum), by name.
func List(dir string) ([]Image, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	imgs := []Image{}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".sha256") {
			continue
		}
		sum, err := os.ReadFile(filepath.Join(dir, name+".sha256"))
		if err != nil {
			continue // not complete
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		img := Image{Name: name, Size: fi.Size(), SHA256: strings.TrimSpace(string(sum)), Modified: fi.ModTime().UTC()}
		if f, err := os.Open(filepath.Join(dir, name)); err == nil {
			if m, err := imgformat.ReadHeader(io.LimitReader(f, 2<<20)); err == nil {
				img.DiskBytes, img.Partitions = m.DiskBytes, m.Partitions
			}
			f.Close()
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	return imgs, nil
}

// taskClaims authenticates a request from an imaging environment by the
// task token it bears, and names the request typ for the log after the
// machine the token is for. Without a zone, or with a bad token, it
// answers the request itself and returns false.
func (s *Server) taskClaims(w http.ResponseWriter, r *http.Request, typ string) (Claims, string, bool) {
	if s.zone == nil || s.key == nil {
		s.fail(w, r, typ, http.StatusServiceUnavailable, "no zone here to keep imaging tasks in")
		return Claims{}, typ, false
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c, err := s.key.Verify(tok, s.now())
	if err != nil {
		s.refuse(w, r, typ, http.StatusUnauthorized, "%v", err)
		return Claims{}, typ, false
	}
	return c, typ + " of " + c.MAC, true
}

// handleReport takes an imaging task's progress from the imaging
// environment, authenticated by its task token, and records it in the
// zone. The token must be for the machine's current task.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	c, typ, ok := s.taskClaims(w, r, "task report")
	if !ok {
		return
	}
	var rep Report
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&rep); err != nil {
		s.fail(w, r, typ, http.StatusBadRequest, "report: %v", err)
		return
	}
	cur, err := s.zone.Work(r.Context(), c.MAC)
	if err != nil {
		s.fail(w, r, typ, http.StatusBadGateway, "%v", err)
		return
	}
	if cur.Action != c.Action || cur.Image != c.Image {
		s.fail(w, r, typ, http.StatusConflict, "the token is for an earlier task of %s (%s %s)", c.MAC, c.Action, c.Image)
		return
	}
	if err := s.zone.Report(r.Context(), c.MAC, rep); err != nil {
		code := http.StatusBadGateway
		if errkind.Of(err) == errkind.Exists {
			code = http.StatusConflict
		}
		s.fail(w, r, typ, code, "%v", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
	msg := rep.Status
	if rep.Bytes > 0 {
		msg += fmt.Sprintf(", %d bytes", rep.Bytes)
	}
	if rep.Error != "" {
		msg += ": " + rep.Error
	}
	s.log.Logf(plog.Transaction, "%s (%s %s) from %s: %s", typ, c.Action, c.Image, r.RemoteAddr, msg)
}

// sendHashed copies n bytes from f to w, hashing them, in 1 MiB reads:
// large writes let TLS fill whole records and batch them into few system
// calls (a 32 KiB copy cost a third of the throughput).
func sendHashed(w io.Writer, f io.Reader, h io.Writer, n int64) (int64, error) {
	buf := make([]byte, 1<<20)
	var done int64
	for done < n {
		m, err := io.ReadFull(f, buf[:min(int64(len(buf)), n-done)])
		if m > 0 {
			if h != io.Discard {
				h.Write(buf[:m])
			}
			k, werr := w.Write(buf[:m])
			done += int64(k)
			if werr != nil {
				return done, werr
			}
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// fileKey identifies one version of a file: a replaced or rewritten
// image has another inode, size or modification time.
func fileKey(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d/%d/%d", ino, fi.Size(), fi.ModTime().UnixNano())
}

func (s *Server) crashAt(step string) bool { return s.hook("imaging-upload-"+step) != nil }

// renameSync renames and makes the rename durable.
func renameSync(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(to)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// hashFile is the SHA-256 of a file, in hex.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
