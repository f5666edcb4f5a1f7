package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// safeNext keeps the redirect after sign-in on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: safeNext(r.URL.Query().Get("next"))})
}

// login checks a user's password, rate limited per client and per name,
// and starts a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		s.fail(w, r, http.StatusForbidden, "refused: the request comes from another site")
		return
	}
	name := r.PostFormValue("user")
	next := safeNext(r.PostFormValue("next"))
	if !s.limiter.allow("ip:"+clientIP(r), "user:"+name) {
		w.Header().Set("Retry-After", "10")
		s.render(w, r, http.StatusTooManyRequests, "login", page{Title: "Sign in", Flash: "Too many attempts: wait a little and try again.", Data: next})
		return
	}
	u, ok := s.users.Authenticate(name, []byte(r.PostFormValue("password")))
	if !ok {
		s.log.Warn("sign-in refused", "user", name, "client", clientIP(r))
		s.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Flash: "Wrong user name or password.", Data: next})
		return
	}
	id, _ := s.sessions.create(u.Name, u.Role)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		Secure: !s.opts.InsecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: int(s.sessions.ttl.Seconds())})
	s.log.Info("signed in", "user", u.Name, "role", u.Role, "client", clientIP(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: !s.opts.InsecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// proxyCSRF is the CSRF token of a proxy-authenticated user: an HMAC of
// the name under a key made at start.
func (s *Server) proxyCSRF(user string) string {
	s.mu.Lock()
	if s.proxyKey == nil {
		s.proxyKey = []byte(s.sessions.token())
	}
	key := s.proxyKey
	s.mu.Unlock()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
