package web

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr      string
		tls, auth bool
		ok        bool
	}{
		{"127.0.0.1:9918", false, false, true},
		{"[::1]:9918", false, false, true},
		{"localhost:0", false, false, true},
		{"0.0.0.0:9918", false, true, false},
		{":9918", true, false, false},
		{"192.0.2.1:443", true, true, true},
		{"backup.example.com:443", false, true, false},
	} {
		err := CheckAddr(tc.addr, tc.tls, tc.auth)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%q, tls=%v, auth=%v) = %v, want ok=%v", tc.addr, tc.tls, tc.auth, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInsecureAddr) {
			t.Errorf("CheckAddr(%q): %v does not wrap ErrInsecureAddr", tc.addr, err)
		}
	}
}

func TestUsersFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "users")
	if err := AddUser(name, "carol", RoleOperator, []byte("short")); err == nil || !strings.Contains(err.Error(), "at least 8") {
		t.Errorf("short password: got %v", err)
	}
	if err := AddUser(name, "carol", "admin", []byte("long enough")); err == nil || err.Error() != `role "admin": want viewer or operator` {
		t.Errorf("bad role: got %v", err)
	}
	if err := AddUser(name, "carol", RoleViewer, []byte("long enough")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode: %v %v, want 0600", fi.Mode(), err)
	}
	body, _ := os.ReadFile(name)
	if strings.Contains(string(body), "long enough") {
		t.Fatal("the users file holds the password in clear")
	}
	u, err := LoadUsers(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Authenticate("carol", []byte("long enough")); !ok {
		t.Error("right password refused")
	}
	if _, ok := u.Authenticate("carol", []byte("long enougH")); ok {
		t.Error("wrong password accepted")
	}
	if _, ok := u.Authenticate("dave", []byte("long enough")); ok {
		t.Error("unknown user accepted")
	}
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadUsers(name); err == nil || !strings.Contains(err.Error(), "must not be readable by group or others") {
		t.Errorf("mode 0644: got %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"upload to https://user:hunter2@example.com/x failed":                         "upload to https://REDACTED@example.com/x failed",
		"password=hunter2 user=bob":                                                   "password=REDACTED user=bob",
		`"token": "abc.def"`:                                                          `"token": "REDACTED"`,
		"key AGE-SECRET-KEY-1QQQ23ABC":                                                "key AGE-SECRET-KEY-REDACTED",
		"passwordFile: /etc/aegis/secrets/pg":                                         "passwordFile: /etc/aegis/secrets/pg",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----": "(private key redacted)",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignInRequired(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	res, err := c.Get(f.ts.URL + "/policies/site")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?next=%2Fpolicies%2Fsite" {
		t.Errorf("signed out: %d %q, want 303 to the sign-in page", res.StatusCode, res.Header.Get("Location"))
	}
	if code, _ := get(t, c, f.ts.URL+"/api/overview"); code != http.StatusUnauthorized {
		t.Errorf("signed out JSON: %d, want 401", code)
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
}

func TestSessionCookie(t *testing.T) {
	f := newFixture(t)
	f.srv.opts.InsecureCookies = false
	res, err := f.client(t).PostForm(f.ts.URL+"/login", url.Values{"user": {"alice"}, "password": {operatorPass}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cookie := res.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	var codes []int
	for range 7 {
		res, err := c.PostForm(f.ts.URL+"/login", url.Values{"user": {"alice"}, "password": {"wrong-password"}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		codes = append(codes, res.StatusCode)
	}
	want := []int{401, 401, 401, 401, 401, 429, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("statuses of 7 wrong sign-ins: %v, want %v", codes, want)
		}
	}
	// Even the right password waits once the limit is reached.
	res, err := c.PostForm(f.ts.URL+"/login", url.Values{"user": {"alice"}, "password": {operatorPass}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password after the limit: %d, want 429", res.StatusCode)
	}
}

func TestOverviewFailingFirst(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "bob", viewerPass)
	code, body := get(t, c, f.ts.URL+"/")
	if code != 200 {
		t.Fatalf("overview: %d", code)
	}
	failing, site := strings.Index(body, `id="p-zz-failing"`), strings.Index(body, `id="p-site"`)
	if failing < 0 || site < 0 || failing > site {
		t.Fatalf("the failing policy is not listed first (failing at %d, site at %d)", failing, site)
	}
	if !strings.Contains(body, `<span class="state state-failing">Failing</span>`) || !strings.Contains(body, `<span class="state state-ready">Ready</span>`) {
		t.Error("states Failing and Ready not shown")
	}
}

func TestPolicyPageShowsNoSecret(t *testing.T) {
	f := newFixture(t)
	key, _ := os.ReadFile(filepath.Join(f.keys, "site.key"))
	secret := strings.TrimSpace(strings.Split(string(key), "\n")[1])
	c := f.login(t, "bob", viewerPass)
	for _, p := range []string{"/policies/site", "/snapshots", f.snapshotURL(t), "/audit", "/log", "/fleet", "/api/overview"} {
		code, body := get(t, c, f.ts.URL+p)
		if code != 200 {
			t.Errorf("%s: status %d", p, code)
		}
		for _, s := range []string{secret, operatorPass, "$2a$"} {
			if strings.Contains(body, s) {
				t.Errorf("%s shows a secret (%.12s…)", p, s)
			}
		}
	}
	_, body := get(t, c, f.ts.URL+"/policies/site")
	for _, want := range []string{"recipients:", "<h2 id=\"hist-h\">Run history</h2>", "backup-site-"} {
		if !strings.Contains(body, want) {
			t.Errorf("policy page lacks %q", want)
		}
	}
}

func TestDownloadFileAndTar(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "bob", viewerPass)
	inSnap := strings.TrimPrefix(filepath.Join(f.data, "www", "index.html"), "/")
	code, body := get(t, c, f.ts.URL+f.snapshotURL(t)+"/file?path="+url.QueryEscape(inSnap))
	if code != 200 || body != string(f.original) {
		t.Fatalf("download: status %d, %d bytes; want 200 and the original %d bytes", code, len(body), len(f.original))
	}
	code, body = get(t, c, f.ts.URL+f.snapshotURL(t)+"/tar?path="+url.QueryEscape(strings.TrimPrefix(filepath.Join(f.data, "www"), "/")))
	if code != 200 {
		t.Fatalf("tar: status %d", code)
	}
	tr := tar.NewReader(strings.NewReader(body))
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b)
	}
	if got[inSnap] != string(f.original) || got[strings.TrimSuffix(inSnap, "index.html")+"img/logo.svg"] != "<svg/>" {
		t.Errorf("tar holds %d entries, not the original files", len(got))
	}
	if code, _ := get(t, c, f.ts.URL+f.snapshotURL(t)+"/file?path=no/such/file"); code != http.StatusNotFound {
		t.Errorf("missing file: status %d, want 404", code)
	}
}

func TestViewerIsRefused(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "bob", viewerPass)
	_, body := get(t, c, f.ts.URL+"/policies/site")
	if strings.Contains(body, "/actions/run/site") {
		t.Error("a viewer is offered Run now")
	}
	token := csrfOf(t, body)
	res, err := c.PostForm(f.ts.URL+"/actions/run/site", url.Values{"csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "user bob is a viewer: viewers cannot change anything") {
		t.Errorf("viewer's run: %d, want 403 with the reason", res.StatusCode)
	}
}

func TestCSRFRefused(t *testing.T) {
	f := newFixture(t)
	alice := f.login(t, "alice", operatorPass)
	other := f.login(t, "alice", operatorPass)
	_, body := get(t, other, f.ts.URL+"/")
	otherToken := csrfOf(t, body)
	for name, form := range map[string]url.Values{"no token": {}, "another session's token": {"csrf": {otherToken}}} {
		res, err := alice.PostForm(f.ts.URL+"/actions/prune/site", form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "CSRF token is missing or wrong") {
			t.Errorf("%s: status %d, want 403", name, res.StatusCode)
		}
	}
	_, body = get(t, alice, f.ts.URL+"/")
	req, _ := http.NewRequest("POST", f.ts.URL+"/actions/prune/site", strings.NewReader(url.Values{"csrf": {csrfOf(t, body)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	res, err := alice.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin POST: status %d, want 403", res.StatusCode)
	}
	if n := countSnapshots(t, f); n != 1 {
		t.Errorf("%d snapshots after refused actions, want 1", n)
	}
}

func countSnapshots(t testing.TB, f *fixture) int {
	m, _ := filepath.Glob(filepath.Join(f.dest, "web1", "site", "www", "*", "manifest.json"))
	return len(m)
}

func TestRestorePath(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "alice", operatorPass)
	target := filepath.Join(f.dir, "restored")
	dir := strings.TrimPrefix(filepath.Join(f.data, "www", "img"), "/")
	snap := f.ts.URL + f.snapshotURL(t)
	_, body := get(t, c, snap+"/restore?path="+url.QueryEscape(dir)+"&target="+url.QueryEscape(target))
	if !strings.Contains(body, "2 entries of /"+dir+" into <code>"+target+"/www</code>; 0 of them exist there already") {
		t.Fatalf("preview does not say what will be written:\n%s", body)
	}
	res, err := c.PostForm(snap+"/restore", url.Values{"csrf": {csrfOf(t, body)}, "path": {dir}, "target": {target}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("restore: status %d", res.StatusCode)
	}
	got, err := os.ReadFile(filepath.Join(target, "www", dir, "logo.svg"))
	if err != nil || string(got) != "<svg/>" {
		t.Fatalf("restored file: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(target, "www", filepath.Dir(dir), "index.html")); !os.IsNotExist(err) {
		t.Errorf("a file outside the chosen path was restored (%v)", err)
	}
	audit, _ := os.ReadFile(filepath.Join(f.logs, "audit.jsonl"))
	if !bytes.Contains(audit, []byte(`"actor":"web:alice","action":"restore.run"`)) {
		t.Errorf("restore not audited with the user:\n%s", audit)
	}
}

func TestProxyAuth(t *testing.T) {
	f := newFixture(t)
	f.srv.opts.Proxy = ProxyAuth{Header: "X-Forwarded-User", Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	c := f.client(t)
	req, _ := http.NewRequest("GET", f.ts.URL+"/policies/site", nil)
	req.Header.Set("X-Forwarded-User", "bob")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "bob (viewer)") {
		t.Fatalf("proxy user bob: status %d", res.StatusCode)
	}
	// Not from the proxy: the header counts for nothing.
	f.srv.opts.Proxy.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("header from an untrusted address: status %d, want 303 to sign in", res.StatusCode)
	}
	// An unknown user named by the proxy is not let in.
	f.srv.opts.Proxy.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	req.Header.Set("X-Forwarded-User", "mallory")
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("unknown proxy user: status %d, want 303 to sign in", res.StatusCode)
	}
}

func TestFleetOnly(t *testing.T) {
	f := newFixture(t)
	srv, err := New(t.Context(), Options{ConfigDir: f.conf, StateDir: f.state, Host: "console", UsersFile: f.srv.opts.UsersFile,
		FleetOnly: true, Fleet: []string{"disk"}, InsecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	f.ts.Config.Handler = srv.Handler()
	c := f.login(t, "alice", operatorPass)
	code, body := get(t, c, f.ts.URL+"/fleet")
	if code != 200 || !strings.Contains(body, `data-host="web1"`) || strings.Contains(body, "destination broken") {
		t.Errorf("fleet view: status %d, want web1 of destination disk only", code)
	}
	if code, _ := get(t, c, f.ts.URL+"/policies/site"); code != http.StatusNotFound {
		t.Errorf("a policy page in fleet mode: status %d, want 404", code)
	}
	if code, _ := get(t, c, f.ts.URL+"/actions/run/site"); code != http.StatusNotFound {
		t.Errorf("an action in fleet mode: status %d, want 404", code)
	}
}

func TestVerifyAndPrunePreview(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "alice", operatorPass)
	_, page := get(t, c, f.ts.URL+"/actions/verify/site")
	token := csrfOf(t, page)
	post := func(action string) string {
		res, err := c.PostForm(f.ts.URL+"/actions/"+action+"/site", url.Values{"csrf": {token}})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("%s: status %d", action, res.StatusCode)
		}
		return string(b)
	}
	if body := post("verify"); !strings.Contains(body, "Verified 1 snapshots of site.") || !strings.Contains(body, `<span class="state state-ready">OK</span>`) {
		t.Errorf("verify page:\n%s", body)
	}
	if body := post("prune-preview"); !strings.Contains(body, "Prune preview: site") || !strings.Contains(body, "keep (") {
		t.Errorf("prune preview page:\n%s", body)
	}
	if n := countSnapshots(t, f); n != 1 {
		t.Errorf("%d snapshots after verify and a prune preview, want 1", n)
	}
	audit, _ := os.ReadFile(filepath.Join(f.logs, "audit.jsonl"))
	for _, want := range []string{`"actor":"web:alice","action":"verify.run","object":"BackupPolicy/site","outcome":"success"`, `"actor":"web:alice","action":"prune.previewed"`} {
		if !bytes.Contains(audit, []byte(want)) {
			t.Errorf("audit lacks %s", want)
		}
	}
}

func TestUploadedIdentity(t *testing.T) {
	f := newFixture(t)
	key, err := os.ReadFile(filepath.Join(f.keys, "site.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.keys, "site.key")); err != nil { // the key is kept off the host
		t.Fatal(err)
	}
	c := f.login(t, "bob", viewerPass)
	snap := f.ts.URL + f.snapshotURL(t)
	_, body := get(t, c, snap)
	if !strings.Contains(body, "Cannot read the files of this snapshot") || !strings.Contains(body, `action="/identity"`) {
		t.Fatalf("without the key: the page does not offer to upload an identity")
	}
	res, err := c.PostForm(f.ts.URL+"/identity", url.Values{"csrf": {csrfOf(t, body)}, "identity": {string(key)}, "next": {f.snapshotURL(t)}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: status %d", res.StatusCode)
	}
	inSnap := strings.TrimPrefix(filepath.Join(f.data, "www", "index.html"), "/")
	if code, got := get(t, c, snap+"/file?path="+url.QueryEscape(inSnap)); code != 200 || got != string(f.original) {
		t.Fatalf("download with the uploaded identity: status %d, %d bytes", code, len(got))
	}
	// Another session does not have it, even from the cache.
	other := f.login(t, "alice", operatorPass)
	if _, body := get(t, other, snap); !strings.Contains(body, "Cannot read the files of this snapshot") {
		t.Error("another session reads the snapshot with bob's identity")
	}
	// Signing out forgets it.
	res, err = c.PostForm(f.ts.URL+"/logout", url.Values{"csrf": {csrfOf(t, body)}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Fatalf("sign out: status %d", res.StatusCode)
	}
	c = f.login(t, "bob", viewerPass)
	if _, body := get(t, c, snap); !strings.Contains(body, "Cannot read the files of this snapshot") {
		t.Error("the identity outlived its session")
	}
	if strings.Contains(body, "AGE-SECRET-KEY") {
		t.Error("a page shows the secret key")
	}
}
