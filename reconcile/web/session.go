package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sessionCookie is the name of the session cookie.
const sessionCookie = "aegis_session"

// session is one signed-in user.
type session struct {
	user    string
	role    string
	csrf    string
	expires time.Time
	// identities were uploaded by the user, held in memory only.
	identities []*memIdentity
}

// identityFiles names the session's uploaded identities for the key ring.
func (ss *session) identityFiles(s *sessions) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range ss.identities {
		out = append(out, m.path())
	}
	return out
}

// addIdentity keeps an uploaded identity with the session.
func (s *sessions) addIdentity(ss *session, m *memIdentity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.identities = append(ss.identities, m)
}

// end forgets a session and closes its identities.
func (ss *session) end() {
	for _, m := range ss.identities {
		m.close()
	}
	ss.identities = nil
}

// sessions are held in memory only: a restart signs everyone out.
type sessions struct {
	mu     sync.Mutex
	byID   map[string]*session
	ttl    time.Duration
	now    func() time.Time
	random func([]byte) (int, error)
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, ttl: ttl, now: now, random: rand.Read}
}

func (s *sessions) token() string {
	b := make([]byte, 32)
	if _, err := s.random(b); err != nil {
		panic("web: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns its ID.
func (s *sessions) create(user, role string) (string, *session) {
	id := s.token()
	ss := &session{user: user, role: role, csrf: s.token(), expires: s.now().Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.byID { // expired sessions go when a new one comes
		if now.After(v.expires) {
			v.end()
			delete(s.byID, k)
		}
	}
	s.byID[id] = ss
	return id, ss
}

// get returns the live session of id.
func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok || s.now().After(ss.expires) {
		if ok {
			ss.end()
		}
		delete(s.byID, id)
		return nil, false
	}
	return ss, true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.byID[id]; ok {
		ss.end()
	}
	delete(s.byID, id)
}

// validCSRF compares a submitted token with the session's in constant time.
func (ss *session) validCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ss.csrf)) == 1
}

// loginLimiter bounds failed sign-ins per client address and per user
// name: a burst of 5, then one every 10 seconds.
type loginLimiter struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*rate.Limiter
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, by: map[string]*rate.Limiter{}}
}

// maxLimiters bounds the memory of the limiter: past it, the table is reset
// (an attacker rotating addresses gains at most a fresh burst each).
const maxLimiters = 10000

// allow reports whether another attempt is allowed for every key, and
// spends one attempt of each.
func (l *loginLimiter) allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.by) > maxLimiters {
		l.by = map[string]*rate.Limiter{}
	}
	ok := true
	for _, k := range keys {
		lim, found := l.by[k]
		if !found {
			lim = rate.NewLimiter(rate.Every(10*time.Second), 5)
			l.by[k] = lim
		}
		if !lim.AllowN(l.now(), 1) {
			ok = false
		}
	}
	return ok
}

// ProxyAuth trusts a reverse proxy's header naming the signed-in user. It is
// off unless Header is set, and honoured only for requests from Trusted.
type ProxyAuth struct {
	// Header carries the user name, such as X-Forwarded-User.
	Header string
	// Trusted are the proxy's addresses; a request from elsewhere that
	// carries Header is refused.
	Trusted []netip.Prefix
}

// user returns the user the proxy names, when the request comes from a
// trusted proxy.
func (p ProxyAuth) user(r *http.Request) (string, bool) {
	if p.Header == "" {
		return "", false
	}
	name := strings.TrimSpace(r.Header.Get(p.Header))
	if name == "" {
		return "", false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "", false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", false
	}
	for _, pre := range p.Trusted {
		if pre.Contains(ip.Unmap()) {
			return name, true
		}
	}
	return "", false
}

// clientIP is the address a request came from, for rate limiting.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
