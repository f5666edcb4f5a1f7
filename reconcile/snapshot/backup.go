package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/ratelimit"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile/dedup"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// BackupRequest is one run of a policy.
type BackupRequest struct {
	Policy       *v1.BackupPolicy
	Destinations map[string]*v1.Destination
	// Source limits the run to one source; empty means all.
	Source        string
	ScheduledTime time.Time
	// observe.Progress hears the bytes each source produces and each destination
	// receives; nil for none.
	Progress observe.Progress
}

// Runner performs backups. It holds no per-run state.
type Runner struct {
	Host string
	Now  func() time.Time
	// SourceConcurrency bounds how many sources of one policy run at once.
	SourceConcurrency int
	// StallTimeout is how long a destination may take no data before it
	// drops out of the run (Failed, named), so that the others finish at
	// full speed (default DefaultStallTimeout).
	StallTimeout time.Duration
	// StateDir keeps each policy's dedup key (STATE/dedup/POLICY.key) for
	// deduplicated storage outside openssl mode.
	StateDir string
}

// DefaultStallTimeout is the default Runner.StallTimeout.
const DefaultStallTimeout = 2 * time.Minute

// Backup runs req and returns its result; it never panics on bad input and
// publishes nothing partial: a source's snapshot is committed on a
// destination only when every one of its objects was stored there. The
// policy's and the sources' hooks run around it (hooks.go).
func (r *Runner) Backup(ctx context.Context, log *slog.Logger, req BackupRequest) *v1.RunResult {
	return r.backupWithHooks(ctx, log, req, func() *v1.RunResult { return r.backup(ctx, log, req) })
}

func (r *Runner) backup(ctx context.Context, log *slog.Logger, req BackupRequest) *v1.RunResult {
	ctx = observe.WithProgress(ctx, req.Progress)
	p := req.Policy
	start := r.Now()
	id := v1.NewSnapshotID(start)
	res := &v1.RunResult{SnapshotID: id, StartTime: start}
	log = log.With("policy", p.Metadata.Name, "snapshot", id)
	log.Info("backup started", "scheduled", req.ScheduledTime)

	fail := func(err error) *v1.RunResult {
		for _, s := range p.Spec.Sources {
			if req.Source == "" || s.Name == req.Source {
				res.Sources = append(res.Sources, v1.SourceResult{Name: s.Name, Result: v1.ResultFailed, Error: err.Error()})
			}
		}
		res.Result = v1.ResultFailed
		res.Duration = r.Now().Sub(start).Round(time.Millisecond).String()
		log.Error("backup failed", "err", err)
		return res
	}

	c, err := newCodec(p)
	if err != nil {
		return fail(err)
	}
	if c.encryption == "none" {
		log.Warn("encryption is off for this policy (spec.encryption.none: true): snapshots are stored in clear")
	}

	dests, destRes, closeDests := openDestinations(ctx, log, p, req.Destinations, cmp.Or(r.StallTimeout, DefaultStallTimeout))
	defer closeDests()
	for range p.Spec.Destinations {
		res.Destinations = append(res.Destinations, v1.DestinationResult{})
	}

	var sources []v1.Source
	for _, s := range p.Spec.Sources {
		if req.Source == "" || s.Name == req.Source {
			sources = append(sources, s)
		}
	}
	if len(sources) == 0 {
		return fail(fmt.Errorf("policy %s has no source named %q", p.Metadata.Name, req.Source))
	}
	results := r.backupSources(ctx, log, p, c, id, start, sources, dests, destRes)

	res.Sources = results
	for i, name := range p.Spec.Destinations {
		res.Destinations[i] = *destRes[name]
		if res.Destinations[i].Duration == "" {
			res.Destinations[i].Duration = "0s"
		}
	}
	res.Result = summarize(res)
	if ctx.Err() != nil && res.Result != v1.ResultSucceeded {
		markInterrupted(res)
	}
	res.Duration = r.Now().Sub(start).Round(time.Millisecond).String()
	log.Info("backup finished", "result", res.Result, "duration", res.Duration)
	return res
}

