package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"runtime"
	"sync"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/password"
	"zonekit/internal/server/httpapi"
	"zonekit/internal/zone"
)

// TokenPrefix marks zonekit stored credentials so secret scanners can find them.
const TokenPrefix = "zk_"

// adminAuth checks administrator credentials: stored-credential tokens,
// or name and password. Argon2id is deliberately slow, so it keeps a short
// cache of recently verified passwords (keyed by an HMAC under a per-process
// secret, never the password itself), bounds how many hashes run at once,
// and slows down callers who keep failing.
type adminAuth struct {
	db  *zone.DB
	now func() time.Time

	secret []byte
	sem    chan struct{}

	mu       sync.Mutex
	verified map[string]time.Time // HMAC(name, password, stored hash) -> expiry
	failures map[string]*failure  // "user:NAME" or "ip:ADDR"
}

type failure struct {
	n    int
	last time.Time
}

const (
	verifiedTTL   = 10 * time.Minute
	maxCached     = 4096
	failureWindow = 15 * time.Minute
	freeFailures  = 3
	maxDelay      = 5 * time.Second
)

func newAdminAuth(db *zone.DB, now func() time.Time) *adminAuth {
	secret := make([]byte, 32)
	rand.Read(secret)
	return &adminAuth{
		db: db, now: now, secret: secret,
		sem:      make(chan struct{}, runtime.GOMAXPROCS(0)),
		verified: map[string]time.Time{},
		failures: map[string]*failure{},
	}
}

var errAuthFailed = errkind.New(errkind.Auth, "authentication failed: wrong administrator name or password")

// authenticate returns the administrator the request speaks for.
func (a *adminAuth) authenticate(r *http.Request) (string, error) {
	if tok, ok := bearer(r); ok {
		t, err := a.db.Token(HashToken(tok))
		if err != nil {
			return "", errkind.New(errkind.Auth, "authentication failed: the stored credential is no longer valid (run zman admin-store-credential again)")
		}
		return t.Admin, nil
	}
	name, pw, ok := r.BasicAuth()
	if !ok {
		return "", errkind.New(errkind.Auth, "authentication required")
	}
	return a.login(r, name, pw)
}

// login checks an administrator's name and password as every password
// sign-in does (the API's basic authentication and the web console's
// form): slowed down after repeated failures of the name or address.
func (a *adminAuth) login(r *http.Request, name, pw string) (string, error) {
	ip := clientIP(r)
	a.delay(r, name, ip)
	if a.checkPassword(name, pw) {
		a.clearFailures(name, ip)
		return name, nil
	}
	a.recordFailure(name, ip)
	return "", errAuthFailed
}

func (a *adminAuth) checkPassword(name, pw string) bool {
	admin, err := a.db.Admin(name)
	if err != nil {
		// Spend the same effort as a real check so timing does not reveal
		// which administrator names exist.
		a.hash(func() { password.Verify(pw, dummyHash) })
		return false
	}
	key := a.cacheKey(name, pw, admin.PasswordHash)
	now := a.now()
	a.mu.Lock()
	exp, hit := a.verified[key]
	a.mu.Unlock()
	if hit && now.Before(exp) {
		return true
	}
	var ok bool
	a.hash(func() { ok, _ = password.Verify(pw, admin.PasswordHash) })
	if ok {
		a.mu.Lock()
		if len(a.verified) >= maxCached {
			clear(a.verified)
		}
		a.verified[key] = now.Add(verifiedTTL)
		a.mu.Unlock()
	}
	return ok
}

// hash runs fn with a slot of the hashing semaphore, so a flood of logins
// costs CPU time, not gigabytes of Argon2 memory at once.
func (a *adminAuth) hash(fn func()) {
	a.sem <- struct{}{}
	defer func() { <-a.sem }()
	fn()
}

func (a *adminAuth) cacheKey(name, pw, stored string) string {
	m := hmac.New(sha256.New, a.secret)
	for _, s := range []string{name, pw, stored} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return string(m.Sum(nil))
}

// delay sleeps longer the more recent failures this name or address has.
func (a *adminAuth) delay(r *http.Request, name, ip string) {
	a.mu.Lock()
	n := 0
	now := a.now()
	for _, k := range []string{"user:" + name, "ip:" + ip} {
		if f := a.failures[k]; f != nil && now.Sub(f.last) < failureWindow && f.n > n {
			n = f.n
		}
	}
	a.mu.Unlock()
	if n < freeFailures {
		return
	}
	d := 250 * time.Millisecond << min(n-freeFailures, 5)
	d = min(d, maxDelay)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func (a *adminAuth) recordFailure(name, ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if len(a.failures) > 10000 {
		for k, f := range a.failures {
			if now.Sub(f.last) > failureWindow {
				delete(a.failures, k)
			}
		}
	}
	for _, k := range []string{"user:" + name, "ip:" + ip} {
		f := a.failures[k]
		if f == nil || now.Sub(f.last) > failureWindow {
			f = &failure{}
			a.failures[k] = f
		}
		f.n++
		f.last = now
	}
}

func (a *adminAuth) clearFailures(name, ip string) {
	a.mu.Lock()
	delete(a.failures, "user:"+name)
	delete(a.failures, "ip:"+ip)
	a.mu.Unlock()
}

// NewToken makes a random stored-credential token.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is how tokens are kept in the store: a fast hash suffices
// because tokens carry 256 random bits.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func clientIP(r *http.Request) string { return httpapi.ClientIP(r) }

// dummyHash has the default parameters; it is verified against when the
// administrator does not exist.
const dummyHash = "$argon2id$v=19$m=47104,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$2xbXqzYHgmB7hIsvrrqP9IU0kPqUw9RvWzN+zxfGnV0"

// serverOrAdmin admits the zone's servers (pbserv status lists tasks with
// its server's certificate) and administrators.
func (s *Server) serverOrAdmin(h func(http.ResponseWriter, *http.Request, string) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.isZoneServer(r) {
			return h(w, r, "")
		}
		actor, err := s.adminOf(r)
		if err != nil {
			return err
		}
		setActor(r, actor)
		return h(w, r, actor)
	}
}

// isZoneServer reports whether the client presented the certificate of
// one of the zone's servers (verified against the zone CA by the TLS
// layer; device certificates carry a random ID, never a server's name).
func (s *Server) isZoneServer(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if s.devCA.Issued(r.TLS.VerifiedChains[0]) {
		return false
	}
	servers, err := s.db.Servers()
	if err != nil {
		return false
	}
	for _, sv := range servers {
		if sv.Name == leaf.Subject.CommonName {
			setActor(r, "server:"+sv.Name)
			return true
		}
	}
	return false
}
