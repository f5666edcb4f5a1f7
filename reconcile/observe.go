package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/retention"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// ObserveOptions configure what an agent reports besides the statuses:
// metrics, the audit trail, notifications, progress and its log directory.
type ObserveOptions struct {
	// Actor is who acts: empty for the agent itself, else the user running
	// a command (CurrentActor); Command names that command ("run").
	Actor   string
	Command string
	// LogLimits bound the log directory.
	LogLimits observe.LogLimits
	// MetricsTextfile, when set, receives the aegis_* metrics after every
	// reconcile pass (node_exporter's textfile collector reads it).
	MetricsTextfile string
	// Progress, when set, hears the progress of every backup this process
	// runs (a terminal's progress bars for `run`).
	Progress observe.Progress
	// HTTPClient sends notifications (nil: a client with a 10s timeout).
	HTTPClient *http.Client
}

// observer holds an agent's metrics, audit log and notifier.
type observer struct {
	metrics  *observe.Metrics
	audit    *observe.AuditLog
	notifier *observe.Notifier

	mu      sync.Mutex
	invAt   map[string]time.Time // policy → last inventory of its destinations
	invBusy bool
	// nextLogged is each policy's next backup as last logged.
	nextLogged map[string]time.Time
	pruneAt    time.Time
}

func newObserver(opts Options, store *Store) *observer {
	m := observe.NewMetrics(opts.Host, observe.Version, opts.Now)
	o := &observer{metrics: m, invAt: map[string]time.Time{}}
	o.notifier = observe.NewNotifier(opts.Logger, m)
	o.notifier.Now = opts.Now
	// Each delivery's end is kept with the policy's health, for its status.
	o.notifier.OnDelivery = func(policy string, d v1.NotificationStatus) {
		err := store.updateHealth(policy, func(h *observe.Health) {
			if h.Notifications == nil {
				h.Notifications = map[string]v1.NotificationStatus{}
			}
			h.Notifications[d.Channel] = d
		})
		if err != nil {
			opts.Logger.Warn("record a notification's delivery", "policy", policy, "err", err)
		}
	}
	if opts.Observe.HTTPClient != nil {
		o.notifier.Client = opts.Observe.HTTPClient
	}
	if opts.LogDir != "" {
		al, err := observe.OpenAudit(opts.LogDir, opts.Observe.LogLimits, opts.Host, opts.Observe.Actor, opts.Now)
		if err != nil {
			opts.Logger.Error("cannot open the audit log: actions are not audited", "dir", opts.LogDir, "err", err)
			m.AuditWriteFailed()
		} else {
			o.audit = al
		}
	}
	return o
}

// Metrics returns the agent's metrics registry.
func (a *Agent) Metrics() *observe.Metrics { return a.obs.metrics }

// NotifyGrace bounds how long Close waits for notifications in flight: a
// receiver that does not answer never holds a finished command.
const NotifyGrace = 5 * time.Second

// Close waits (at most NotifyGrace) for the notifications in flight and
// closes the audit log. Call it once the agent is done (after Run or Once
// returns).
func (a *Agent) Close() error {
	if !a.obs.notifier.WaitAtMost(NotifyGrace) {
		a.log.Warn("notifications still in flight were abandoned", "waited", NotifyGrace)
	}
	return a.obs.audit.Close()
}

// recordAudit writes an audit line; a failure is logged and counted, and
// never stops the action (the audit log is a record, not a gate).
func (a *Agent) recordAudit(ev observe.AuditEvent) {
	if a.obs.audit == nil {
		return
	}
	if ev.Command == "" {
		ev.Command = a.opts.Observe.Command
	}
	if err := a.obs.audit.Record(ev); err != nil {
		a.obs.metrics.AuditWriteFailed()
		a.log.Error("cannot write the audit log", "action", ev.Action, "object", ev.Object, "err", err)
	}
}

