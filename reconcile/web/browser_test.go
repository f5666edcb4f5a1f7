package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/aegis-backup/aegis/reconcile"
)

// chromium finds Debian's chromium. Under CI=true a missing browser fails
// the test; elsewhere the test is skipped with the command that installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("AEGIS_CHROMIUM"), "/usr/bin/chromium", "chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: the CI run must install it (hack/deps-browser.sh, or apt-get install chromium)")
	}
	t.Skip("chromium is not installed: run hack/deps-browser.sh (apt-get install chromium) to run the browser tests")
	return ""
}

// newBrowser starts a headless chromium with a fresh profile. The
// background-networking flags keep it from dialling out (this machine's
// network is closed, and tests must not depend on one).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// tab opens a tab with its own cookies (a new browser context).
func tab(t *testing.T, bctx context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return ctx
}

// screenshot saves the page as docs/web/NAME.png when
// AEGIS_WEB_SCREENSHOTS names a directory (how docs/web.md's pictures are
// made).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("AEGIS_WEB_SCREENSHOTS")
	if dir == "" {
		return
	}
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func signIn(t *testing.T, ctx context.Context, base, user, pass string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), pass),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS(".logout")),
	); err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
}

func text(t *testing.T, ctx context.Context, sel chromedp.CSS) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// TestBrowser drives the console in chromium as a user would: sign in, see
// the failing policy first, run a backup and watch it end, browse a
// snapshot and download a file, restore a directory, be refused as a
// viewer and from another site, and see the fleet of three hosts.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	bctx := newBrowser(t)
	f := newFixture(t)
	f.srv.opts.InsecureCookies = false // chromium keeps Secure cookies of http://127.0.0.1
	f.addHost(t, "web2", time.Now)
	f.addHost(t, "web3", func() time.Time { return time.Now().Add(-72 * time.Hour) })
	ctx := tab(t, bctx)
	signIn(t, ctx, f.ts.URL, "alice", operatorPass)

	t.Run("failing first", func(t *testing.T) {
		if got := text(t, ctx, "#policies tbody tr:first-child th"); got != "zz-failing" {
			t.Errorf("first policy is %q, want the failing zz-failing", got)
		}
		if got := text(t, ctx, "#policies tbody tr:first-child .state"); got != "Failing" {
			t.Errorf("its state is %q, want Failing", got)
		}
		screenshot(t, ctx, "overview")
	})
	t.Run("run now", func(t *testing.T) { browserRunNow(t, ctx, f) })
	t.Run("download", func(t *testing.T) { browserDownload(t, ctx, f) })
	t.Run("restore", func(t *testing.T) { browserRestore(t, ctx, f) })
	t.Run("viewer refused", func(t *testing.T) {
		vctx := tab(t, bctx)
		signIn(t, vctx, f.ts.URL, "bob", viewerPass)
		if err := chromedp.Do(vctx, chromedp.Navigate(f.ts.URL+"/actions/run/site"), chromedp.WaitVisible(chromedp.CSS(".error"))); err != nil {
			t.Fatal(err)
		}
		if got := text(t, vctx, ".error"); got != "user bob is a viewer: viewers cannot change anything" {
			t.Errorf("viewer sees %q", got)
		}
	})
	t.Run("csrf refused", func(t *testing.T) { browserCSRF(t, ctx, f) })
	t.Run("fleet", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(f.ts.URL+"/fleet"), chromedp.WaitVisible(chromedp.ID("fleet"))); err != nil {
			t.Fatal(err)
		}
		var hosts []string
		for i := 1; i <= 3; i++ {
			hosts = append(hosts, text(t, ctx, chromedp.CSS(fmt.Sprintf("#fleet tbody tr:nth-child(%d) th", i))))
		}
		if strings.Join(hosts, " ") != "web3 web1 web2" {
			t.Errorf("fleet lists %v, want the overdue web3 first, then web1 and web2", hosts)
		}
		screenshot(t, ctx, "fleet")
	})
	t.Run("phone width", func(t *testing.T) {
		// The overview reads at 390 pixels: its table scrolls within the page.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 800), chromedp.Navigate(f.ts.URL+"/"), chromedp.WaitVisible(chromedp.ID("policies"))); err != nil {
			t.Fatal(err)
		}
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.documentElement.scrollWidth"))
		if err != nil {
			t.Fatal(err)
		}
		if width > 390 {
			t.Errorf("the page is %d pixels wide at a phone's 390", width)
		}
		screenshot(t, ctx, "overview-phone")
	})
}

