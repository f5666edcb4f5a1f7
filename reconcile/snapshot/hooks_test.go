package snapshot

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testLog() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, nil)), lb
}

func TestRunHook(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		hook    v1.Hook
		wantErr string // "" for success
		wantLog []string
	}{
		{"no shell: metacharacters are arguments", v1.Hook{Command: []string{"echo", "a;b", "$HOME", ">", filepath.Join(dir, "x")}},
			"", []string{`line="a;b $HOME > ` + filepath.Join(dir, "x") + `"`}},
		{"shell when asked", v1.Hook{Command: []string{"echo", "one;", "echo", "two", ">&2"}, Shell: true},
			"", []string{`stream=stdout line=one`, `stream=stderr line=two`}},
		{"environment", v1.Hook{Command: []string{"sh", "-c", `echo "$AEGIS_POLICY/$AEGIS_HOOK/$AEGIS_RESULT"`}},
			"", []string{`line=web/after/Succeeded`}},
		{"exit status and its words", v1.Hook{Command: []string{"sh", "-c", "echo working; echo 'disk is full' >&2; exit 3"}},
			`policy web hook after[0] "sh -c echo working; echo 'disk is full' >&2; exit 3" failed (exit status 3): disk is full`, nil},
		{"missing program", v1.Hook{Command: []string{filepath.Join(dir, "nope")}},
			"no such file or directory", nil},
		{"timeout kills the group", v1.Hook{Command: []string{"sleep 30 & sleep 30; echo never"}, Shell: true, Timeout: "300ms"},
			"failed (timed out after 300ms)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, lb := testLog()
			t0 := time.Now()
			err := runHooks(context.Background(), log, "policy web", hookAfter, []v1.Hook{tc.hook}, hookEnv{policy: "web", result: v1.ResultSucceeded})
			if took := time.Since(t0); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(lb.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, lb.String())
				}
			}
		})
	}
}

func TestHookOutputIsBounded(t *testing.T) {
	log, lb := testLog()
	err := runHooks(context.Background(), log, "policy web", hookBefore, []v1.Hook{{Command: []string{"seq 1 5000"}, Shell: true}}, hookEnv{policy: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(lb.String(), `msg="hook output"`); n != maxHookLines+1 {
		t.Errorf("%d output lines logged, want %d", n, maxHookLines+1)
	}
	if !strings.Contains(lb.String(), "... 4000 more lines not logged") {
		t.Error("the dropped lines are not counted")
	}
}

// hookPolicy backs up a small tree to a local destination, with hooks that
// append to a journal file.
func hookPolicy(t *testing.T, policyHooks, sourceHooks *v1.Hooks) (*v1.BackupPolicy, map[string]*v1.Destination) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "f"), []byte("x"), 0o644)
	p := &v1.BackupPolicy{
		Metadata: v1.ObjectMeta{Name: "web"},
		Spec: v1.BackupPolicySpec{
			Schedule: "@daily",
			Sources: []v1.Source{
				{Name: "a", Files: &v1.FilesSource{Paths: []string{filepath.Join(dir, "src")}}, Hooks: sourceHooks},
				{Name: "b", Files: &v1.FilesSource{Paths: []string{filepath.Join(dir, "src")}}},
			},
			Destinations: []string{"disk"},
			Encryption:   &v1.Encryption{None: true},
			Hooks:        policyHooks,
		},
	}
	dests := map[string]*v1.Destination{"disk": {Metadata: v1.ObjectMeta{Name: "disk"}, Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: filepath.Join(dir, "dest")}}}}
	return p, dests
}

func journalHook(journal, word string, fail bool) v1.Hook {
	script := `echo "` + word + ` $AEGIS_SOURCE $AEGIS_RESULT" >> ` + journal
	if fail {
		script += "; echo " + word + " broke >&2; exit 1"
	}
	return v1.Hook{Command: []string{script}, Shell: true}
}

func readJournal(t *testing.T, path string) string {
	b, _ := os.ReadFile(path)
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		lines = append(lines, strings.TrimRight(l, " "))
	}
	return strings.Join(lines, "\n")
}