// runStarted begins the observation of a run: the run log's header, the
// start ping, the running gauge, and progress (a log line every
// ProgressLogInterval, plus the terminal's bars when the process has
// them). The returned func ends the progress reports.
func (a *Agent) runStarted(ctx context.Context, log *slog.Logger, req *snapshot.BackupRequest) (stop func()) {
	p := req.Policy
	name := p.Metadata.Name
	actor := a.opts.Observe.Actor
	if actor == "" {
		actor = observe.ActorAgent
	}
	trigger := "schedule"
	if req.ScheduledTime.IsZero() {
		trigger = "by hand"
	}
	log.Info("run", "host", a.opts.Host, "agent", "aegis-agent "+observe.Version, "actor", actor, "trigger", trigger,
		"sources", len(p.Spec.Sources), "destinations", strings.Join(p.Spec.Destinations, ","))
	a.obs.metrics.RunStarted(name)
	if n := p.Spec.Notify; n != nil && n.Ping != "" {
		a.obs.notifier.Ping(ctx, name, n.Ping, observe.PingStart, "")
	}
	var last *v1.RunResult
	if recs, err := a.store.Records(); err == nil {
		last = recs[v1.KindBackupPolicy+"/"+name].LastRun
	}
	pl := observe.NewProgressLog(log, a.opts.Now, observe.ProgressLogInterval)
	req.Progress = observe.WithEstimates(observe.MultiProgress(pl, a.opts.Observe.Progress, req.Progress), last)
	done := make(chan struct{})
	go pl.Run(done)
	return func() { close(done) }
}

// runEnded finishes the observation of a run: the summary in its log,
// metrics, the policy's health, notifications, the audit line, the
// inventory of its destinations and the log directory's bounds.
func (a *Agent) runEnded(ctx context.Context, log *slog.Logger, req snapshot.BackupRequest, res *v1.RunResult) {
	p := req.Policy
	name := p.Metadata.Name
	now := a.opts.Now()
	logRunSummary(log, res)
	a.obs.metrics.RunEnded(name, res)
	if req.Progress != nil {
		for _, d := range res.Destinations {
			var err error
			if d.Error != "" {
				err = errors.New(d.Error)
			}
			req.Progress.End(observe.DestItem(d.Name), err)
		}
	}

	onSuccess := p.Spec.Notify != nil && p.Spec.Notify.OnSuccess
	var health observe.Health
	var event string
	if err := a.store.updateHealth(name, func(h *observe.Health) {
		*h, event = observe.NextHealth(*h, res, now, onSuccess)
		health = *h
	}); err != nil {
		log.Error("record the policy's health", "err", err)
	}
	if n := p.Spec.Notify; n != nil && res.Result != v1.ResultInterrupted {
		kind := observe.PingSuccess
		if res.Result != v1.ResultSucceeded {
			kind = observe.PingFail
		}
		a.obs.notifier.Ping(ctx, name, n.Ping, kind, observe.PingBody(a.opts.Host, name, res))
		switch {
		case event != "":
			body := observe.NewWebhookBody(event, a.opts.Host, name, res, health, now)
			for i, w := range n.Webhooks {
				a.obs.notifier.Webhook(ctx, name, i, w, body)
			}
		case len(n.Webhooks) > 0 && health.Failing:
			log.Info("webhooks not sent: the policy was already failing and was notified",
				"consecutive_failures", health.ConsecutiveFailures, "next_reminder", health.LastAlert.Add(observe.ReminderEvery).UTC())
		}
	}

	outcome := observe.OutcomeFailure
	switch res.Result {
	case v1.ResultSucceeded:
		outcome = observe.OutcomeSuccess
	case v1.ResultPartiallyFailed:
		outcome = observe.OutcomePartial
	}
	ev := observe.AuditEvent{Action: observe.AuditBackupPublished, Object: v1.KindBackupPolicy + "/" + name, Outcome: outcome,
		Policy: name, Snapshot: res.SnapshotID}
	if res.Result != v1.ResultSucceeded {
		ev.Message = observe.RunErrors(res)
	}
	for _, s := range res.Sources {
		if s.Result == v1.ResultSucceeded {
			ev.Sources = append(ev.Sources, s.Name)
		}
	}
	for _, d := range res.Destinations {
		if d.Result == v1.ResultSucceeded {
			ev.Destinations = append(ev.Destinations, d.Name)
		}
		ev.Bytes += d.Bytes
	}
	a.recordAudit(ev)

	// Count what the destinations that took this run now hold; the others
	// were just found unusable and would only make the run wait.
	took := map[string]*v1.Destination{}
	for _, d := range res.Destinations {
		if spec, ok := req.Destinations[d.Name]; ok && d.Result == v1.ResultSucceeded {
			took[d.Name] = spec
		}
	}
	a.refreshInventory(ctx, p, took)
	a.pruneLogs(true)
}

