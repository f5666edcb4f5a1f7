package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

const testHost = "drillhost"

// spy records every write that reaches a destination.
type spy struct {
	drivers.Destination
	mu     sync.Mutex
	writes []string
}

func (s *spy) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	s.mu.Lock()
	s.writes = append(s.writes, "put "+key)
	s.mu.Unlock()
	return s.Destination.Put(ctx, key, r)
}

func (s *spy) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	s.writes = append(s.writes, "delete "+key)
	s.mu.Unlock()
	return s.Destination.Delete(ctx, key)
}

// env is a policy backed up to a local destination, ready to drill.
type env struct {
	t                         testing.TB
	policy                    *v1.BackupPolicy
	dests                     map[string]*v1.Destination
	destDir, stateDir, logDir string
	spy                       *spy
}

func newEnv(t testing.TB, srcs ...v1.Source) *env {
	t.Helper()
	e := &env{t: t, destDir: t.TempDir(), stateDir: t.TempDir(), logDir: t.TempDir()}
	e.policy = &v1.BackupPolicy{
		TypeMeta: v1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindBackupPolicy},
		Metadata: v1.ObjectMeta{Name: "web"},
		Spec: v1.BackupPolicySpec{Schedule: "@daily", Sources: srcs, Destinations: []string{"disk"},
			Encryption: &v1.Encryption{None: true}, Drills: &v1.Drills{Schedule: "@weekly"}},
	}
	v1.Defaults(e.policy)
	e.dests = map[string]*v1.Destination{"disk": {Metadata: v1.ObjectMeta{Name: "disk"}, Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: e.destDir}}}}
	return e
}

// backup makes a snapshot at the time now.
func (e *env) backup(now time.Time) {
	e.t.Helper()
	r := &snapshot.Runner{Host: testHost, Now: func() time.Time { return now }}
	res := r.Backup(context.Background(), slog.New(slog.DiscardHandler), snapshot.BackupRequest{Policy: e.policy, Destinations: e.dests})
	if res.Result != v1.ResultSucceeded {
		e.t.Fatalf("backup: %+v", res)
	}
}

func (e *env) options() Options {
	e.spy = nil
	return Options{
		Host: testHost, StateDir: e.stateDir, LogDir: e.logDir,
		Open: func(_ context.Context, name string) (drivers.Destination, error) {
			e.spy = &spy{Destination: local.New(e.dests[name].Spec.Local.Path)}
			return e.spy, nil
		},
		Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 4096)),
	}
}

// assertClean fails unless the drill left no scratch file and no journal.
func (e *env) assertClean() {
	e.t.Helper()
	for _, p := range []string{filepath.Join(e.stateDir, dirName, scratchName), filepath.Join(e.stateDir, dirName, journalName)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			e.t.Errorf("%s left behind (stat: %v)", p, err)
		}
	}
	if e.spy != nil && len(e.spy.writes) > 0 {
		e.t.Errorf("the drill wrote to the destination: %v", e.spy.writes)
	}
}

// liveTree makes files whose modification time lies before the snapshot.
func liveTree(t testing.TB, snapTime time.Time) string {
	dir := t.TempDir()
	for name, body := range map[string]string{"a.txt": "alpha", "sub/b.txt": strings.Repeat("b", 100000), "empty": ""} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		old := snapTime.Add(-time.Hour)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFilesDrillSucceeds(t *testing.T) {
	now := time.Now()
	live := liveTree(t, now)
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{live}}})
	e.backup(now)
	res, err := Run(context.Background(), e.policy, e.options())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Result != v1.ResultSucceeded || len(res.Sources) != 1 {
		t.Fatalf("result %+v", res)
	}
	s := res.Sources[0]
	if s.Files != 3 || s.FilesRestored != 3 || s.LiveCompared != 3 || s.LiveChanged != 0 || s.BytesRestored != 100005 {
		t.Errorf("got files=%d restored=%d compared=%d changed=%d bytes=%d, want 3 3 3 0 100005", s.Files, s.FilesRestored, s.LiveCompared, s.LiveChanged, s.BytesRestored)
	}
	if s.MeasuredRTO == "" || res.MeasuredRTO == "" {
		t.Errorf("no measured RTO: %+v", res)
	}
	var rep Report
	b, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := FileEvidence{Path: filepath.Join(live, "a.txt"), Size: 5, SHA256: "8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8", Live: "same"}
	found := false
	for _, f := range rep.Files["site"] {
		found = found || f == want
	}
	if !found {
		t.Errorf("report files %+v lack %+v", rep.Files["site"], want)
	}
	e.assertClean()
}

