package snapshot

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// recordingProgress keeps what a run reports.
type recordingProgress struct {
	mu    sync.Mutex
	added map[string]int64
	ended map[string]error
}

func newRecordingProgress() *recordingProgress {
	return &recordingProgress{added: map[string]int64{}, ended: map[string]error{}}
}

func (r *recordingProgress) Begin(string, int64) {}
func (r *recordingProgress) Add(item string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.added[item] += n
}
func (r *recordingProgress) End(item string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended[item] = err
}

// TestBackupReportsProgress runs a real backup with a Progress and checks
// that every source and destination is reported, with the bytes the result
// records.
func TestBackupReportsProgress(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("data "), 10000), 0o644)
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}, Spec: v1.BackupPolicySpec{
		Schedule: "@daily",
		Sources: []v1.Source{
			{Name: "a", Files: &v1.FilesSource{Paths: []string{src}}},
			{Name: "b", Files: &v1.FilesSource{Paths: []string{src}}},
		},
		Destinations: []string{"one", "two"},
		Encryption:   &v1.Encryption{None: true},
	}}
	dests := map[string]*v1.Destination{}
	for _, n := range p.Spec.Destinations {
		dests[n] = &v1.Destination{Metadata: v1.ObjectMeta{Name: n}, Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: filepath.Join(dir, n)}}}
	}
	rec := newRecordingProgress()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &Runner{Host: "h", Now: time.Now}
	res := r.Backup(context.Background(), log, BackupRequest{Policy: p, Destinations: dests, Progress: rec})
	if res.Result != v1.ResultSucceeded {
		t.Fatalf("result %+v", res)
	}
	for _, s := range res.Sources {
		if got := rec.added[observe.SourceItem(s.Name)]; got < s.BytesRead {
			t.Errorf("source %s: progress %d bytes, the result read %d", s.Name, got, s.BytesRead)
		}
		if _, ok := rec.ended[observe.SourceItem(s.Name)]; !ok {
			t.Errorf("source %s never ended", s.Name)
		}
	}
	for _, d := range res.Destinations {
		if got := rec.added[observe.DestItem(d.Name)]; got != d.Bytes {
			t.Errorf("destination %s: progress %d bytes, the result stored %d", d.Name, got, d.Bytes)
		}
	}
}