// logRunSummary writes the result of every source and destination to the
// run's log: the whole story of the run is in one file.
func logRunSummary(log *slog.Logger, res *v1.RunResult) {
	for _, s := range res.Sources {
		attrs := []any{"source", s.Name, "result", s.Result, "files", s.Files, "bytes_read", s.BytesRead,
			"bytes_written", s.Bytes, "duration", s.Duration, "warnings", len(s.Warnings)}
		if s.Error != "" {
			attrs = append(attrs, "err", s.Error)
		}
		log.Info("source result", attrs...)
	}
	for _, d := range res.Destinations {
		attrs := []any{"destination", d.Name, "result", d.Result, "bytes", d.Bytes, "duration", d.Duration}
		if d.Error != "" {
			attrs = append(attrs, "err", d.Error)
		}
		log.Info("destination result", attrs...)
	}
	log.Info("run result", "result", res.Result, "snapshot", res.SnapshotID, "duration", res.Duration)
}

// retentionDone observes a retention pass: one audit line per snapshot it
// deleted and per leftover it removed, and the retention metrics.
func (a *Agent) retentionDone(policy string, rep *retention.PruneReport) {
	if rep == nil || rep.DryRun {
		return
	}
	result := v1.ResultSucceeded
	if rep.Failed() {
		result = v1.ResultFailed
	}
	a.obs.metrics.RetentionRun(policy, result)
	for _, d := range rep.Destinations {
		deleted := 0
		for _, s := range d.Delete {
			if !s.Deleted {
				continue
			}
			deleted++
			a.recordAudit(observe.AuditEvent{Time: rep.Time, Action: observe.AuditSnapshotDeleted, Outcome: observe.OutcomeSuccess,
				Object: "Snapshot/" + v1.SnapshotDir(rep.Host, policy, s.Source, s.ID),
				Policy: policy, Snapshot: s.ID, Sources: []string{s.Source}, Destination: d.Destination, Bytes: s.Size,
				Message: "kept by no rule of the retention (" + rep.Rules + ")"})
		}
		for _, l := range d.Leftovers {
			if l.Removed {
				a.recordAudit(observe.AuditEvent{Time: rep.Time, Action: observe.AuditSnapshotDeleted, Outcome: observe.OutcomeSuccess,
					Object: "Leftover/" + strings.TrimSuffix(l.Dir, "/"), Policy: policy, Destination: d.Destination,
					Bytes: l.Size, Message: l.Reason})
			}
		}
		if d.Result == v1.ResultFailed {
			a.recordAudit(observe.AuditEvent{Time: rep.Time, Action: observe.AuditSnapshotDeleted, Outcome: observe.OutcomeFailure,
				Object: v1.KindBackupPolicy + "/" + policy, Policy: policy, Destination: d.Destination, Message: d.Message})
		}
		if deleted > 0 {
			a.obs.metrics.RetentionDeleted(policy, d.Destination, deleted)
		}
	}
}

// afterPass brings the metrics up to date with what the pass saw, writes
// the metrics textfile, and keeps the log directory within its bounds.
func (a *Agent) afterPass(ctx context.Context, cfg *Config, plan Plan, pols map[string]*v1.BackupPolicy, dests map[string]*v1.Destination, mode passMode) {
	a.logSchedules(plan)
	records, err := a.store.Records()
	if err != nil {
		a.obs.metrics.PassDone(err)
		return
	}
	usable := a.syncMetrics(cfg, plan, pols, dests, records)
	a.inventoryStale(ctx, pols, usable, mode)
	a.obs.metrics.PassDone(nil)
	if f := a.opts.Observe.MetricsTextfile; f != "" {
		if err := a.obs.metrics.WriteTextfile(f); err != nil {
			a.log.Error("write the metrics textfile", "err", err)
		}
	}
	a.pruneLogs(false)
	a.writeHostStatuses(ctx, plan, pols, dests, mode)
}

