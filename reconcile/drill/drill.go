package drill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/reconcile/atomicfile"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// Options say where a drill runs and what it may use.
type Options struct {
	// Host is this host's name: a drill restores this host's snapshots.
	Host     string
	StateDir string
	// LogDir receives the JSON report, under drills/.
	LogDir string
	Keys   *snapshot.KeyRing
	// Open opens a destination of the policy by name; the drill closes it
	// and reads it through ReadOnly.
	Open func(ctx context.Context, name string) (drivers.Destination, error)
	// Source limits the drill to one source.
	Source string
	Now    func() time.Time
	// Rand feeds the sample and the temporary database names.
	Rand   io.Reader
	Logger *slog.Logger
}

// Report is the JSON evidence a drill leaves in the log directory.
type Report struct {
	v1.DrillResult
	// Files lists every file restored to disk and what was found of it.
	Files map[string][]FileEvidence `json:"files,omitempty"`
}

// runner is one drill of one policy.
type runner struct {
	policy      *v1.BackupPolicy
	opts        Options
	log         *slog.Logger
	journal     *journal
	scratch     string
	seed        []byte
	sourceStart time.Time
	report      Report
	closers     []func() error
}

// Run drills policy p now: for each source (of spec.drills.sources, or
// opts.Source, or all), it restores the newest snapshot of this host and
// checks it, one source after the other, within the drill's timeout. The
// result is returned, written as a JSON report and never nil; err is set
// when the drill did not succeed.
func Run(ctx context.Context, p *v1.BackupPolicy, opts Options) (*v1.DrillResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &runner{policy: p, opts: opts, log: opts.Logger.With("policy", p.Metadata.Name, "action", "drill")}
	start := opts.Now()
	r.report.DrillResult = v1.DrillResult{ID: v1.NewSnapshotID(start), Policy: p.Metadata.Name, Host: opts.Host, StartTime: start, Result: v1.ResultFailed}
	res := &r.report.DrillResult
	err := r.run(ctx)
	res.Duration = opts.Now().Sub(start).Round(time.Millisecond).String()
	res.Result = overall(res.Sources, err)
	if err == nil && res.Result != v1.ResultSucceeded {
		err = errors.New(sourceErrors(res.Sources))
	}
	if err != nil {
		res.Error = err.Error()
	}
	res.MeasuredRTO = totalRTO(res.Sources)
	if werr := r.writeReport(); werr != nil {
		r.log.Error("write drill report", "err", werr)
		err = errors.Join(err, werr)
	}
	if err != nil {
		return res, fmt.Errorf("drill of policy %s: %w", p.Metadata.Name, err)
	}
	return res, nil
}

