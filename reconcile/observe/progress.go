package observe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// Progress hears how far a long operation got: a backup reports the bytes
// each source produced and each destination received; restore and verify
// the bytes read back. Items are named like "source site" or "→ disk". A
// total of 0 means unknown. Implementations must be safe for concurrent
// use: the sources of a run go in parallel.
type Progress interface {
	Begin(item string, total int64)
	Add(item string, n int64)
	End(item string, err error)
}

// Item names used by backups.
func SourceItem(name string) string { return "source " + name }
func DestItem(name string) string   { return "→ " + name }

// noProgress is the Progress of a run nobody watches.
type noProgress struct{}

func (noProgress) Begin(string, int64) {}
func (noProgress) Add(string, int64)   {}
func (noProgress) End(string, error)   {}

// MultiProgress reports to every p that is not nil.
func MultiProgress(ps ...Progress) Progress {
	var out multiProgress
	for _, p := range ps {
		if p != nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return noProgress{}
	}
	return out
}

type multiProgress []Progress

func (m multiProgress) Begin(item string, total int64) {
	for _, p := range m {
		p.Begin(item, total)
	}
}
func (m multiProgress) Add(item string, n int64) {
	for _, p := range m {
		p.Add(item, n)
	}
}
func (m multiProgress) End(item string, err error) {
	for _, p := range m {
		p.End(item, err)
	}
}

// WithEstimates fills in the unknown totals of a backup's items from the
// policy's previous run, so that a progress bar can show an ETA.
func WithEstimates(p Progress, last *v1.RunResult) Progress {
	if last == nil {
		return p
	}
	est := map[string]int64{}
	for _, s := range last.Sources {
		if s.Result == v1.ResultSucceeded {
			est[SourceItem(s.Name)] = s.BytesRead
		}
	}
	for _, d := range last.Destinations {
		if d.Result == v1.ResultSucceeded {
			est[DestItem(d.Name)] = d.Bytes
		}
	}
	return estimating{p, est}
}

type estimating struct {
	Progress
	est map[string]int64
}

func (e estimating) Begin(item string, total int64) {
	if total == 0 {
		total = e.est[item]
	}
	e.Progress.Begin(item, total)
}

// progressWriter counts the raw bytes a source writes into its objects.
type progressWriter struct {
	w    drivers.ObjectWriter
	p    Progress
	item string
}

func (pw progressWriter) Create(ctx context.Context, name, format string) (io.WriteCloser, error) {
	wc, err := pw.w.Create(ctx, name, format)
	if err != nil {
		return nil, err
	}
	return &countingWriteCloser{wc, pw.p, pw.item}, nil
}

type countingWriteCloser struct {
	io.WriteCloser
	p    Progress
	item string
}

func (c *countingWriteCloser) Write(b []byte) (int, error) {
	n, err := c.WriteCloser.Write(b)
	c.p.Add(c.item, int64(n))
	return n, err
}

// Boundary passes a chunk boundary on (drivers.Boundary).
func (c *countingWriteCloser) Boundary() error {
	if b, ok := c.WriteCloser.(drivers.Boundary); ok {
		return b.Boundary()
	}
	return nil
}

// CloseWithError passes an abandoned object on, so that it is dropped
// rather than stored truncated.
func (c *countingWriteCloser) CloseWithError(err error) error {
	if cw, ok := c.WriteCloser.(interface{ CloseWithError(error) error }); ok {
		return cw.CloseWithError(err)
	}
	return c.WriteCloser.Close()
}

// ProgressDestination counts the bytes a destination receives (Put) or
// gives (Get, GetRange) as item.
func ProgressDestination(d drivers.Destination, p Progress, item string) drivers.Destination {
	return &progressDest{Destination: d, p: p, item: item}
}

type progressDest struct {
	drivers.Destination
	p    Progress
	item string
}

func (d *progressDest) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	return d.Destination.Put(ctx, key, &countingReader{r: r, p: d.p, item: d.item})
}

func (d *progressDest) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := d.Destination.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{ReadCloser: rc, p: d.p, item: d.item}, nil
}