func TestPolicyHooksAroundTheRun(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal")
	p, dests := hookPolicy(t, &v1.Hooks{
		Before:    []v1.Hook{journalHook(journal, "before", false)},
		After:     []v1.Hook{journalHook(journal, "after", false)},
		OnFailure: []v1.Hook{journalHook(journal, "failure", false)},
	}, nil)
	log, _ := testLog()
	r := &Runner{Host: "h", Now: time.Now}
	res := r.Backup(context.Background(), log, BackupRequest{Policy: p, Destinations: dests})
	if res.Result != v1.ResultSucceeded {
		t.Fatalf("result %+v", res)
	}
	if got, want := readJournal(t, journal), "before\nafter  Succeeded"; got != want {
		t.Errorf("journal:\n%s\nwant:\n%s", got, want)
	}
}

func TestFailingPolicyBeforeHookSkipsTheRun(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal")
	p, dests := hookPolicy(t, &v1.Hooks{
		Before:    []v1.Hook{journalHook(journal, "before", true), journalHook(journal, "before2", false)},
		After:     []v1.Hook{journalHook(journal, "after", false)},
		OnFailure: []v1.Hook{journalHook(journal, "failure", false)},
	}, nil)
	log, _ := testLog()
	r := &Runner{Host: "h", Now: time.Now}
	res := r.Backup(context.Background(), log, BackupRequest{Policy: p, Destinations: dests})
	if res.Result != v1.ResultFailed || len(res.Sources) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, s := range res.Sources {
		if !strings.HasPrefix(s.Error, `skipped: policy web hook before[0] "echo \"before`) || !strings.HasSuffix(s.Error, "failed (exit status 1): before broke") {
			t.Errorf("source %s: error %q", s.Name, s.Error)
		}
	}
	// The second before hook and the after hooks did not run; onFailure did.
	if got, want := readJournal(t, journal), "before\nfailure  Failed"; got != want {
		t.Errorf("journal:\n%s\nwant:\n%s", got, want)
	}
	if n := len(manifestsIn(t, dests["disk"].Spec.Local.Path)); n != 0 {
		t.Errorf("%d snapshots published by a skipped run", n)
	}
}

func TestSourceHooks(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal")
	p, dests := hookPolicy(t, nil, &v1.Hooks{
		Before:    []v1.Hook{journalHook(journal, "before", true)},
		OnFailure: []v1.Hook{journalHook(journal, "failure", false)},
	})
	log, _ := testLog()
	r := &Runner{Host: "h", Now: time.Now}
	res := r.Backup(context.Background(), log, BackupRequest{Policy: p, Destinations: dests})
	if res.Result != v1.ResultPartiallyFailed {
		t.Fatalf("result %+v", res)
	}
	a, b := res.Sources[0], res.Sources[1]
	if a.Result != v1.ResultFailed || !strings.HasPrefix(a.Error, "skipped: source a hook before[0]") {
		t.Errorf("source a: %+v", a)
	}
	if b.Result != v1.ResultSucceeded {
		t.Errorf("source b: %+v", b)
	}
	if got, want := readJournal(t, journal), "before a\nfailure a Failed"; got != want {
		t.Errorf("journal:\n%s\nwant:\n%s", got, want)
	}
	if n := len(manifestsIn(t, dests["disk"].Spec.Local.Path)); n != 1 {
		t.Errorf("%d snapshots, want 1 (source b)", n)
	}

	// A failing after hook is a warning; the source succeeded.
	p.Spec.Sources[0].Hooks = &v1.Hooks{After: []v1.Hook{journalHook(journal, "after", true)}}
	res = r.Backup(context.Background(), log, BackupRequest{Policy: p, Destinations: dests})
	if a := res.Sources[0]; res.Result != v1.ResultSucceeded || len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "after broke") {
		t.Errorf("after hook failing: %+v", res)
	}
}

func manifestsIn(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == v1.ManifestName {
			out = append(out, p)
		}
		return nil
	})
	return out
}
