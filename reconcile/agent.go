package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// Options configure an Agent.
type Options struct {
	ConfigDir string
	StateDir  string
	LogDir    string
	// StatusDir holds the sidecars; empty means beside each manifest.
	StatusDir string
	Host      string
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxConcurrentRuns bounds how many policies run at once (default 2).
	MaxConcurrentRuns int
	// SourceConcurrency bounds how many sources of one policy run at once
	// (default 2).
	SourceConcurrency int
	// RetryAfter is how long the agent waits after a failed run before
	// trying again (default 5m). --once retries at once.
	RetryAfter time.Duration
	// Debounce is how long the agent waits for manifest edits to settle.
	Debounce time.Duration
	// StallTimeout is how long a destination may take no data before it
	// drops out of a run (default snapshot.DefaultStallTimeout).
	StallTimeout time.Duration
	// Observe configures metrics, audit, notifications and progress.
	Observe ObserveOptions
	// KeysDir holds the identities restore drills decrypt with.
	KeysDir string
}

// Agent reconciles the manifests of a config directory with what has run.
type Agent struct {
	opts   Options
	log    *slog.Logger
	store  *Store
	runner *snapshot.Runner
	sem    chan struct{}
	obs    *observer
	// drillSem lets one restore drill run at a time.
	drillSem chan struct{}

	mu        sync.Mutex
	running   map[string]bool
	lastValid map[string]*v1.Object // by Kind/name: the last valid version seen
	// busyElsewhere: policies another process held the lock of, until when
	// the agent leaves them alone.
	busyElsewhere map[string]time.Time
	wg            sync.WaitGroup
}

// New returns an agent; it touches nothing until used.
func New(opts Options) (*Agent, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxConcurrentRuns <= 0 {
		opts.MaxConcurrentRuns = 2
	}
	if opts.RetryAfter == 0 {
		opts.RetryAfter = 5 * time.Minute
	}
	if opts.Debounce == 0 {
		opts.Debounce = 500 * time.Millisecond
	}
	if opts.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		opts.Host = h
	}
	st, err := OpenStore(opts.StateDir)
	if err != nil {
		return nil, err
	}
	return &Agent{
		opts:      opts,
		log:       opts.Logger,
		store:     st,
		runner:    &snapshot.Runner{Host: opts.Host, Now: opts.Now, SourceConcurrency: opts.SourceConcurrency, StallTimeout: opts.StallTimeout, StateDir: opts.StateDir},
		sem:       make(chan struct{}, opts.MaxConcurrentRuns),
		drillSem:  make(chan struct{}, 1),
		obs:       newObserver(opts, st),
		running:   map[string]bool{},
		lastValid: map[string]*v1.Object{},
	}, nil
}

// PassResult is what one reconcile pass saw and did.
type PassResult struct {
	Config  *Config
	Plan    Plan
	Results map[string]*v1.RunResult
	// Retention holds the retention passes run during this pass (passOnce).
	Retention map[string]*v1.RetentionResult
}

// ExitCode maps a pass to the contract's exit codes: 2 when a manifest is
// invalid, else 1 when a backup or a retention pass failed, else 0.
func (r *PassResult) ExitCode() int {
	if len(r.Config.Errors) > 0 {
		return 2
	}
	for _, res := range r.Results {
		if res.Result != v1.ResultSucceeded {
			return 1
		}
	}
	for _, res := range r.Retention {
		if res.Result != v1.ResultSucceeded {
			return 1
		}
	}
	return 0
}

// Once runs one reconcile pass and waits for every run it started.
func (a *Agent) Once(ctx context.Context) (*PassResult, error) {
	return a.pass(ctx, passOnce, nil)
}

// passMode says what a pass does besides planning and writing statuses.
type passMode int

const (
	passAsync      passMode = iota // start what is due; runs signal when they end
	passOnce                       // start what is due and wait for it
	passStatusOnly                 // start nothing
)