// syncMetrics sets the policy, destination and drill gauges from the
// recorded state, and returns the destinations not known to fail their
// check.
func (a *Agent) syncMetrics(cfg *Config, plan Plan, pols map[string]*v1.BackupPolicy, dests map[string]*v1.Destination, records map[string]ObjectRecord) map[string]*v1.Destination {
	health, err := a.store.loadHealth()
	if err != nil {
		a.log.Warn("read the policies' health", "err", err)
	}
	a.mu.Lock()
	running := map[string]bool{}
	for n := range a.running {
		running[n] = true
	}
	a.mu.Unlock()
	views := map[string]observe.PolicyView{}
	drillViews := map[string]observe.DrillView{}
	for name, p := range pols {
		rec := records[v1.KindBackupPolicy+"/"+name]
		views[name] = observe.PolicyView{Policy: p, LastSuccess: rec.Policy.LastSuccessfulTime, LastAttempt: rec.Policy.LastAttemptTime,
			LastRun: rec.LastRun, Health: health[name], Next: plan.Policies[name].NextScheduleTime, Running: running[name]}
		drillViews[name] = observe.DrillView{Policy: p, LastDrill: rec.Policy.LastDrill, LastSuccess: rec.Policy.LastDrillSuccessTime}
	}
	destViews := map[string]observe.DestinationView{}
	usable := map[string]*v1.Destination{}
	for name, d := range dests {
		r := records[v1.KindDestination+"/"+name]
		destViews[name] = observe.DestinationView{Checked: r.Checked, CheckTime: r.LastCheckTime, Error: r.CheckError}
		if r.CheckError == "" {
			usable[name] = d
		}
	}
	a.obs.metrics.Sync(views, destViews, len(cfg.Errors))
	a.obs.metrics.SyncDrills(drillViews)
	return usable
}

// inventoryStale refreshes the inventory of the destinations, at most
// hourly per policy, in the background (a slow destination must not hold
// up the loop), except with --once, whose textfile should hold it.
func (a *Agent) inventoryStale(ctx context.Context, pols map[string]*v1.BackupPolicy, usable map[string]*v1.Destination, mode passMode) {
	once := mode == passOnce
	var stale []*v1.BackupPolicy
	a.obs.mu.Lock()
	now := a.opts.Now()
	for name, p := range pols {
		if now.Sub(a.obs.invAt[name]) >= time.Hour {
			stale = append(stale, p)
		}
	}
	busy := a.obs.invBusy
	if len(stale) > 0 && !busy && !once {
		a.obs.invBusy = true
	}
	a.obs.mu.Unlock()
	sort.Slice(stale, func(i, j int) bool { return stale[i].Metadata.Name < stale[j].Metadata.Name })
	switch {
	case ctx.Err() != nil || mode == passStatusOnly: // stopping
	case once:
		for _, p := range stale {
			a.refreshInventory(ctx, p, usable)
		}
	case len(stale) > 0 && !busy:
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for _, p := range stale {
				a.refreshInventory(ctx, p, usable)
			}
			a.obs.mu.Lock()
			a.obs.invBusy = false
			a.obs.mu.Unlock()
		}()
	}
}

// logSchedules writes to the agent's log when a policy's next backup
// changes: its schedule is in the log without a line per pass.
func (a *Agent) logSchedules(plan Plan) {
	a.obs.mu.Lock()
	defer a.obs.mu.Unlock()
	if a.obs.nextLogged == nil {
		a.obs.nextLogged = map[string]time.Time{}
	}
	names := make([]string, 0, len(plan.Policies))
	for n := range plan.Policies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pp := plan.Policies[n]
		if last, ok := a.obs.nextLogged[n]; ok && last.Equal(pp.NextScheduleTime) {
			continue
		}
		a.obs.nextLogged[n] = pp.NextScheduleTime
		if pp.NextScheduleTime.IsZero() {
			a.log.Info("no backup scheduled", "policy", n, "reason", pp.Reason)
			continue
		}
		a.log.Info("next backup", "policy", n, "at", pp.NextScheduleTime.UTC(), "reason", pp.Reason)
	}
	for n := range a.obs.nextLogged {
		if _, ok := plan.Policies[n]; !ok {
			delete(a.obs.nextLogged, n)
		}
	}
}

