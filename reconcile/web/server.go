package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/retention"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

//go:embed assets
var assets embed.FS

// Agent is what the console's actions drive; *reconcile.Agent is one.
type Agent interface {
	RunNow(ctx context.Context, policy, source string, wait bool) (*v1.RunResult, *reconcile.Config, error)
	Prune(ctx context.Context, req reconcile.PruneRequest) ([]*retention.PruneReport, *reconcile.Config, error)
}

var _ Agent = (*reconcile.Agent)(nil)

// Options configure a console.
type Options struct {
	ConfigDir string
	StateDir  string
	StatusDir string
	LogDir    string
	KeysDir   string
	Host      string
	// UsersFile holds the users (aegis-agent web user add).
	UsersFile string
	// Proxy, when its Header is set, trusts a reverse proxy's user header.
	Proxy ProxyAuth
	// Agent runs the actions; nil makes a read-only console (web --fleet).
	Agent Agent
	// Fleet lists the destinations (by name) whose hosts the fleet view
	// shows; empty means every destination of the config.
	Fleet []string
	// FleetOnly serves the fleet view alone: no policies of this host.
	FleetOnly bool
	// Progress, when set, is what the agent reports of its runs.
	Progress *Progress
	// Audit receives the console's actions; nil records nothing.
	Audit *observe.AuditLog
	// InsecureCookies drops the Secure attribute of the session cookie, for
	// a browser that refuses Secure cookies over plain HTTP on loopback.
	InsecureCookies bool
	Now             func() time.Time
	Logger          *slog.Logger
}

// Server is the console.
type Server struct {
	opts     Options
	log      *slog.Logger
	users    *Users
	sessions *sessions
	limiter  *loginLimiter
	pages    map[string]*template.Template
	mux      *http.ServeMux
	// bg is the context of the actions started from the console (a run
	// outlives the request that asked for it).
	bg context.Context

	mu      sync.Mutex
	running map[string]bool
	cache   *browseCache
	parsed  *parsedHost // the last read of the config, state and statuses
	// proxyKey keys the CSRF tokens of proxy-authenticated users.
	proxyKey []byte
}

// New returns a console. It loads the users file: a console without users
// and without proxy authentication refuses to start.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	users, err := LoadUsers(opts.UsersFile)
	if err != nil {
		return nil, err
	}
	if users.Len() == 0 && opts.Proxy.Header == "" {
		return nil, fmt.Errorf("the console has no users: add one with `aegis-agent web user add NAME --role operator` (users file %s)", opts.UsersFile)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "web"), users: users,
		sessions: newSessions(12*time.Hour, opts.Now), limiter: newLoginLimiter(opts.Now),
		pages: pages, bg: context.WithoutCancel(ctx), running: map[string]bool{}, cache: newBrowseCache(8)}
	s.routes()
	return s, nil
}

// pageFuncs are the template helpers.
var pageFuncs = template.FuncMap{
	"bytes": observe.FormatBytes,
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return "—"
	},
	"lower": strings.ToLower,
	"join":  strings.Join,
	"base":  path.Base,
	"ref":   refOfSnapshot,
	"list":  func(s ...string) []string { return s },
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(assets, "assets/pages/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		t, err := template.New("layout.html").Funcs(pageFuncs).ParseFS(assets, "assets/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", n, err)
		}
		out[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return out, nil
}

// Handler is the console's HTTP handler.
func (s *Server) Handler() http.Handler { return securityHeaders(s.mux) }

// securityHeaders sets the headers of every response: a strict CSP (no
// inline script or style, nothing from elsewhere), no framing, no sniffing.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin") // not no-referrer: Chromium then sends "Origin: null" with forms
		hd.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Title   string
	Host    string
	User    string
	Role    string
	CSRF    string
	Nav     string
	Fleet   bool
	Flash   string
	Operate bool
	Data    any
}

// render writes a page; errors of the template are logged (the header may
// be out already).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	ss := sessionFrom(r)
	if ss != nil {
		p.User, p.Role, p.CSRF, p.Operate = ss.user, ss.role, ss.csrf, ss.role == RoleOperator && s.opts.Agent != nil
	}
	p.Host, p.Fleet = s.opts.Host, s.opts.FleetOnly
	if p.Flash == "" {
		p.Flash = r.URL.Query().Get("flash")
		if len(p.Flash) > 200 {
			p.Flash = p.Flash[:200]
		}
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", page{Title: http.StatusText(status), Data: redact(msg)})
}

// Serve listens on addr (TLS when certFile and keyFile are set) and
// serves until ctx ends. It applies CheckAddr first.
func (s *Server) Serve(ctx context.Context, addr, certFile, keyFile string) (net.Addr, error) {
	useTLS := certFile != "" || keyFile != ""
	if useTLS && (certFile == "" || keyFile == "") {
		return nil, errors.New("web TLS: set both --web-tls-cert and --web-tls-key")
	}
	if err := CheckAddr(addr, useTLS, s.users.Len() > 0 || s.opts.Proxy.Header != ""); err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("web TLS: %w", err)
		}
		srv.TLSConfig.Certificates = []tls.Certificate{cert}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web address %s: %w", addr, err)
	}
	if useTLS {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("web console stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}