// desired returns the policies and destinations to act on: the valid ones,
// plus, for an object whose manifest became invalid, the last valid version
// this process saw.
func (a *Agent) desired(cfg *Config) (pols map[string]*v1.BackupPolicy, dests map[string]*v1.Destination, stale map[string]bool) {
	pols, dests = cfg.Valid()
	stale = map[string]bool{}
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for _, o := range cfg.Objects {
		key := o.Kind + "/" + o.Name
		seen[key] = true
		if len(cfg.ObjectErrors(o)) == 0 {
			a.lastValid[key] = o
			continue
		}
		if lv, ok := a.lastValid[key]; ok {
			stale[key] = true
			if lv.Policy != nil {
				pols[lv.Name] = lv.Policy
			} else if lv.Destination != nil {
				dests[lv.Name] = lv.Destination
			}
		}
	}
	// A file that no longer parses at all (a YAML syntax error) yields no
	// object: its objects keep their last valid version, as an invalid edit
	// of one object does, rather than silently stop.
	broken := map[string]bool{}
	for _, e := range cfg.Errors {
		if e.Name == "" {
			broken[e.File] = true
		}
	}
	// A removed object stops being scheduled; its backups are left alone.
	for key, lv := range a.lastValid {
		if seen[key] {
			continue
		}
		if broken[lv.File] {
			stale[key] = true
			cfg.Objects = append(cfg.Objects, lv) // so its status says why
			if lv.Policy != nil {
				pols[lv.Name] = lv.Policy
			} else if lv.Destination != nil {
				dests[lv.Name] = lv.Destination
			}
			continue
		}
		delete(a.lastValid, key)
	}
	return pols, dests, stale
}

// pass reads the manifests, plans, starts what is due and writes the
// statuses. In passOnce mode it waits for the runs it started; in passAsync
// mode each run signals ended (if not nil) when it is over.
func (a *Agent) pass(ctx context.Context, mode passMode, ended chan<- struct{}) (*PassResult, error) {
	in, err := a.observeWorld(ctx)
	if err != nil {
		return nil, err
	}
	plan := Compute(a.world(in, mode))
	res := &PassResult{Config: in.cfg, Plan: plan, Results: map[string]*v1.RunResult{}, Retention: map[string]*v1.RetentionResult{}}
	if mode != passStatusOnly {
		var wg sync.WaitGroup
		a.startRuns(ctx, &wg, plan, in, res, ended)
		if mode == passOnce {
			wg.Wait()
			a.collectRetention(in, res)
		}
	}
	if err := a.writeStatuses(in.cfg, plan, in.pols, in.dests, in.stale); err != nil {
		a.log.Error("write status", "err", err)
	}
	a.afterPass(ctx, in.cfg, plan, in.pols, in.dests, mode)
	return res, nil
}

// passInput is what a pass observed: the manifests, the desired objects
// and what the state store recorded of them.
type passInput struct {
	cfg     *Config
	pols    map[string]*v1.BackupPolicy
	dests   map[string]*v1.Destination
	stale   map[string]bool
	records map[string]ObjectRecord
	now     time.Time
}

// observeWorld reads the config directory and the state store, records
// the objects seen (and audits what changed), and seeds the schedules of
// policies the store knows nothing about.
func (a *Agent) observeWorld(ctx context.Context) (*passInput, error) {
	cfg, err := LoadConfig(a.opts.ConfigDir)
	if err != nil {
		return nil, fmt.Errorf("read config directory: %w", err)
	}
	for _, e := range cfg.Errors {
		a.log.Error("invalid manifest", "problem", e.Error())
	}
	in := &passInput{cfg: cfg}
	in.pols, in.dests, in.stale = a.desired(cfg)
	if err := a.store.Observe(cfg.Objects, cfg.IsValid); err != nil {
		return nil, err
	}
	a.auditConfig(cfg)
	if in.records, err = a.store.Records(); err != nil {
		return nil, err
	}
	if a.seed(ctx, in.pols, in.dests, in.records) {
		if in.records, err = a.store.Records(); err != nil {
			return nil, err
		}
	}
	in.now = a.opts.Now()
	return in, nil
}