// addHost makes another host back up to the same destination, with its own
// state, and write its status object there.
func (f *fixture) addHost(t *testing.T, host string, now func() time.Time) {
	t.Helper()
	a, err := reconcile.New(reconcile.Options{ConfigDir: f.conf, StateDir: filepath.Join(f.dir, "state-"+host), Host: host, Now: now,
		StatusDir: filepath.Join(f.dir, "status-"+host), Logger: slog.New(slog.DiscardHandler), RetryAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func browserRunNow(t *testing.T, ctx context.Context, f *fixture) {
	if err := chromedp.Do(ctx,
		chromedp.Navigate(f.ts.URL+"/policies/site"),
		chromedp.WaitVisible(chromedp.ID("history")),
	); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/actions/run/site"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		// The page follows the run and reloads once it is over: the
		// history then holds the new snapshot.
		chromedp.WaitVisible(chromedp.CSS("#history tbody tr:nth-child(2)")),
	); err != nil {
		t.Fatalf("run now: %v", err)
	}
	if got := text(t, ctx, "#state .state"); got != "Ready" {
		t.Errorf("state after the run: %q, want Ready", got)
	}
	if n := countSnapshots(t, f); n != 2 {
		t.Errorf("%d snapshots after Run now, want 2", n)
	}
	screenshot(t, ctx, "policy")
	if dir := os.Getenv("AEGIS_WEB_SCREENSHOTS"); dir != "" {
		buf, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(`section[aria-labelledby="hist-h"]`)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "history.png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func browserDownload(t *testing.T, ctx context.Context, f *fixture) {
	dir := t.TempDir()
	snap := f.snapshotURLs(t)[0]
	inSnap := strings.TrimPrefix(filepath.Join(f.data, "www"), "/")
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(f.ts.URL+snap+"?path="+url.QueryEscape(inSnap)),
		chromedp.WaitVisible(chromedp.ID("entries")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			yes := true
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes,
				BrowserContextID: chromedp.FromContext(ctx).BrowserContextID})
			return err
		}),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "snapshot")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[download][href$="index.html"]`))); err != nil {
		t.Fatal(err)
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatal(err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
		if ev.State != browser.DownloadProgressStateCompleted {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, ev.GUID))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(f.original) {
			t.Errorf("downloaded %d bytes that differ from the original %d", len(got), len(f.original))
		}
		return
	}
}

func browserRestore(t *testing.T, ctx context.Context, f *fixture) {
	target := filepath.Join(f.dir, "restore-here")
	inSnap := strings.TrimPrefix(filepath.Join(f.data, "www"), "/")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(f.ts.URL+f.snapshotURLs(t)[0]+"/restore?path="+url.QueryEscape(inSnap)),
		chromedp.WaitVisible(chromedp.ID("target")),
		chromedp.SendKeys(chromedp.ID("target"), target),
		chromedp.Submit(chromedp.ID("target")),
		chromedp.WaitVisible(chromedp.ID("preview-summary")),
	); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("4 entries of /%s into %s/www; 0 of them exist there already and will be replaced.", inSnap, target)
	if got := text(t, ctx, "#preview-summary"); got != want {
		t.Errorf("preview says %q, want %q", got, want)
	}
	screenshot(t, ctx, "restore")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.CSS(".flash"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, ".flash"); !strings.HasPrefix(got, "Restored 2 files") {
		t.Errorf("after the restore: %q", got)
	}
	got, err := os.ReadFile(filepath.Join(target, "www", inSnap, "index.html"))
	if err != nil || string(got) != string(f.original) {
		t.Errorf("restored index.html: %d bytes, %v; want the original", len(got), err)
	}
}

// browserCSRF has a page of another origin post a prune to the console in
// the signed-in operator's browser. Another port of the same host is the
// same site, so the SameSite=Strict cookie goes along: the Origin check
// refuses it (the guessed token would be refused next).
func browserCSRF(t *testing.T, ctx context.Context, f *fixture) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/actions/prune/site"><input name="csrf" value="guess"><button id="go">win a prize</button></form>`, f.ts.URL)
	}))
	defer evil.Close()
	before := countSnapshots(t, f)
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(evil.URL+"/"))
	if err != nil || resp.Status != 200 {
		t.Fatalf("open the other site: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("go")), chromedp.WaitVisible(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	body := text(t, ctx, "body")
	if want := "refused: the request comes from another site (origin " + evil.URL + ")"; !strings.Contains(body, want) {
		t.Errorf("the cross-site post was answered with %q, want %q", body, want)
	}
	if n := countSnapshots(t, f); n != before {
		t.Errorf("%d snapshots after the refused prune, want %d", n, before)
	}
}

// snapshotURLs lists the site policy's snapshots of web1, newest first.
func (f *fixture) snapshotURLs(t testing.TB) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.dest, "web1", "site", "www", "*"))
	var out []string
	for i := len(m) - 1; i >= 0; i-- {
		out = append(out, "/snapshots/disk/web1/site/www/"+filepath.Base(m[i]))
	}
	return out
}
