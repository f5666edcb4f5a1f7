package web

import (
	"context"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type ctxKey struct{}

// sessionFrom returns the request's signed-in session, or nil.
func sessionFrom(r *http.Request) *session {
	ss, _ := r.Context().Value(ctxKey{}).(*session)
	return ss
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets/static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.Handle("POST /logout", s.user(s.csrf(http.HandlerFunc(s.logout))))
	m.Handle("GET /fleet", s.user(http.HandlerFunc(s.fleetPage)))
	m.Handle("GET /api/fleet", s.user(http.HandlerFunc(s.fleetJSON)))
	if s.opts.FleetOnly {
		m.Handle("GET /{$}", http.RedirectHandler("/fleet", http.StatusSeeOther))
		s.mux = m
		return
	}
	m.Handle("GET /{$}", s.user(http.HandlerFunc(s.overview)))
	m.Handle("GET /api/overview", s.user(http.HandlerFunc(s.overviewJSON)))
	m.Handle("GET /policies/{name}", s.user(http.HandlerFunc(s.policyPage)))
	m.Handle("GET /policies/{name}/logs/{file}", s.user(http.HandlerFunc(s.runLog)))
	m.Handle("GET /snapshots", s.user(http.HandlerFunc(s.snapshotsPage)))
	snap := "/snapshots/{dest}/{host}/{policy}/{source}/{id}"
	m.Handle("GET "+snap, s.user(http.HandlerFunc(s.browse)))
	m.Handle("GET "+snap+"/file", s.user(http.HandlerFunc(s.downloadFile)))
	m.Handle("GET "+snap+"/tar", s.user(http.HandlerFunc(s.downloadTar)))
	m.Handle("GET "+snap+"/restore", s.operator(http.HandlerFunc(s.restorePreview)))
	m.Handle("POST "+snap+"/restore", s.operator(s.csrf(http.HandlerFunc(s.restore))))
	m.Handle("GET /actions/{action}/{policy}", s.operator(http.HandlerFunc(s.confirmAction)))
	m.Handle("POST /actions/{action}/{policy}", s.operator(s.csrf(http.HandlerFunc(s.action))))
	m.Handle("POST /identity", s.user(s.csrf(http.HandlerFunc(s.uploadIdentity))))
	m.Handle("GET /audit", s.user(http.HandlerFunc(s.auditPage)))
	m.Handle("GET /log", s.user(http.HandlerFunc(s.logPage)))
	s.mux = m
}

// user lets signed-in users through; others go to the sign-in page (or get
// 401 on the JSON endpoints).
func (s *Server) user(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss := s.authenticate(r)
		if ss == nil {
			if strings.HasPrefix(r.URL.Path, "/api/") || r.Method != http.MethodGet {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ss)))
	})
}

// authenticate finds the request's session: the proxy's header when proxy
// authentication is on and the request comes from the proxy, else the
// session cookie.
func (s *Server) authenticate(r *http.Request) *session {
	if name, ok := s.opts.Proxy.user(r); ok {
		u, known := s.users.Lookup(name)
		if !known {
			return nil
		}
		// A proxy-authenticated request has no cookie session: its CSRF
		// token is bound to the user name and rotates daily.
		return &session{user: u.Name, role: u.Role, csrf: s.proxyCSRF(u.Name), expires: s.opts.Now().Add(time.Hour)}
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	ss, ok := s.sessions.get(c.Value)
	if !ok {
		return nil
	}
	return ss
}

// operator lets operators through; a viewer is refused with 403.
func (s *Server) operator(h http.Handler) http.Handler {
	return s.user(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss := sessionFrom(r)
		if ss.role != RoleOperator || s.opts.Agent == nil {
			s.fail(w, r, http.StatusForbidden, "user "+ss.user+" is a viewer: viewers cannot change anything")
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// csrf checks the form's token against the session's, and that a browser
// that names the request's origin names this one.
func (s *Server) csrf(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss := sessionFrom(r)
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
			s.fail(w, r, http.StatusForbidden, "refused: the request comes from another site (origin "+o+")")
			return
		}
		if ss == nil || !ss.validCSRF(r.PostFormValue("csrf")) {
			s.fail(w, r, http.StatusForbidden, "refused: the form's CSRF token is missing or wrong; reload the page and try again")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether origin is the host the request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return u.Host == r.Host
}
