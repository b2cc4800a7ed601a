package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// Session lifetimes: a session ends after IdleTimeout without a request
// or MaxAge after sign-in, whichever comes first.
const (
	IdleTimeout = 30 * time.Minute
	MaxAge      = 8 * time.Hour
	maxSessions = 10000
)

// session is one signed-in administrator. The cookie carries a random
// token; the store keeps only its SHA-256, so a memory dump or a log of
// the map names no usable cookie.
type session struct {
	admin   string
	csrf    string // the synchronizer token every form of this session carries
	created time.Time
	seen    time.Time
}

// sessions is the server-side session store. It lives in this server's
// memory: a restart signs everyone out, and each zone server has its own.
type sessions struct {
	now func() time.Time

	mu sync.Mutex
	m  map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create signs admin in and returns the cookie's token.
func (s *sessions) create(admin string) (string, *session) {
	tok := randomToken()
	now := s.now()
	ses := &session{admin: admin, csrf: randomToken(), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.purgeLocked(now)
	}
	if len(s.m) >= maxSessions {
		// Still full of live sessions: drop the least recently used so a
		// flood of sign-ins costs old sessions, never unbounded memory.
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.seen.Before(at) {
				oldest, at = k, v.seen
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(tok))] = ses
	return tok, ses
}

func (s *sessions) expired(ses *session, now time.Time) bool {
	return now.Sub(ses.seen) >= IdleTimeout || now.Sub(ses.created) >= MaxAge
}

func (s *sessions) purgeLocked(now time.Time) {
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
}

// get finds the live session of a cookie's token and marks it used; an
// expired one is removed.
func (s *sessions) get(tok string) (*session, bool) {
	if tok == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(tok))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.m[k]
	if !ok {
		return nil, false
	}
	if s.expired(ses, now) {
		delete(s.m, k)
		return nil, false
	}
	ses.seen = now
	return ses, true
}

func (s *sessions) remove(tok string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(tok)))
	s.mu.Unlock()
}

// sameToken compares tokens in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