// run takes the lock, cleans up after an earlier drill, makes the scratch
// directory and drills each source.
func (r *runner) run(ctx context.Context) error {
	timeout := v1.DefaultDrillTimeout
	if d := r.policy.Spec.Drills; d != nil {
		timeout = d.DrillTimeout()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sources, err := r.sources()
	if err != nil {
		return err
	}
	l, err := lock(r.opts.StateDir)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := cleanupLocked(ctx, r.opts.StateDir, r.log); err != nil {
		return err
	}
	r.seed = make([]byte, 16)
	if _, err := io.ReadFull(r.opts.Rand, r.seed); err != nil {
		return fmt.Errorf("random sample seed: %w", err)
	}
	dir := filepath.Join(r.opts.StateDir, dirName)
	r.journal = &journal{path: filepath.Join(dir, journalName), body: journalBody{Policy: r.policy.Metadata.Name}}
	r.scratch = filepath.Join(dir, scratchName, r.policy.Metadata.Name+"-"+hex.EncodeToString(r.seed[:4]))
	if err := r.journal.setScratch(r.scratch); err != nil {
		return err
	}
	defer r.finish()
	defer func() {
		for _, c := range r.closers {
			_ = c()
		}
	}()
	if err := os.MkdirAll(r.scratch, 0o700); err != nil {
		return fmt.Errorf("cannot make the scratch directory: %w", err)
	}
	snaps, err := r.newest(ctx)
	if err != nil {
		return err
	}
	for _, src := range sources {
		r.report.Sources = append(r.report.Sources, r.source(ctx, src, snaps[src.Name]))
	}
	return nil
}

// finish removes the scratch directory and, once nothing is left, the
// journal.
func (r *runner) finish() {
	if err := os.RemoveAll(filepath.Join(r.opts.StateDir, dirName, scratchName)); err != nil {
		r.log.Error("remove scratch directory", "dir", r.scratch, "err", err)
		return
	}
	if len(r.journal.body.Databases) == 0 {
		_ = os.Remove(r.journal.path)
	}
}

// sources returns the sources to drill.
func (r *runner) sources() ([]v1.Source, error) {
	var only []string
	if d := r.policy.Spec.Drills; d != nil {
		only = d.Sources
	}
	if r.opts.Source != "" {
		only = []string{r.opts.Source}
	}
	var out []v1.Source
	for _, s := range r.policy.Spec.Sources {
		if len(only) == 0 || contains(only, s.Name) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("policy has no source %q", r.opts.Source)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// located is a snapshot and the destination it is read from.
type located struct {
	snap snapshot.Snapshot
	dest drivers.Destination
}

// newest finds the newest snapshot of each source of this host, on the
// first destination (in the policy's order) that holds it.
func (r *runner) newest(ctx context.Context) (map[string]located, error) {
	out := map[string]located{}
	var errs []error
	for _, name := range r.policy.Spec.Destinations {
		d, err := r.opts.Open(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("open destination %s: %w", name, err))
			continue
		}
		ro := ReadOnly(d)
		snaps, bad, err := snapshot.ListSnapshotsLenient(ctx, ro, name, r.policy.Metadata.Name)
		for _, b := range bad {
			r.log.Warn("skipped a snapshot", "err", b)
		}
		if err != nil {
			errs = append(errs, err)
			d.Close()
			continue
		}
		for _, s := range snaps {
			m := s.Manifest
			if m.Host == r.opts.Host && m.ID > out[m.Source].id() {
				out[m.Source] = located{snap: s, dest: ro}
			}
		}
		r.closers = append(r.closers, d.Close)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (l located) id() string {
	if l.snap.Manifest == nil {
		return ""
	}
	return l.snap.Manifest.ID
}

// source drills one source and returns its result.
func (r *runner) source(ctx context.Context, src v1.Source, loc located) v1.DrillSourceResult {
	res := v1.DrillSourceResult{Name: src.Name, Kind: src.Driver(), Result: v1.ResultFailed}
	if loc.snap.Manifest == nil {
		res.Error = "no snapshot of this source on any destination"
		return res
	}
	m := loc.snap.Manifest
	res.SnapshotID, res.SnapshotTime, res.Destination = m.ID, m.Time, loc.snap.Destination
	for _, ob := range m.Objects {
		res.RawBytes += ob.RawSize
	}
	r.sourceStart = r.opts.Now()
	log := r.log.With("source", src.Name, "snapshot", m.ID, "destination", loc.snap.Destination)
	log.Info("drill started")
	dir := filepath.Join(r.scratch, src.Name)
	err := r.restore(ctx, src, loc, dir, &res)
	if rerr := os.RemoveAll(dir); err == nil && rerr != nil {
		err = fmt.Errorf("remove scratch directory: %w", rerr)
	}
	if res.RestoreDuration == "" {
		res.RestoreDuration = r.opts.Now().Sub(r.sourceStart).Round(time.Millisecond).String()
	}
	if err != nil {
		res.Error = err.Error()
		log.Error("drill failed", "err", err)
		return res
	}
	res.Result = v1.ResultSucceeded
	log.Info("drill succeeded", "files", res.Files, "restored", res.FilesRestored, "compared", res.LiveCompared, "databases", len(res.Databases))
	return res
}

// restore restores one snapshot into scratch space (or a temporary
// database) and checks it.
func (r *runner) restore(ctx context.Context, src v1.Source, loc located, dir string, res *v1.DrillSourceResult) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot make the scratch directory: %w", err)
	}
	if _, ok := dbKinds[src.Driver()]; ok {
		if _, err := snapshot.Restore(ctx, loc.dest, loc.snap, snapshot.RestoreOptions{Target: r.scratch, Keys: r.opts.Keys, Logger: r.log}); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return r.drillDatabases(ctx, src, loc.snap.Manifest, dir, res)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	sample := 1.0
	if d := r.policy.Spec.Drills; d != nil {
		sample = d.SampleFraction()
	}
	tc := &tarCheck{root: root, seed: r.seed, sample: sample, snapTime: loc.snap.Manifest.Time, res: res,
		live: src.Files != nil || src.System != nil}
	_, err = snapshot.Restore(ctx, loc.dest, loc.snap, snapshot.RestoreOptions{Keys: r.opts.Keys, Logger: r.log,
		Unpack: func(ctx context.Context, ob v1.SnapshotObject, rd io.Reader) (files.ExtractStats, error) {
			return tc.unpack(ctx, ob, rd)
		}})
	elapsed := r.opts.Now().Sub(r.sourceStart)
	res.RestoreDuration = elapsed.Round(time.Millisecond).String()
	res.MeasuredRTO = scaleRTO(elapsed, tc.writeTime, res.BytesRestored, tc.tarBytes).String()
	if r.report.Files == nil {
		r.report.Files = map[string][]FileEvidence{}
	}
	r.report.Files[src.Name] = tc.evidence
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// writeReport writes the JSON report into LOG_DIR/drills/.
func (r *runner) writeReport() error {
	dir := filepath.Join(r.opts.LogDir, "drills")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	name := filepath.Join(dir, r.policy.Metadata.Name+"-"+r.report.ID+".json")
	r.report.Report = name
	b, err := json.MarshalIndent(r.report, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(name, append(b, '\n'), 0o640)
}