func (d *progressDest) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := d.Destination.GetRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{ReadCloser: rc, p: d.p, item: d.item}, nil
}

type countingReader struct {
	r    io.Reader
	p    Progress
	item string
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Add(c.item, int64(n))
	return n, err
}

type countingReadCloser struct {
	io.ReadCloser
	p    Progress
	item string
}

func (c *countingReadCloser) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.p.Add(c.item, int64(n))
	return n, err
}

// ProgressLogInterval is how often a long run logs how far it got.
const ProgressLogInterval = time.Minute

// ProgressLog is a Progress that writes, every interval, one log line per
// item still going: bytes so far, rate, and the expected total and ETA when
// known. A run shorter than the interval logs nothing. Tick drives it: the
// caller's ticker in production, the test directly.
type ProgressLog struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	mu    sync.Mutex
	start time.Time
	last  time.Time
	items map[string]*progressItem
}

type progressItem struct {
	total, done int64
	start       time.Time
	lastDone    int64
	ended       bool
}

func NewProgressLog(log *slog.Logger, now func() time.Time, interval time.Duration) *ProgressLog {
	t := now()
	return &ProgressLog{log: log, now: now, interval: interval, start: t, last: t, items: map[string]*progressItem{}}
}

func (l *ProgressLog) Begin(item string, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items[item] = &progressItem{total: total, start: l.now()}
}

func (l *ProgressLog) Add(item string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if it := l.items[item]; it != nil {
		it.done += n
	}
}

func (l *ProgressLog) End(item string, _ error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if it := l.items[item]; it != nil {
		it.ended = true
	}
}

// Tick logs a progress line per live item when interval passed since the
// last lines.
func (l *ProgressLog) Tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.last) < l.interval {
		return
	}
	since := now.Sub(l.last).Seconds()
	l.last = now
	names := make([]string, 0, len(l.items))
	for n, it := range l.items {
		if !it.ended {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		it := l.items[n]
		attrs := []any{"item", n, "bytes", it.done, "done", FormatBytes(it.done),
			"rate", FormatBytes(int64(float64(it.done-it.lastDone)/since)) + "/s",
			"elapsed", now.Sub(it.start).Round(time.Second).String()}
		if it.total > 0 {
			attrs = append(attrs, "expected", FormatBytes(it.total))
			avg := float64(it.done) / now.Sub(it.start).Seconds()
			if left := it.total - it.done; left > 0 && avg > 0 {
				attrs = append(attrs, "eta", time.Duration(float64(left)/avg*float64(time.Second)).Round(time.Second).String())
			}
		}
		if it.done == it.lastDone {
			attrs = append(attrs, "stalled", fmt.Sprintf("no bytes for %s", l.interval))
		}
		it.lastDone = it.done
		l.log.Info("progress", attrs...)
	}
}

// run ticks every interval until stop is closed.
func (l *ProgressLog) Run(stop <-chan struct{}) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			l.Tick()
		}
	}
}

// progressKey carries a run's Progress in its context, down to the
// destinations and sources of the pipeline.
type progressKey struct{}

func WithProgress(ctx context.Context, p Progress) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, p)
}

func ProgressFrom(ctx context.Context) Progress {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok {
		return p
	}
	return noProgress{}
}

// TrackDest reports the bytes stored on a destination to the run's
// Progress.
func TrackDest(ctx context.Context, d drivers.Destination, name string) drivers.Destination {
	p := ProgressFrom(ctx)
	if _, none := p.(noProgress); none {
		return d
	}
	p.Begin(DestItem(name), 0)
	return ProgressDestination(d, p, DestItem(name))
}

// TrackSource reports the raw bytes a source produces to the run's
// Progress.
func TrackSource(ctx context.Context, w drivers.ObjectWriter, name string) drivers.ObjectWriter {
	p := ProgressFrom(ctx)
	if _, none := p.(noProgress); none {
		return w
	}
	p.Begin(SourceItem(name), 0)
	return progressWriter{w: w, p: p, item: SourceItem(name)}
}
