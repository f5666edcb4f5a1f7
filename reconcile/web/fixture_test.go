package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// fixture is a host with two policies, one that backs up (age-encrypted,
// its identity in the keys directory) and one whose destination fails,
// after one agent pass, and a console in front of it.
type fixture struct {
	dir, conf, state, logs, keys, data, dest string
	agent                                    *reconcile.Agent
	srv                                      *Server
	ts                                       *httptest.Server
	progress                                 *Progress
	original                                 []byte // data/www/index.html
}

func init() { bcryptCost = 4 } // fast hashes in tests

const (
	operatorPass = "operator-secret-1"
	viewerPass   = "viewer-secret-1"
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, conf: filepath.Join(dir, "conf"), state: filepath.Join(dir, "state"), logs: filepath.Join(dir, "log"),
		keys: filepath.Join(dir, "keys"), data: filepath.Join(dir, "data"), dest: filepath.Join(dir, "dest")}
	for _, d := range []string{f.conf, f.keys, filepath.Join(f.data, "www", "img"), f.dest} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.original = []byte("<h1>hello from aegis</h1>\n" + strings.Repeat("binary\x00\xff", 1000))
	mustWrite(t, filepath.Join(f.data, "www", "index.html"), f.original, 0o644)
	mustWrite(t, filepath.Join(f.data, "www", "img", "logo.svg"), []byte("<svg/>"), 0o644)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(f.keys, "site.key"), []byte("# public key: "+id.Recipient().String()+"\n"+id.String()+"\n"), 0o600)
	mustWrite(t, filepath.Join(f.conf, "policies.yaml"), []byte(fmt.Sprintf(manifests, f.dest, f.data, id.Recipient().String())), 0o600)
	f.progress = NewProgress()
	a, err := reconcile.New(reconcile.Options{ConfigDir: f.conf, StateDir: f.state, LogDir: f.logs, Host: "web1",
		Logger: slog.New(slog.DiscardHandler), RetryAfter: time.Hour, Observe: reconcile.ObserveOptions{Progress: f.progress}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	f.agent = a
	if _, err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users")
	if err := AddUser(users, "alice", RoleOperator, []byte(operatorPass)); err != nil {
		t.Fatal(err)
	}
	if err := AddUser(users, "bob", RoleViewer, []byte(viewerPass)); err != nil {
		t.Fatal(err)
	}
	audit, err := observe.OpenAudit(f.logs, observe.LogLimits{}, "web1", "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	f.srv, err = New(context.Background(), Options{ConfigDir: f.conf, StateDir: f.state, LogDir: f.logs, KeysDir: f.keys, Host: "web1",
		UsersFile: users, Agent: a, Progress: f.progress, Audit: audit, InsecureCookies: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

// manifests: %s dest, %s data, %s age recipient.
const manifests = `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: %s}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: broken}
spec:
  local: {path: /dev/null/aegis}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: site}
spec:
  schedule: "@hourly"
  sources:
    - name: www
      files: {paths: [%s]}
  destinations: [disk]
  encryption:
    age: {recipients: [%s]}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: zz-failing}
spec:
  schedule: "@hourly"
  sources:
    - name: etc
      files: {paths: [/etc/hostname]}
  destinations: [broken]
  encryption: {none: true}
`

func mustWrite(t testing.TB, name string, body []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, body, mode); err != nil {
		t.Fatal(err)
	}
}

// client is a browser-like HTTP client with its own cookies that does not
// follow redirects.
func (f *fixture) client(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login signs in and returns the client.
func (f *fixture) login(t testing.TB, user, pass string) *http.Client {
	t.Helper()
	c := f.client(t)
	res, err := c.PostForm(f.ts.URL+"/login", url.Values{"user": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: status %d, want 303", user, res.StatusCode)
	}
	return c
}

// get fetches a page and returns its status and body.
func get(t testing.TB, c *http.Client, u string) (int, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf finds the CSRF token of a page.
func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

// snapshotURL is the page of the site policy's snapshot.
func (f *fixture) snapshotURL(t testing.TB) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.dest, "web1", "site", "www", "*"))
	if len(m) != 1 {
		t.Fatalf("want one snapshot of site, found %v", m)
	}
	return "/snapshots/disk/web1/site/www/" + filepath.Base(m[0])
}