// world is the planner's input: the desired policies by name, their
// records, and what runs here or in another process.
func (a *Agent) world(in *passInput, mode passMode) World {
	w := World{Records: map[string]PolicyRecord{}, Running: map[string]bool{}, Now: in.now, RetryAfter: a.opts.RetryAfter}
	if mode == passOnce {
		w.RetryAfter = 0
	}
	for _, n := range slices.Sorted(maps.Keys(in.pols)) {
		w.Policies = append(w.Policies, in.pols[n])
		w.Records[n] = in.records[v1.KindBackupPolicy+"/"+n].Policy
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, r := range a.running {
		w.Running[n] = r
	}
	for n, until := range a.busyElsewhere {
		if in.now.Before(until) {
			w.Running[n] = true
		} else {
			delete(a.busyElsewhere, n)
		}
	}
	return w
}

// startRuns starts one goroutine per policy with work in the plan, in the
// order the plan gives (a backup, then the retention due with it), each
// under the concurrency bound. Results go into res.
func (a *Agent) startRuns(ctx context.Context, wg *sync.WaitGroup, plan Plan, in *passInput, res *PassResult, ended chan<- struct{}) {
	var resMu sync.Mutex
	for _, run := range plan.Runs() {
		p := in.pols[run.Policy]
		if !a.startRun(run.Policy) {
			continue
		}
		wg.Add(1)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer wg.Done()
			defer a.endRun(run.Policy, ended)
			select {
			case a.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-a.sem }()
			r := a.runPolicy(ctx, run, p, in.dests)
			if r != nil {
				resMu.Lock()
				res.Results[run.Policy] = r
				resMu.Unlock()
			}
		}()
	}
}

// runPolicy carries out one policy's share of a plan: its backup, if due,
// then its retention, if due and the backup did not already apply it. It
// returns the backup's result (nil without a backup). A due backup that
// could not start is a failed result: --once must not exit 0 for it.
func (a *Agent) runPolicy(ctx context.Context, run PolicyRun, p *v1.BackupPolicy, dests map[string]*v1.Destination) *v1.RunResult {
	if run.Drill != nil {
		// After the backup and retention due with it.
		defer func() {
			if _, err := a.runDrill(ctx, p, dests, "", false); err != nil {
				a.log.Warn("restore drill", "policy", run.Policy, "err", err)
			}
		}()
	}
	if run.Backup == nil && run.Retention == nil {
		return nil
	}
	if run.Backup == nil {
		a.log.Info("retention due", "policy", run.Policy, "scheduled", run.Retention.ScheduledTime)
		a.runRetention(ctx, p, dests)
		return nil
	}
	act := run.Backup
	a.log.Info("backup due", "policy", act.Policy, "reason", act.Reason, "scheduled", act.ScheduledTime)
	r, err := a.execute(ctx, snapshot.BackupRequest{Policy: p, Destinations: dests, ScheduledTime: act.ScheduledTime}, false)
	if errors.Is(err, errLocked) {
		// Another process runs it: not a failure of this pass. Look
		// again in a while rather than at once, over and over.
		a.log.Info("backup not started: another aegis-agent process is running this policy", "policy", act.Policy)
		a.markBusy(act.Policy)
		return nil
	}
	if err != nil && r == nil {
		a.log.Warn("backup not started", "policy", act.Policy, "err", err)
		return &v1.RunResult{StartTime: a.opts.Now(), Result: v1.ResultFailed, Duration: "0s",
			Sources: []v1.SourceResult{{Name: "*", Result: v1.ResultFailed, Error: "not started: " + err.Error()}}}
	}
	if err != nil {
		a.log.Error("backup ran but its result could not be recorded", "policy", act.Policy, "err", err)
	}
	// execute applies retention after a successful backup; a failed one
	// leaves the due retention to run here.
	if run.Retention != nil && r.Result != v1.ResultSucceeded && r.Result != v1.ResultInterrupted {
		a.runRetention(ctx, p, dests)
	}
	return r
}

// collectRetention adds what the runs of a --once pass recorded of
// retention to res, for the exit code.
func (a *Agent) collectRetention(in *passInput, res *PassResult) {
	recs, err := a.store.Records()
	if err != nil {
		return
	}
	for name := range in.pols {
		if lr := recs[v1.KindBackupPolicy+"/"+name].LastRetention; lr != nil && !lr.Time.Before(in.now.UTC()) {
			res.Retention[name] = lr
		}
	}
}