// openDestinations opens and checks each of the policy's destinations once
// per run. It returns the usable ones, a result for every one (failed for
// those not usable) and a function that closes them.
func openDestinations(ctx context.Context, log *slog.Logger, p *v1.BackupPolicy, specs map[string]*v1.Destination, stall time.Duration) ([]openDest, map[string]*v1.DestinationResult, func()) {
	var dests []openDest
	var closers []func() error
	destRes := map[string]*v1.DestinationResult{}
	for _, name := range p.Spec.Destinations {
		dr := &v1.DestinationResult{Name: name, Result: v1.ResultSucceeded}
		destRes[name] = dr
		spec, ok := specs[name]
		if !ok {
			dr.Result, dr.Error = v1.ResultFailed, fmt.Sprintf("destination %q not found", name)
			continue
		}
		d, err := registry.Destination(spec, registry.Options{Logger: log})
		if err != nil {
			dr.Result, dr.Error = v1.ResultFailed, err.Error()
			continue
		}
		closers = append(closers, d.Close)
		if limit := ratelimit.Describe(d); limit != "" {
			log.Info("bandwidth limit", "destination", name, "limit", limit)
		}
		// A destination that does not answer its check within the stall
		// timeout is as stalled as one that stops taking data.
		cctx, cancel := context.WithTimeout(ctx, stall)
		err = d.Check(cctx)
		cancel()
		if err != nil {
			dr.Result, dr.Error = v1.ResultFailed, fmt.Sprintf("destination %s is not usable: %v", name, err)
			log.Error("destination check failed", "destination", name, "err", err)
			continue
		}
		dests = append(dests, openDest{name, observe.TrackDest(ctx, d, name)})
	}
	return dests, destRes, func() {
		for _, c := range closers {
			c()
		}
	}
}

