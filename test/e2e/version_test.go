package e2e

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"
)

// The version a build is stamped with is what `version`, `--version` and
// the User-Agent of Aegis's HTTP requests say.
func TestVersionAndUserAgent(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "aegis-agent")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/aegis-backup/aegis/reconcile/observe.Version=1.2.3-e2e", "github.com/aegis-backup/aegis/cmd/aegis-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	e := newEnv(t)
	run := func(args ...string) result {
		t.Helper()
		cmd := e.command(args...)
		cmd.Path, cmd.Args[0] = bin, bin
		return runCmd(t, cmd, args)
	}
	v := run("version")
	v.mustCode(t, 0)
	want := regexp.MustCompile(`^aegis-agent 1\.2\.3-e2e\ncommit: (unknown|[0-9a-f]{40}(-dirty)?)\ngo: ` + regexp.QuoteMeta(runtime.Version()) + "\n$")
	if !want.MatchString(v.stdout) {
		t.Errorf("version:\n%s\nwant %s", v.stdout, want)
	}
	if f := run("--version"); f.code != 0 || f.stdout != v.stdout {
		t.Errorf("--version: exit %d\n%s\nwant what version prints:\n%s", f.code, f.stdout, v.stdout)
	}

	var mu sync.Mutex
	var agents []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		mu.Unlock()
	}))
	defer srv.Close()
	smallTree(t, e)
	notify := "  notify:\n    onSuccess: true\n    ping: " + srv.URL + "/ping\n    webhooks: [{url: " + srv.URL + "/hook}]\n"
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk")+notify)
	run("run", "p").mustCode(t, 0)
	mu.Lock()
	defer mu.Unlock()
	if len(agents) == 0 {
		t.Fatal("no notification arrived")
	}
	for _, ua := range agents {
		if ua != "aegis-agent/1.2.3-e2e" {
			t.Errorf("User-Agent %q, want aegis-agent/1.2.3-e2e", ua)
		}
	}
}
