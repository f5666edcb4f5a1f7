package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// backedUp backs up two files sources of policy web into a local
// destination and returns it with the snapshots of the run.
func backedUp(t *testing.T) (*local.Store, []Snapshot) {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(dir, "src", s), 0o755)
		os.WriteFile(filepath.Join(dir, "src", s, "f"), bytes.Repeat([]byte(s), 5000), 0o644)
	}
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}, Spec: v1.BackupPolicySpec{
		Schedule: "@daily",
		Sources: []v1.Source{
			{Name: "a", Files: &v1.FilesSource{Paths: []string{filepath.Join(dir, "src", "a")}}},
			{Name: "b", Files: &v1.FilesSource{Paths: []string{filepath.Join(dir, "src", "b")}}},
		},
		Destinations: []string{"disk"},
		Encryption:   &v1.Encryption{None: true},
	}}
	dests := map[string]*v1.Destination{"disk": {Metadata: v1.ObjectMeta{Name: "disk"},
		Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: filepath.Join(dir, "disk")}}}}
	r := &Runner{Host: "h", Now: fixedNow}
	res := r.Backup(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), BackupRequest{Policy: p, Destinations: dests})
	if res.Result != v1.ResultSucceeded {
		t.Fatalf("backup %+v", res)
	}
	d := local.New(filepath.Join(dir, "disk"))
	snaps, err := ListSnapshots(context.Background(), d, "disk", "web")
	if err != nil || len(snaps) != 2 {
		t.Fatalf("%d snapshots, %v", len(snaps), err)
	}
	return d, snaps
}

// plainKeys accepts the unencrypted snapshots of backedUp.
func plainKeys() *KeyRing {
	k := &KeyRing{}
	k.AcceptMode("none", false)
	return k
}

func TestRestoreAll(t *testing.T) {
	d, snaps := backedUp(t)
	target := t.TempDir()
	var seen []string
	prog := newRecordingProgress()
	done, ev, err := RestoreAll(context.Background(), d, snaps, RestoreAllOptions{
		Target: target, Keys: plainKeys(), Progress: prog, Now: fixedNow,
		Restored: func(r Restored) { seen = append(seen, r.Snapshot.Manifest.Source) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 || strings.Join(seen, ",") != "a,b" {
		t.Errorf("restored %d, reported %v", len(done), seen)
	}
	for _, s := range []string{"a", "b"} {
		if !bytes.Contains(readAny(t, filepath.Join(target, s)), bytes.Repeat([]byte(s), 5000)) {
			t.Errorf("source %s not restored under %s", s, target)
		}
		item := "restore " + s + " ← disk"
		if e, ok := prog.ended[item]; !ok || e != nil || prog.added[item] == 0 {
			t.Errorf("progress of %q: ended %v (%v), %d bytes", item, ok, e, prog.added[item])
		}
	}
	m := snaps[1].Manifest
	if ev.Action != observe.AuditRestoreRun || ev.Outcome != observe.OutcomeSuccess || !ev.Time.Equal(keyNow) ||
		ev.Object != "Snapshot/h/web/"+m.ID || strings.Join(ev.Sources, ",") != "a,b" || ev.Bytes != 10000 || ev.File != target {
		t.Errorf("audit event %+v", ev)
	}
}

// readAny concatenates every regular file under dir.
func readAny(t *testing.T, dir string) []byte {
	var all []byte
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	return all
}

func TestRestoreAllStopsAtTheFirstFailure(t *testing.T) {
	d, snaps := backedUp(t)
	// Damage the first source's data object: the second is not tried.
	m := snaps[0].Manifest
	if _, err := d.Put(context.Background(), m.ObjectKey(m.Objects[0]), strings.NewReader("damaged")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	done, ev, err := RestoreAll(context.Background(), d, snaps, RestoreAllOptions{
		Target: t.TempDir(), Keys: plainKeys(), Now: fixedNow,
		Restored: func(r Restored) { seen = append(seen, r.Snapshot.Manifest.Source) },
	})
	if err == nil || !strings.HasPrefix(err.Error(), "restore web/a from disk: ") {
		t.Fatalf("err = %v", err)
	}
	if len(done) != 0 || len(seen) != 0 {
		t.Errorf("restored %d, reported %v after a failure", len(done), seen)
	}
	if ev.Outcome != observe.OutcomeFailure || ev.Message != err.Error() || ev.Snapshot != m.ID || len(ev.Sources) != 0 {
		t.Errorf("audit event %+v", ev)
	}
}

func TestRestoreAuditEvent(t *testing.T) {
	_, snaps := backedUp(t)
	done := []Restored{{Snapshot: snaps[0], Stats: files.ExtractStats{Files: 1, Bytes: 7}}}
	ev := RestoreAuditEvent(snaps[1], done, "/srv/restore", errors.New("restore web/b from disk: boom"))
	if ev.Outcome != observe.OutcomePartial || ev.Message != "restore web/b from disk: boom" ||
		strings.Join(ev.Sources, ",") != "a" || ev.Bytes != 7 || ev.Snapshot != snaps[1].Manifest.ID || !ev.Time.IsZero() {
		t.Errorf("partial: %+v", ev)
	}
	ev = RestoreAuditEvent(snaps[0], nil, "/srv/restore", errors.New("x"))
	if ev.Outcome != observe.OutcomeFailure || len(ev.Sources) != 0 {
		t.Errorf("failure: %+v", ev)
	}
}

func TestVerifyWithProgress(t *testing.T) {
	d, snaps := backedUp(t)
	prog := newRecordingProgress()
	r := VerifyWithProgress(context.Background(), d, snaps[0], plainKeys(), prog)
	item := "verify web/a @ disk"
	if r.Err != nil || r.Objects == 0 || prog.added[item] != dataSize(snaps[0].Manifest) {
		t.Errorf("verify %+v; progress %d of %d bytes", r, prog.added[item], dataSize(snaps[0].Manifest))
	}
	if r := VerifyWithProgress(context.Background(), d, snaps[1], plainKeys(), nil); r.Err != nil {
		t.Errorf("without progress: %v", r.Err)
	}
}
