package retention

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/reconcile/dedup"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// TestPruneDeduplicatedRepository: once retention deleted the snapshot
// that alone referenced a file's chunks, the packs holding them are marked
// on one pass and deleted on a pass more than the grace period later; the
// kept snapshot still restores, and archive snapshots of the policy count
// in the same retention.
func TestPruneDeduplicatedRepository(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	gone := make([]byte, 3<<20)
	rand.Read(gone)
	os.WriteFile(filepath.Join(src, "gone.bin"), gone, 0o644)
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}, Spec: v1.BackupPolicySpec{
		Schedule: "@daily", Storage: v1.StorageDeduplicated,
		Sources:      []v1.Source{{Name: "site", Files: &v1.FilesSource{Paths: []string{src}}}},
		Destinations: []string{"disk"}, Encryption: &v1.Encryption{None: true},
		Retention: &v1.Retention{KeepLast: 2},
	}}
	dests := map[string]*v1.Destination{"disk": {Metadata: v1.ObjectMeta{Name: "disk"},
		Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: filepath.Join(dir, "disk")}}}}
	start := time.Now()
	backup := func(at time.Time, storage string) {
		t.Helper()
		p.Spec.Storage = storage
		r := &snapshot.Runner{Host: testHost, Now: func() time.Time { return at }, StateDir: filepath.Join(dir, "state")}
		if res := r.Backup(context.Background(), slog.New(slog.DiscardHandler), snapshot.BackupRequest{Policy: p, Destinations: dests}); res.Result != v1.ResultSucceeded {
			t.Fatalf("backup: %+v", res)
		}
	}
	backup(start, v1.StorageDeduplicated)
	os.Remove(filepath.Join(src, "gone.bin"))
	os.WriteFile(filepath.Join(src, "kept.txt"), []byte("kept"), 0o644)
	backup(start.Add(time.Hour), v1.StorageArchive)
	backup(start.Add(2*time.Hour), v1.StorageDeduplicated)

	d := local.New(filepath.Join(dir, "disk"))
	repo := dedup.RepoPrefix(testHost, "web")
	packs := func() (size int64) {
		objs, err := d.List(context.Background(), repo+"packs/")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			size += o.Size
		}
		return size
	}
	before := packs()
	for i, at := range []time.Time{start.Add(72 * time.Hour), start.Add(144 * time.Hour)} {
		rep := prune(d, p, PruneOptions{Clock: fixedClock(at)})
		if rep.Failed() {
			t.Fatalf("pass %d: %+v", i, rep.Destinations[0])
		}
	}
	snaps, err := snapshot.ListSnapshots(context.Background(), d, "disk", "web")
	if err != nil || len(snaps) != 2 {
		t.Fatalf("%d snapshots after retention (keepLast 2), %v", len(snaps), err)
	}
	if after := packs(); before < 3<<20 || after >= 1<<20 || after == 0 {
		t.Errorf("packs: %d bytes before, %d after pruning the only snapshot holding gone.bin", before, after)
	}
	keys := &snapshot.KeyRing{}
	keys.AcceptMode("none", false)
	for _, s := range snaps {
		target := t.TempDir()
		if _, err := snapshot.Restore(context.Background(), d, s, snapshot.RestoreOptions{Target: target, Keys: keys}); err != nil {
			t.Fatalf("restore %s after prune: %v", s.Manifest.ID, err)
		}
		got, err := os.ReadFile(filepath.Join(target, "site", strings.TrimPrefix(src, "/"), "kept.txt"))
		if !bytes.Equal(got, []byte("kept")) {
			t.Errorf("snapshot %s: kept.txt restored as %q (%v)", s.Manifest.ID, got, err)
		}
	}
}