// passFailed records a reconcile pass that could not complete.
func (a *Agent) passFailed(err error) { a.obs.metrics.PassDone(err) }

// pruneLogs keeps the log directory within its bounds: after every run,
// and at most every ten minutes otherwise.
func (a *Agent) pruneLogs(force bool) {
	if a.opts.LogDir == "" {
		return
	}
	now := a.opts.Now()
	a.obs.mu.Lock()
	if !force && now.Sub(a.obs.pruneAt) < 10*time.Minute {
		a.obs.mu.Unlock()
		return
	}
	a.obs.pruneAt = now
	a.obs.mu.Unlock()
	res, err := observe.PruneLogDir(a.opts.LogDir, a.opts.Observe.LogLimits, now)
	if err != nil {
		a.log.Warn("keep the log directory within bounds", "dir", a.opts.LogDir, "err", err)
		return
	}
	if len(res.Removed) > 0 {
		a.log.Info("old logs removed", "dir", a.opts.LogDir, "files", len(res.Removed), "total", observe.FormatBytes(res.Total))
	}
}

// refreshInventory counts this host's complete snapshots of p on each of
// its destinations (one listing each: snapshot count, stored bytes and the
// newest snapshot's time per source) for the destination metrics.
func (a *Agent) refreshInventory(ctx context.Context, p *v1.BackupPolicy, dests map[string]*v1.Destination) {
	name := p.Metadata.Name
	a.obs.mu.Lock()
	a.obs.invAt[name] = a.opts.Now()
	a.obs.mu.Unlock()
	for _, dn := range p.Spec.Destinations {
		spec, ok := dests[dn]
		if !ok {
			continue
		}
		inv, err := a.inventory(ctx, name, dn, spec)
		if err != nil {
			a.log.Warn("cannot count the snapshots on a destination", "policy", name, "destination", dn, "err", err)
			continue
		}
		a.obs.metrics.SetInventory(dn, name, inv)
	}
}

func (a *Agent) inventory(ctx context.Context, policy, destName string, spec *v1.Destination) (map[string]observe.InventoryEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d, err := registry.Destination(spec, registry.Options{Logger: a.log})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	objs, err := d.List(ctx, a.opts.Host+"/"+policy+"/")
	if err != nil {
		return nil, err
	}
	type dir struct {
		source, id string
		bytes      int64
		complete   bool
	}
	dirs := map[string]*dir{}
	for _, o := range objs {
		// HOST/POLICY/SOURCE/ID/OBJECT
		parts := strings.Split(o.Key, "/")
		if len(parts) != 5 || !v1.ValidSnapshotID(parts[3]) {
			continue
		}
		k := path.Join(parts[2], parts[3])
		dd := dirs[k]
		if dd == nil {
			dd = &dir{source: parts[2], id: parts[3]}
			dirs[k] = dd
		}
		dd.bytes += o.Size
		if parts[4] == v1.ManifestName {
			dd.complete = true
		}
	}
	out := map[string]observe.InventoryEntry{}
	for _, dd := range dirs {
		if !dd.complete {
			continue
		}
		e := out[dd.source]
		e.Snapshots++
		e.Bytes += dd.bytes
		if t, err := time.Parse("20060102T150405Z", dd.id[:16]); err == nil && t.After(e.Newest) {
			e.Newest = t
		}
		out[dd.source] = e
	}
	return out, nil
}