func TestFilesDrillFindsContentThatDiffersFromUnchangedLiveFile(t *testing.T) {
	now := time.Now()
	live := liveTree(t, now)
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{live}}})
	e.backup(now)
	// Same size and time, other content: the snapshot no longer matches a
	// file that, by its metadata, did not change.
	p := filepath.Join(live, "a.txt")
	if err := os.WriteFile(p, []byte("ALPHA"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), e.policy, e.options())
	want := "drill of policy web: source site: file " + p[1:] + ": the restored content"
	if err == nil || !strings.HasPrefix(err.Error(), "drill of policy web: source site: restore: file "+p+": the restored content (SHA-256 8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8) differs from the live file") {
		t.Fatalf("err = %v, want one starting %q", err, want)
	}
	if res.Result != v1.ResultFailed || res.Sources[0].Result != v1.ResultFailed {
		t.Errorf("result %s / %s, want Failed", res.Result, res.Sources[0].Result)
	}
	e.assertClean()
}

func TestFilesDrillSkipsChangedLiveFiles(t *testing.T) {
	now := time.Now()
	live := liveTree(t, now)
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{live}}})
	e.backup(now)
	if err := os.WriteFile(filepath.Join(live, "a.txt"), []byte("changed after the snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), e.policy, e.options())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := res.Sources[0]; s.LiveCompared != 2 || s.LiveChanged != 1 {
		t.Errorf("compared %d, changed %d; want 2, 1", s.LiveCompared, s.LiveChanged)
	}
}

func TestFilesDrillSample(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	for i := range 200 {
		if err := os.WriteFile(filepath.Join(dir, "f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String()), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{dir}}})
	e.policy.Spec.Drills.Sample = "10%"
	e.backup(now)
	res, err := Run(context.Background(), e.policy, e.options())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	s := res.Sources[0]
	if s.Files != 200 || s.FilesRestored < 5 || s.FilesRestored > 40 {
		t.Errorf("files %d, restored %d: want 200 read and about 20 restored", s.Files, s.FilesRestored)
	}
}

func TestDrillWithoutSnapshotFails(t *testing.T) {
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{t.TempDir()}}})
	res, err := Run(context.Background(), e.policy, e.options())
	if err == nil || err.Error() != "drill of policy web: source site: no snapshot of this source on any destination" {
		t.Fatalf("err = %v", err)
	}
	if res.Result != v1.ResultFailed {
		t.Errorf("result %s", res.Result)
	}
	e.assertClean()
}

func TestDrillWithoutScratchDirectoryFailsAndLeavesNothing(t *testing.T) {
	now := time.Now()
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{liveTree(t, now)}}})
	e.backup(now)
	// A file where the drills' state directory should be.
	if err := os.WriteFile(filepath.Join(e.stateDir, dirName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), e.policy, e.options())
	want := "drill of policy web: drill state directory: mkdir " + filepath.Join(e.stateDir, dirName) + ": not a directory"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	entries, _ := os.ReadDir(e.stateDir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only the file put there", len(entries))
	}
	// The scratch directory itself in the way.
	if err := os.Remove(filepath.Join(e.stateDir, dirName)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.stateDir, dirName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.stateDir, dirName, scratchName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), e.policy, e.options())
	if err != nil {
		t.Fatalf("a stale file in place of the scratch directory is cleaned up first; got %v", err)
	}
	e.assertClean()
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	s := &spy{Destination: local.New(t.TempDir())}
	ro := ReadOnly(s)
	ctx := context.Background()
	if _, err := ro.Put(ctx, "a/b", strings.NewReader("x")); !errors.Is(err, ErrReadOnly) || !drivers.IsPermanent(err) ||
		err.Error() != "put a/b: a restore drill never writes to a destination" {
		t.Errorf("Put: %v", err)
	}
	if err := ro.Delete(ctx, "a/b"); !errors.Is(err, ErrReadOnly) || err.Error() != "delete a/b: a restore drill never writes to a destination" {
		t.Errorf("Delete: %v", err)
	}
	if err := ro.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
	if len(s.writes) != 0 {
		t.Errorf("writes reached the destination: %v", s.writes)
	}
}

func TestOneDrillAtATime(t *testing.T) {
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{t.TempDir()}}})
	l, err := lock(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Run(context.Background(), e.policy, e.options())
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
}

func TestCleanupRemovesInterruptedScratch(t *testing.T) {
	state := t.TempDir()
	scratch := filepath.Join(state, dirName, scratchName, "web-01020304", "site")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "half"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	j := &journal{path: filepath.Join(state, dirName, journalName), body: journalBody{Policy: "web", Scratch: filepath.Dir(scratch)}}
	if err := j.save(); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(context.Background(), state, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(state, dirName, scratchName), j.path} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there", p)
		}
	}
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
