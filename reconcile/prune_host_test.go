package reconcile

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPruneAnotherHost: a machine with credentials that may delete prunes
// the snapshots a write-only host made (prune --host), and a pass for
// itself leaves that host's snapshots alone.
func TestPruneAnotherHost(t *testing.T) {
	root := t.TempDir()
	dest := filepath.Join(root, "dest")
	os.MkdirAll(filepath.Join(root, "src"), 0o755)
	os.WriteFile(filepath.Join(root, "src", "f"), []byte("data"), 0o644)
	manifest := func(retention string) string {
		dir := filepath.Join(root, "config"+retention)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(`apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: `+dest+`}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@hourly"
  sources: [{name: site, files: {paths: [`+filepath.Join(root, "src")+`]}}]
  destinations: [disk]
  encryption: {none: true}
`+retention), 0o644)
		return dir
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	agent := func(host, config string) *Agent {
		a, err := New(Options{ConfigDir: config, StateDir: filepath.Join(root, "state-"+host), Host: host,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	// The write-only host backs up and never prunes.
	web1 := agent("web1", manifest(""))
	for range 3 {
		if res, _, err := web1.RunNow(context.Background(), "web", "", false); err != nil || res.Result != "Succeeded" {
			t.Fatalf("run: %v %+v", err, res)
		}
		now = now.Add(2 * time.Hour)
	}
	count := func() int {
		ents, _ := os.ReadDir(filepath.Join(dest, "web1", "web", "site"))
		return len(ents)
	}
	if n := count(); n != 3 {
		t.Fatalf("web1 holds %d snapshots, want 3", n)
	}

	pruner := agent("admin", manifest("  retention: {keepLast: 1}\n"))
	reps, _, err := pruner.Prune(context.Background(), PruneRequest{Policy: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 || len(reps) != 1 || reps[0].Host != "admin" {
		t.Fatalf("a pass for its own host touched web1's snapshots: %d left, report %+v", n, reps)
	}
	reps, _, err = pruner.Prune(context.Background(), PruneRequest{Policy: "web", Host: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Host != "web1" || reps[0].Failed() {
		t.Fatalf("prune --host web1: %+v", reps[0])
	}
	if n := count(); n != 1 {
		t.Errorf("web1 holds %d snapshots after prune --host web1, want 1 (keepLast: 1)", n)
	}
}