// auditConfig writes one audit line per change of what the agent accepts:
// an object accepted (valid) or rejected (with its problems) at a new
// version, or removed; a file no object could be read from is rejected as
// a whole. What was seen is kept in the state store, so each change gives
// exactly one line, across restarts and processes.
func (a *Agent) auditConfig(cfg *Config) {
	now := configFacts(cfg)
	records, _ := a.store.Records()
	var events []observe.AuditEvent
	err := a.store.updateBucket(bucketConfigSeen, func(b *bolt.Bucket) error {
		keys := make([]string, 0, len(now))
		for k := range now {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f := now[k]
			if string(b.Get([]byte(k))) == f.print {
				continue
			}
			ev := observe.AuditEvent{Object: k, File: f.file, Outcome: observe.OutcomeSuccess, Action: observe.AuditConfigAccepted}
			if f.obj != nil {
				ev.Generation = records[k].Generation
				if f.obj.Policy != nil {
					ev.Policy = f.obj.Name
				}
			}
			if len(f.errs) > 0 {
				ev.Action, ev.Outcome, ev.Message = observe.AuditConfigRejected, observe.OutcomeFailure, strings.Join(f.errs, "; ")
			}
			events = append(events, ev)
			if err := b.Put([]byte(k), []byte(f.print)); err != nil {
				return err
			}
		}
		var gone []string
		_ = b.ForEach(func(k, _ []byte) error {
			if _, ok := now[string(k)]; !ok {
				gone = append(gone, string(k))
			}
			return nil
		})
		for _, k := range gone {
			if !strings.HasPrefix(k, "File/") {
				events = append(events, observe.AuditEvent{Object: k, Outcome: observe.OutcomeSuccess, Action: observe.AuditConfigRemoved,
					Message: "its manifest is gone: it is no longer scheduled; its snapshots are kept"})
			}
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		a.log.Warn("record the configuration seen", "err", err)
		return
	}
	for _, ev := range events {
		a.recordAudit(ev)
	}
}

// configFact is what the audit trail remembers of an object (or of a file
// no object could be read from): a fingerprint of its spec and problems.
type configFact struct {
	obj   *v1.Object
	file  string
	print string
	errs  []string
}

// configFacts returns the facts of a configuration, by Kind/name for
// objects and File/path for files that yielded none.
func configFacts(cfg *Config) map[string]configFact {
	now := map[string]configFact{}
	withObjects := map[string]bool{}
	for _, o := range cfg.Objects {
		var msgs []string
		for _, e := range cfg.ObjectErrors(o) {
			msgs = append(msgs, e.Error())
		}
		now[o.Kind+"/"+o.Name] = configFact{obj: o, file: o.File, print: fingerprint(o.SpecHash, msgs), errs: msgs}
		withObjects[o.File] = true
	}
	fileErrs := map[string][]string{}
	for _, e := range cfg.Errors {
		if !withObjects[e.File] {
			fileErrs[e.File] = append(fileErrs[e.File], e.Error())
		}
	}
	for f, msgs := range fileErrs {
		now["File/"+f] = configFact{file: f, print: fingerprint("", msgs), errs: msgs}
	}
	return now
}

func fingerprint(specHash string, errs []string) string {
	h := sha256.New()
	h.Write([]byte(specHash))
	for _, e := range errs {
		h.Write([]byte{0})
		h.Write([]byte(e))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// State buckets of the observability code, beside the store's own.
var (
	bucketHealth     = []byte("health")
	bucketConfigSeen = []byte("config-seen")
)

// updateBucket runs fn in a write transaction on one bucket of the store.
func (s *Store) updateBucket(name []byte, fn func(b *bolt.Bucket) error) error {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("open state %s: %w", s.path, err)
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// updateHealth applies fn to a policy's health and saves it.
func (s *Store) updateHealth(policy string, fn func(*observe.Health)) error {
	return s.updateBucket(bucketHealth, func(b *bolt.Bucket) error {
		var h observe.Health
		if v := b.Get([]byte(policy)); v != nil {
			if err := json.Unmarshal(v, &h); err != nil {
				return err
			}
		}
		fn(&h)
		v, err := json.Marshal(&h)
		if err != nil {
			return err
		}
		return b.Put([]byte(policy), v)
	})
}

// loadHealth returns every policy's health.
func (s *Store) loadHealth() (map[string]observe.Health, error) {
	out := map[string]observe.Health{}
	err := s.updateBucket(bucketHealth, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			var h observe.Health
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("health of %s: %w", k, err)
			}
			out[string(k)] = h
			return nil
		})
	})
	return out, err
}
