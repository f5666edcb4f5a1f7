package observe

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/local"
)

func TestProgressLogLinesEveryInterval(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	pl := NewProgressLog(log, func() time.Time { return now }, time.Minute)
	pl.Begin("source site", 600<<20)
	pl.Begin("→ disk", 0)

	pl.Add("source site", 10<<20)
	now = now.Add(30 * time.Second)
	pl.Tick()
	if buf.Len() != 0 {
		t.Fatalf("a run shorter than the interval logged progress:\n%s", buf.String())
	}
	now = now.Add(30 * time.Second)
	pl.Add("source site", 50<<20)
	pl.Add("→ disk", 20<<20)
	pl.Tick()
	want := []string{
		`level=INFO msg=progress item="source site" bytes=62914560 done="60.0 MiB" rate="1.0 MiB/s" elapsed=1m0s expected="600.0 MiB" eta=9m0s`,
		`level=INFO msg=progress item="→ disk" bytes=20971520 done="20.0 MiB" rate="341.3 KiB/s" elapsed=1m0s`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress lines:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
	}

	// The destination stalls; the source ends and is no longer reported.
	buf.Reset()
	pl.End("source site", nil)
	now = now.Add(time.Minute)
	pl.Tick()
	if out := buf.String(); strings.Contains(out, "source site") || !strings.Contains(out, `stalled="no bytes for 1m0s"`) {
		t.Errorf("after a minute without bytes:\n%s", out)
	}
}

// recordingProgress keeps what it hears.
type recordingProgress struct {
	mu    sync.Mutex
	begun map[string]int64
	added map[string]int64
	ended map[string]error
	order []string
}

func newRecordingProgress() *recordingProgress {
	return &recordingProgress{begun: map[string]int64{}, added: map[string]int64{}, ended: map[string]error{}}
}

func (r *recordingProgress) Begin(item string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.begun[item] = total
	r.order = append(r.order, "begin "+item)
}
func (r *recordingProgress) Add(item string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.added[item] += n
}
func (r *recordingProgress) End(item string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended[item] = err
	r.order = append(r.order, "end "+item)
}

func TestEstimatesComeFromTheLastRun(t *testing.T) {
	rec := newRecordingProgress()
	last := &v1.RunResult{
		Sources:      []v1.SourceResult{{Name: "site", Result: v1.ResultSucceeded, BytesRead: 1000}, {Name: "db", Result: v1.ResultFailed, BytesRead: 5}},
		Destinations: []v1.DestinationResult{{Name: "disk", Result: v1.ResultSucceeded, Bytes: 400}},
	}
	p := WithEstimates(rec, last)
	p.Begin(SourceItem("site"), 0)
	p.Begin(SourceItem("db"), 0)
	p.Begin(DestItem("disk"), 0)
	p.Begin("restore x", 77)
	for item, want := range map[string]int64{"source site": 1000, "source db": 0, "→ disk": 400, "restore x": 77} {
		if rec.begun[item] != want {
			t.Errorf("total of %s = %d, want %d", item, rec.begun[item], want)
		}
	}
}

func TestProgressDestinationCountsBothWays(t *testing.T) {
	rec := newRecordingProgress()
	d := ProgressDestination(local.New(t.TempDir()), rec, "disk")
	ctx := context.Background()
	if _, err := d.Put(ctx, "a/b", strings.NewReader(strings.Repeat("x", 5000))); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Get(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if rec.added["disk"] != 10000 {
		t.Errorf("counted %d bytes, want 5000 put + 5000 got", rec.added["disk"])
	}
}

type discardCloser struct{}

func (discardCloser) Write(p []byte) (int, error) { return len(p), nil }
func (discardCloser) Close() error                { return nil }

// BenchmarkProgressAccounting is the cost the progress of every run adds
// to each 32 KiB written by a source (the counting writer and the progress
// log's lock).
func BenchmarkProgressAccounting(b *testing.B) {
	pl := NewProgressLog(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, time.Minute)
	p := WithEstimates(MultiProgress(pl), nil)
	p.Begin("source s", 0)
	w := &countingWriteCloser{WriteCloser: discardCloser{}, p: p, item: "source s"}
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		w.Write(buf)
	}
}