// seed fills in the times of policies the state store knows nothing about
// from the snapshots their destinations hold, so that losing the state (or
// moving to a new host with the same name) does not trigger a needless run:
// the destinations are the truth. Each destination is listed once, under
// this host's prefix; snapshot IDs carry their time, so no manifest is
// read. It reports whether it recorded anything.
func (a *Agent) seed(ctx context.Context, pols map[string]*v1.BackupPolicy, dests map[string]*v1.Destination, records map[string]ObjectRecord) bool {
	unseeded := map[string]bool{}
	byDest := map[string]bool{}
	for name, p := range pols {
		rec := records[v1.KindBackupPolicy+"/"+name]
		if rec.Seeded || !rec.Policy.LastAttemptTime.IsZero() || !rec.Policy.LastSuccessfulTime.IsZero() {
			continue
		}
		unseeded[name] = true
		for _, dn := range p.Spec.Destinations {
			byDest[dn] = true
		}
	}
	if len(unseeded) == 0 {
		return false
	}
	newest := map[string]string{} // policy -> newest snapshot ID
	for dn := range byDest {
		d, ok := dests[dn]
		if !ok {
			continue
		}
		drv, err := registry.Destination(d, registry.Options{Logger: a.log})
		if err != nil {
			continue
		}
		objs, err := drv.List(ctx, a.opts.Host+"/")
		drv.Close()
		if err != nil {
			a.log.Warn("cannot read snapshots to seed schedules", "destination", dn, "err", err)
			continue
		}
		for _, o := range objs {
			host, pol, _, id, err := v1.ParseManifestKey(o.Key)
			if err == nil && host == a.opts.Host && unseeded[pol] && id > newest[pol] {
				newest[pol] = id
			}
		}
	}
	var names []string
	for n := range unseeded {
		names = append(names, n)
	}
	err := a.store.UpdateAll(v1.KindBackupPolicy, names, func(name string, r *ObjectRecord) {
		r.Seeded = true
		id, ok := newest[name]
		if !ok {
			return
		}
		t, err := time.Parse("20060102T150405Z", id[:16])
		if err != nil {
			return
		}
		r.Policy.LastSuccessfulTime = t
		r.Policy.LastScheduleTime = t
		r.Policy.LastResult = v1.ResultSucceeded
		a.log.Info("no recorded state for policy: its newest snapshot on the destinations sets the schedule", "policy", name, "snapshot", id)
	})
	if err != nil {
		a.log.Warn("record seeded schedules", "err", err)
		return false
	}
	return true
}

// busyRetry is how long the agent leaves a policy alone that another
// process (an `aegis-agent run` by hand) is running.
const busyRetry = 30 * time.Second

func (a *Agent) markBusy(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.busyElsewhere == nil {
		a.busyElsewhere = map[string]time.Time{}
	}
	a.busyElsewhere[name] = a.opts.Now().Add(busyRetry)
}

func (a *Agent) startRun(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running[name] {
		return false
	}
	a.running[name] = true
	return true
}

func (a *Agent) endRun(name string, ended chan<- struct{}) {
	a.mu.Lock()
	delete(a.running, name)
	a.mu.Unlock()
	if ended != nil {
		select {
		case ended <- struct{}{}:
		default: // a pass is pending anyway
		}
	}
}

// execute runs one backup under the policy's lock and records its result.
func (a *Agent) execute(ctx context.Context, req snapshot.BackupRequest, wait bool) (*v1.RunResult, error) {
	name := req.Policy.Metadata.Name
	lock, err := lockPolicy(ctx, a.opts.StateDir, name, wait)
	if err != nil {
		return nil, err
	}
	defer lock.unlock()

	now := a.opts.Now()
	if err := a.store.Update(v1.KindBackupPolicy, name, func(r *ObjectRecord) {
		if req.Source == "" {
			r.Policy.LastAttemptTime = now
		}
		if !req.ScheduledTime.IsZero() {
			r.Policy.LastScheduleTime = req.ScheduledTime
		}
	}); err != nil {
		return nil, err
	}

	log, logFile, closeLog := a.runLogger(name, now)
	defer closeLog()
	stopProgress := a.runStarted(ctx, log, &req)
	res := a.runner.Backup(ctx, log, req)
	stopProgress()
	res.LogFile = logFile
	a.runEnded(ctx, log, req, res)

	err = a.store.Update(v1.KindBackupPolicy, name, func(r *ObjectRecord) {
		r.LastRun = res
		r.Policy.LastResult = res.Result
		// A run of one source says nothing about the others.
		if res.Result == v1.ResultSucceeded && req.Source == "" {
			r.Policy.LastSuccessfulTime = res.StartTime
		}
	})
	if err != nil {
		return res, err
	}
	for _, d := range res.Destinations {
		if _, ok := req.Destinations[d.Name]; !ok {
			continue
		}
		// A destination that failed, at its check or midway, is reported
		// unreachable until a later run gets through to it.
		checkErr := ""
		if d.Result != v1.ResultSucceeded {
			checkErr = d.Error
		}
		if err := a.store.Update(v1.KindDestination, d.Name, func(r *ObjectRecord) {
			r.Checked, r.LastCheckTime, r.CheckError = true, now, checkErr
		}); err != nil {
			return res, err
		}
	}
	// Retention follows each successful backup, under the same lock.
	if res.Result == v1.ResultSucceeded && req.Policy.Spec.Retention != nil {
		a.retainLocked(ctx, log, req.Policy, req.Destinations, pruneMode{})
	}
	return res, nil
}