// backupSources backs up the sources, at most SourceConcurrency at once,
// each independent of the others (one failing cancels none), and adds what
// each stored to the destinations' results.
func (r *Runner) backupSources(ctx context.Context, log *slog.Logger, p *v1.BackupPolicy, c *codec, id string, start time.Time,
	sources []v1.Source, dests []openDest, destRes map[string]*v1.DestinationResult) []v1.SourceResult {
	results := make([]v1.SourceResult, len(sources))
	var mu sync.Mutex
	var g errgroup.Group
	limit := r.SourceConcurrency
	if limit <= 0 {
		limit = 2
	}
	g.SetLimit(limit)
	for i, src := range sources {
		g.Go(func() error {
			sr, targets := r.sourceWithHooks(ctx, log, p, id, src, func() (v1.SourceResult, []*target) {
				return r.backupSource(ctx, log, p, c, id, start, src, dests)
			})
			mu.Lock()
			defer mu.Unlock()
			results[i] = sr
			for _, t := range targets {
				dr := destRes[t.name]
				dr.Bytes += t.bytes
				dr.Duration = addDuration(dr.Duration, t.busy)
				if t.err != nil && dr.Error == "" {
					dr.Result, dr.Error = v1.ResultFailed, fmt.Sprintf("source %s: %v", src.Name, t.err)
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	return results
}

// interruptedMessage replaces the "context canceled" of a run cut short by
// a stop: it says what happened and what comes next.
const interruptedMessage = "interrupted: the agent was stopped before this finished; nothing of it was published, and it runs again when the agent starts"

// markInterrupted turns a run that failed because its context ended (the
// agent was stopped) into an Interrupted one.
func markInterrupted(res *v1.RunResult) {
	res.Result = v1.ResultInterrupted
	for i := range res.Sources {
		if res.Sources[i].Result != v1.ResultSucceeded {
			res.Sources[i].Result, res.Sources[i].Error = v1.ResultInterrupted, interruptedMessage
		}
	}
	for i := range res.Destinations {
		if res.Destinations[i].Result != v1.ResultSucceeded {
			res.Destinations[i].Result, res.Destinations[i].Error = v1.ResultInterrupted, interruptedMessage
		}
	}
}

func addDuration(s string, d time.Duration) string {
	prev, _ := time.ParseDuration(s)
	return (prev + d).Round(time.Millisecond).String()
}

// summarize: Succeeded when every source reached every destination, Failed
// when nothing was published anywhere, PartiallyFailed otherwise.
func summarize(res *v1.RunResult) string {
	okSources, okDests := 0, 0
	for _, s := range res.Sources {
		if s.Result == v1.ResultSucceeded {
			okSources++
		}
	}
	for _, d := range res.Destinations {
		if d.Result == v1.ResultSucceeded {
			okDests++
		}
	}
	switch {
	case okSources == len(res.Sources) && okDests == len(res.Destinations):
		return v1.ResultSucceeded
	case okSources == 0 || okDests == 0:
		return v1.ResultFailed
	}
	return v1.ResultPartiallyFailed
}

// openDest is a destination checked at the start of a run.
type openDest struct {
	name string
	d    drivers.Destination
}

// runSource streams the source into sw (archive) or through the dedup
// writer into the policy's repository (deduplicated).
func (r *Runner) runSource(ctx context.Context, log *slog.Logger, p *v1.BackupPolicy, c *codec, sw *snapshotWriter, drv drivers.Source, name string) (drivers.SourceStats, dedup.Stats, error) {
	track := func(w drivers.ObjectWriter) drivers.ObjectWriter { return observe.TrackSource(ctx, w, name) }
	var stats drivers.SourceStats
	var ds dedup.Stats
	var err error
	if p.Spec.StorageKind() == v1.StorageDeduplicated {
		stats, ds, err = r.dedupBackup(ctx, log, c, sw, drv, track)
	} else {
		stats, err = drv.Backup(ctx, track(sw))
	}
	observe.ProgressFrom(ctx).End(observe.SourceItem(name), err)
	return stats, ds, err
}

// backupSource streams one source to every usable destination.
func (r *Runner) backupSource(ctx context.Context, log *slog.Logger, p *v1.BackupPolicy, c *codec, id string, start time.Time, src v1.Source, dests []openDest) (v1.SourceResult, []*target) {
	log = log.With("source", src.Name)
	t0 := r.Now()
	sr := v1.SourceResult{Name: src.Name, Result: v1.ResultFailed}
	finish := func(err error) v1.SourceResult {
		sr.Duration = r.Now().Sub(t0).Round(time.Millisecond).String()
		if err != nil {
			sr.Result, sr.Error = v1.ResultFailed, err.Error()
			log.Error("source failed", "err", err)
		}
		return sr
	}
	drv, err := registry.Source(src, registry.Options{Logger: log})
	if err != nil {
		return finish(err), nil
	}
	if len(dests) == 0 {
		return finish(errors.New("no destination is usable")), nil
	}
	targets := make([]*target, len(dests))
	for i, d := range dests {
		targets[i] = &target{name: d.name, dest: d.d}
	}
	sw := newSnapshotWriter(c, v1.SnapshotManifest{
		FormatVersion: v1.ArchiveFormatVersion,
		ID:            id,
		Time:          start.UTC(),
		Host:          r.Host,
		Policy:        p.Metadata.Name,
		Source:        src.Name,
		SourceKind:    src.Driver(),
		Agent:         "aegis-agent " + observe.Version,
	}, targets)
	sw.stall = cmp.Or(r.StallTimeout, DefaultStallTimeout)

	log.Info("source started", "driver", src.Driver(), "storage", p.Spec.StorageKind())
	stats, ds, err := r.runSource(ctx, log, p, c, sw, drv, src.Name)
	sr.Storage = p.Spec.StorageKind()
	if sr.Storage == v1.StorageDeduplicated {
		setDedupResult(&sr, ds)
		sw.manifest.NewBytes = ds.NewRawBytes
	}
	sr.Files, sr.BytesRead, sr.Warnings, sr.Meta = stats.Files, stats.BytesRead, stats.Warnings, stats.Meta
	for _, w := range stats.Warnings {
		log.Warn("source warning", "warning", w)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		sw.rollback(ctx, log)
		return finish(fmt.Errorf("back up source %s: %w", src.Name, err)), targets
	}
	m := &sw.manifest
	m.Files, m.BytesRead, m.Warnings, m.Meta = stats.Files, stats.BytesRead, stats.Warnings, stats.Meta
	m.Duration = r.Now().Sub(t0).Round(time.Millisecond).String()
	sw.commit(ctx)
	// A destination that failed on the way keeps no data of this snapshot.
	published := 0
	for _, t := range targets {
		if t.err != nil {
			t.cleanupFailed(ctx, m.ManifestKey(), log)
			continue
		}
		published++
		sr.Bytes = t.bytes
	}
	if published == 0 {
		return finish(sw.allFailed()), targets
	}
	sr.Result = v1.ResultSucceeded
	log.Info("source finished", "files", sr.Files, "bytes_read", sr.BytesRead, "bytes_stored", sr.Bytes, "warnings", len(sr.Warnings))
	return finish(nil), targets
}