// runLogger returns a logger that writes to the agent's log and to the
// run's own timestamped file in the log directory.
func (a *Agent) runLogger(policy string, t time.Time) (*slog.Logger, string, func()) {
	if a.opts.LogDir == "" {
		return a.log, "", func() {}
	}
	if err := os.MkdirAll(a.opts.LogDir, 0o750); err != nil {
		a.log.Warn("cannot create log directory", "dir", a.opts.LogDir, "err", err)
		return a.log, "", func() {}
	}
	name := filepath.Join(a.opts.LogDir, fmt.Sprintf("backup-%s-%s.log", policy, t.UTC().Format("20060102T150405Z")))
	f, err := observe.CreateRunLog(a.opts.LogDir, filepath.Base(name))
	if err != nil {
		a.log.Warn("cannot open run log", "file", name, "err", err)
		return a.log, "", func() {}
	}
	h := slog.NewMultiHandler(a.log.Handler(), slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return slog.New(h), name, func() { f.Close() }
}

// RunNow backs up a policy at once, whatever its schedule: the `run`
// command. It refuses (or, with wait, waits) while another process runs the
// same policy.
func (a *Agent) RunNow(ctx context.Context, policy, source string, wait bool) (*v1.RunResult, *Config, error) {
	cfg, err := LoadConfig(a.opts.ConfigDir)
	if err != nil {
		return nil, nil, err
	}
	pols, dests := cfg.Valid()
	p, ok := pols[policy]
	if !ok {
		if cfg.Policy(policy) == nil {
			return nil, cfg, fmt.Errorf("policy %q not found in %s", policy, a.opts.ConfigDir)
		}
		var msgs []string
		for _, o := range cfg.Objects {
			if o.Policy != nil && o.Name == policy {
				for _, e := range cfg.ObjectErrors(o) {
					msgs = append(msgs, e.Error())
				}
			}
		}
		return nil, cfg, fmt.Errorf("policy %q is invalid:\n%s", policy, strings.Join(msgs, "\n"))
	}
	if err := a.store.Observe(cfg.Objects, cfg.IsValid); err != nil {
		return nil, cfg, err
	}
	a.auditConfig(cfg)
	if source != "" && !slices.ContainsFunc(p.Spec.Sources, func(s v1.Source) bool { return s.Name == source }) {
		return nil, cfg, fmt.Errorf("source %q not found in policy %s", source, policy)
	}
	res, err := a.execute(ctx, snapshot.BackupRequest{Policy: p, Destinations: dests, Source: source}, wait)
	if err != nil {
		return nil, cfg, err
	}
	records, _ := a.store.Records()
	w := World{Records: map[string]PolicyRecord{}, Now: a.opts.Now(), RetryAfter: a.opts.RetryAfter}
	for n, pp := range pols {
		w.Policies = append(w.Policies, pp)
		w.Records[n] = records[v1.KindBackupPolicy+"/"+n].Policy
	}
	if err := a.writeStatuses(cfg, Compute(w), pols, dests, nil); err != nil {
		a.log.Error("write status", "err", err)
	}
	return res, cfg, nil
}

// writeStatuses rewrites the sidecar of every manifest file.
func (a *Agent) writeStatuses(cfg *Config, plan Plan, pols map[string]*v1.BackupPolicy, dests map[string]*v1.Destination, stale map[string]bool) error {
	records, err := a.store.Records()
	if err != nil {
		return err
	}
	health, err := a.store.loadHealth()
	if err != nil {
		a.log.Warn("read the policies' health", "err", err)
	}
	now := a.opts.Now()
	byFile := map[string][]*v1.Object{}
	for _, o := range cfg.Objects {
		byFile[o.File] = append(byFile[o.File], o)
	}
	var errs []error
	for _, f := range cfg.Files {
		path := StatusPath(f, a.opts.StatusDir)
		prev, err := ReadStatusFile(path)
		if err != nil {
			prev = &v1.StatusFile{}
		}
		sf := &v1.StatusFile{Items: []v1.StatusEntry{}}
		for _, o := range byFile[f] {
			key := o.Kind + "/" + o.Name
			in := statusInput{
				obj:              o,
				errs:             cfg.ObjectErrors(o),
				rec:              records[key],
				lastValidRunning: stale[key],
				now:              now,
				notifications:    health[o.Name].Notifications,
				sourceSuccess:    health[o.Name].SourceSuccess,
			}
			switch {
			case o.Policy != nil:
				p := o.Policy
				if pp, ok := pols[o.Name]; ok {
					p = pp
				}
				in.next = plan.Policies[o.Name].NextScheduleTime
				in.unsupported = registry.Unsupported(p, dests)
			case o.Destination != nil:
				if msg := registry.UnsupportedDestination(o.Destination); msg != "" {
					in.unsupported = []string{msg}
				}
			}
			var old v1.ObjectStatus
			for _, it := range prev.Items {
				if it.Kind == o.Kind && it.Name == o.Name {
					old = it.Status
				}
			}
			sf.Items = append(sf.Items, v1.StatusEntry{
				APIVersion: v1.APIVersion, Kind: o.Kind, Name: o.Name,
				Status: buildStatus(old, in),
			})
		}
		if err := WriteStatusFile(path, sf); err != nil {
			errs = append(errs, fmt.Errorf("status of %s: %w", f, err))
		}
	}
	a.removeOrphanStatuses(cfg)
	return errors.Join(errs...)
}

// removeOrphanStatuses deletes sidecars whose manifest file is gone.
func (a *Agent) removeOrphanStatuses(cfg *Config) {
	dir := a.opts.StatusDir
	if dir == "" {
		dir = a.opts.ConfigDir
	}
	want := map[string]bool{}
	for _, f := range cfg.Files {
		want[StatusPath(f, a.opts.StatusDir)] = true
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.status.yaml"))
	for _, m := range matches {
		if !want[m] {
			_ = os.Remove(m)
		}
	}
}

// Run is the agent's loop: it reconciles whenever a manifest changes, a
// schedule comes due, a run ends or Reload is signalled, until ctx is done.
// A run in flight when ctx ends is abandoned without publishing anything.
func (a *Agent) Run(ctx context.Context, reload <-chan struct{}) error {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer watcher.Close()
	if err := watcher.Add(a.opts.ConfigDir); err != nil {
		return fmt.Errorf("watch %s: %w", a.opts.ConfigDir, err)
	}
	a.log.Info("agent started", "config_dir", a.opts.ConfigDir, "state_dir", a.opts.StateDir, "host", a.opts.Host)
	a.cleanupDrills(ctx)

	wake := time.NewTimer(0)
	defer wake.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	done := make(chan struct{}, 16)
	for {
		select {
		case <-ctx.Done():
			a.log.Info("agent stopping: waiting for runs in flight to wind down")
			a.wg.Wait()
			// Record how the abandoned runs ended.
			if _, err := a.pass(context.WithoutCancel(ctx), passStatusOnly, nil); err != nil {
				a.log.Error("final status", "err", err)
			}
			a.log.Info("agent stopped")
			return nil
		case ev := <-watcher.Events:
			// A Kubernetes ConfigMap swaps its files at once by replacing
			// the ..data symlink their symlinks go through.
			if !IsManifestFile(ev.Name) && filepath.Base(ev.Name) != "..data" {
				continue // our own status writes and editors' temporary files
			}
			debounce.Reset(a.opts.Debounce)
			continue
		case err := <-watcher.Errors:
			a.log.Warn("watch error", "err", err)
			continue
		case <-reload:
			a.log.Info("reload requested")
		case <-debounce.C:
			a.log.Info("configuration changed: reconciling")
		case <-wake.C:
		case <-done:
		}
		res, err := a.pass(ctx, passAsync, done)
		next := time.Minute
		if err != nil {
			a.log.Error("reconcile failed", "err", err)
			a.passFailed(err)
		} else if !res.Plan.Wake.IsZero() {
			next = res.Plan.Wake.Sub(a.opts.Now())
		}
		if next < time.Second {
			next = time.Second
		}
		if next > time.Hour {
			next = time.Hour
		}
		a.mu.Lock()
		if len(a.busyElsewhere) > 0 && next > busyRetry {
			next = busyRetry // look again at policies another process was running
		}
		a.mu.Unlock()
		wake.Reset(next)
	}
}
