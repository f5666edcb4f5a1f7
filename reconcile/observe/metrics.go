package observe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aegis-backup/aegis/reconcile/atomicfile"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// Failure reasons, the values of the reason label of
// aegis_backup_failures_total. The set is closed, so the label stays small,
// and carries no error text (which may name hosts, paths or worse).
const (
	FailureConfig                 = "config"                  // the policy cannot run as written (keys, recipients, sources)
	FailureSource                 = "source"                  // a source could not be read
	FailureDestination            = "destination"             // an upload failed
	FailureDestinationUnreachable = "destination_unreachable" // a destination failed its check
	FailureNotSupported           = "not_supported"           // a driver this build does not have
	FailureCancelled              = "cancelled"               // the run was abandoned (shutdown)
	FailureOther                  = "other"
)

// Metrics is the agent's Prometheus registry: one per agent, holding only
// aegis_* metrics (so it can go into a node_exporter textfile without
// clashing with node_exporter's own go_* and process_* metrics); the HTTP
// handler adds the Go runtime and process collectors.
type Metrics struct {
	reg     *prometheus.Registry
	runtime *prometheus.Registry
	now     func() time.Time

	lastSuccess, lastAttempt, lastDuration, lastRunSuccess *prometheus.GaugeVec
	consecutiveFailures, scheduleInterval, nextRun         *prometheus.GaugeVec
	suspended, running                                     *prometheus.GaugeVec
	runs, failures                                         *prometheus.CounterVec

	srcLastSuccess, srcLastAttempt, srcLastDuration *prometheus.GaugeVec
	srcLastRead, srcLastWritten, srcLastFiles       *prometheus.GaugeVec
	srcLastWarnings                                 *prometheus.GaugeVec
	srcRead, srcWritten, srcFiles                   *prometheus.CounterVec
	// Deduplicated storage: the raw stream's bytes in new chunks, and the
	// stream's size over them.
	srcLastNew, srcLastRatio *prometheus.GaugeVec
	srcNew                   *prometheus.CounterVec

	destUp, destLastCheck                  *prometheus.GaugeVec
	destSnapshots, destBytes, destNewest   *prometheus.GaugeVec
	destWritten                            *prometheus.CounterVec
	retentionDeleted, retentionRuns        *prometheus.CounterVec
	notifications                          *prometheus.CounterVec
	notifyLastOK, notifyLastTime           *prometheus.GaugeVec
	info                                   *prometheus.GaugeVec
	startTime, lastReconcile, manifestErrs prometheus.Gauge
	policies, runsInProgress               prometheus.Gauge
	reconciles, reconcileErrors            prometheus.Counter
	auditErrors                            prometheus.Counter
	drill                                  *drillMetrics

	mu          sync.Mutex
	known       map[string]map[string]bool // policy → its sources, as last synced
	started     time.Time
	lastPass    time.Time
	lastPassErr error
	passes      int
}

// policyVecs are the vectors with a policy label, cleared when a policy
// goes away.
func (m *Metrics) policyVecs() []*prometheus.MetricVec {
	var out []*prometheus.MetricVec
	for _, g := range []*prometheus.GaugeVec{m.lastSuccess, m.lastAttempt, m.lastDuration, m.lastRunSuccess,
		m.consecutiveFailures, m.scheduleInterval, m.nextRun, m.suspended, m.running,
		m.srcLastSuccess, m.srcLastAttempt, m.srcLastDuration, m.srcLastRead, m.srcLastWritten, m.srcLastFiles, m.srcLastWarnings,
		m.srcLastNew, m.srcLastRatio, m.destSnapshots, m.destBytes, m.destNewest, m.notifyLastOK, m.notifyLastTime} {
		out = append(out, g.MetricVec)
	}
	for _, c := range []*prometheus.CounterVec{m.runs, m.failures, m.srcRead, m.srcWritten, m.srcFiles, m.srcNew, m.destWritten, m.retentionDeleted, m.retentionRuns, m.notifications} {
		out = append(out, c.MetricVec)
	}
	return append(out, m.drill.vecs()...)
}

// sourceVecs are the vectors with policy and source labels.
func (m *Metrics) sourceVecs() []*prometheus.MetricVec {
	var out []*prometheus.MetricVec
	for _, g := range []*prometheus.GaugeVec{m.srcLastSuccess, m.srcLastAttempt, m.srcLastDuration, m.srcLastRead, m.srcLastWritten, m.srcLastFiles, m.srcLastWarnings, m.srcLastNew, m.srcLastRatio} {
		out = append(out, g.MetricVec)
	}
	for _, c := range []*prometheus.CounterVec{m.srcRead, m.srcWritten, m.srcFiles, m.srcNew} {
		out = append(out, c.MetricVec)
	}
	return out
}

// NewMetrics registers every aegis_* metric. now is the clock (nil:
// time.Now).
func NewMetrics(host, version string, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry(), runtime: prometheus.NewRegistry(), now: now, known: map[string]map[string]bool{}}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(g)
		return g
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	pol, src := []string{"policy"}, []string{"policy", "source"}

	m.lastSuccess = gauge("aegis_backup_last_success_timestamp_seconds", "When the last fully successful backup of the policy started (Unix time).", pol...)
	m.lastAttempt = gauge("aegis_backup_last_attempt_timestamp_seconds", "When the last backup attempt of the policy started (Unix time).", pol...)
	m.lastDuration = gauge("aegis_backup_last_duration_seconds", "How long the last backup of the policy took.", pol...)
	m.lastRunSuccess = gauge("aegis_backup_last_run_success", "1 if the last backup of the policy succeeded on every source and destination, else 0.", pol...)
	m.consecutiveFailures = gauge("aegis_backup_consecutive_failures", "Backups of the policy that failed in a row since its last success.", pol...)
	m.scheduleInterval = gauge("aegis_backup_schedule_interval_seconds", "The longest gap between two scheduled runs of the policy over its next ten runs.", pol...)
	m.nextRun = gauge("aegis_backup_next_run_timestamp_seconds", "When the next backup of the policy is due (Unix time); absent when none is scheduled.", pol...)
	m.suspended = gauge("aegis_backup_suspended", "1 if spec.suspend is true for the policy.", pol...)
	m.running = gauge("aegis_backup_running", "1 while a backup of the policy is in progress in this process.", pol...)
	m.runs = counter("aegis_backup_runs_total", "Backups run, by result (Succeeded, PartiallyFailed, Failed).", "policy", "result")
	m.failures = counter("aegis_backup_failures_total", "Failed backups by reason: config, source, destination, destination_unreachable, not_supported, cancelled, other.", "policy", "reason")

	m.srcLastSuccess = gauge("aegis_source_last_success_timestamp_seconds", "When the last successful backup of the source started (Unix time).", src...)
	m.srcLastAttempt = gauge("aegis_source_last_attempt_timestamp_seconds", "When the last backup attempt of the source started (Unix time).", src...)
	m.srcLastDuration = gauge("aegis_source_last_duration_seconds", "How long the last backup of the source took.", src...)
	m.srcLastRead = gauge("aegis_source_last_read_bytes", "Bytes the last backup of the source read.", src...)
	m.srcLastWritten = gauge("aegis_source_last_written_bytes", "Bytes the last backup of the source stored on a destination (after compression and encryption).", src...)
	m.srcLastFiles = gauge("aegis_source_last_files", "Files in the last backup of the source.", src...)
	m.srcLastWarnings = gauge("aegis_source_last_warnings", "Warnings (such as unreadable files) of the last backup of the source.", src...)
	m.srcRead = counter("aegis_source_read_bytes_total", "Bytes read from the source by backups of this process.", src...)
	m.srcWritten = counter("aegis_source_written_bytes_total", "Bytes of the source stored per destination by backups of this process.", src...)
	m.srcFiles = counter("aegis_source_files_total", "Files backed up from the source by this process.", src...)
	m.srcLastNew = gauge("aegis_source_last_new_bytes", "Bytes of the last deduplicated backup's stream that were in new chunks (stored anew).", src...)
	m.srcLastRatio = gauge("aegis_source_last_dedup_ratio", "Stream bytes over new bytes of the last deduplicated backup of the source (0: nothing new).", src...)
	m.srcNew = counter("aegis_source_new_bytes_total", "Bytes in new chunks stored by deduplicated backups of this process.", src...)

	m.destUp = gauge("aegis_destination_up", "1 if the destination passed its last check, 0 if it failed.", "destination")
	m.destLastCheck = gauge("aegis_destination_last_check_timestamp_seconds", "When the destination was last checked (Unix time).", "destination")
	m.destSnapshots = gauge("aegis_destination_snapshots", "Complete snapshots of this host on the destination.", "destination", "policy", "source")
	m.destBytes = gauge("aegis_destination_stored_bytes", "Bytes the complete snapshots of this host take on the destination.", "destination", "policy", "source")
	m.destNewest = gauge("aegis_destination_newest_snapshot_timestamp_seconds", "Time of the newest complete snapshot of this host on the destination (Unix time).", "destination", "policy", "source")
	m.destWritten = counter("aegis_destination_written_bytes_total", "Bytes stored on the destination by backups of this process.", "destination", "policy")
	m.retentionDeleted = counter("aegis_retention_deleted_snapshots_total", "Snapshots deleted by retention.", "policy", "destination")
	m.retentionRuns = counter("aegis_retention_runs_total", "Retention passes, by result (Succeeded, Failed).", "policy", "result")
	m.notifications = counter("aegis_notifications_total", "Notifications by channel (webhook, ping) and outcome (sent, failed).", "policy", "channel", "outcome")
	m.notifyLastOK = gauge("aegis_notification_last_delivered", "1 when the last delivery to the channel (ping, webhook[N]) succeeded, 0 when it failed.", "policy", "channel")
	m.notifyLastTime = gauge("aegis_notification_last_timestamp_seconds", "When the last delivery to the channel ended (Unix time).", "policy", "channel")

	m.info = gauge("aegis_agent_info", "Always 1; the labels name the agent's version and host.", "version", "host")
	m.info.WithLabelValues(version, host).Set(1)
	b := Build()
	build := gauge("aegis_build_info", "Always 1; the labels name the version, commit and Go version the agent was built from.", "version", "commit", "goversion")
	build.WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	reg := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.startTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "aegis_agent_start_time_seconds", Help: "When this agent process started (Unix time)."})
	m.lastReconcile = prometheus.NewGauge(prometheus.GaugeOpts{Name: "aegis_agent_last_reconcile_timestamp_seconds", Help: "When the agent last completed a reconcile pass (Unix time)."})
	m.manifestErrs = prometheus.NewGauge(prometheus.GaugeOpts{Name: "aegis_agent_manifest_errors", Help: "Problems found in the manifests at the last reconcile pass."})
	m.policies = prometheus.NewGauge(prometheus.GaugeOpts{Name: "aegis_agent_policies", Help: "Valid BackupPolicy objects at the last reconcile pass."})
	m.runsInProgress = prometheus.NewGauge(prometheus.GaugeOpts{Name: "aegis_agent_runs_in_progress", Help: "Backups in progress in this process."})
	m.reconciles = prometheus.NewCounter(prometheus.CounterOpts{Name: "aegis_agent_reconciles_total", Help: "Reconcile passes completed."})
	m.reconcileErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "aegis_agent_reconcile_errors_total", Help: "Reconcile passes that failed (config directory unreadable, state store unusable)."})
	m.auditErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "aegis_audit_write_errors_total", Help: "Audit lines that could not be written."})
	for _, c := range []prometheus.Collector{m.startTime, m.lastReconcile, m.manifestErrs, m.policies, m.runsInProgress, m.reconciles, m.reconcileErrors, m.auditErrors} {
		reg(c)
	}
	m.drill = newDrillMetrics(m.reg)
	m.started = now()
	m.startTime.Set(unixSeconds(m.started))

	m.runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry of the aegis_* metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// setTime sets g to t, or removes the series when t is zero (Prometheus
// reads an absent series better than a 1970 timestamp).
func setTime(g *prometheus.GaugeVec, t time.Time, labels ...string) {
	if t.IsZero() {
		g.DeleteLabelValues(labels...)
		return
	}
	g.WithLabelValues(labels...).Set(unixSeconds(t))
}

// RunStarted marks a backup of policy in progress.
func (m *Metrics) RunStarted(policy string) {
	m.running.WithLabelValues(policy).Set(1)
	m.runsInProgress.Inc()
}

// RunEnded counts a finished backup: its result, its failure reasons, and
// the bytes and files of its sources and destinations.
func (m *Metrics) RunEnded(policy string, res *v1.RunResult) {
	m.running.WithLabelValues(policy).Set(0)
	m.runsInProgress.Dec()
	if res == nil {
		return
	}
	m.runs.WithLabelValues(policy, res.Result).Inc()
	for _, r := range FailureReasons(res) {
		m.failures.WithLabelValues(policy, r).Inc()
	}
	for _, s := range res.Sources {
		m.srcRead.WithLabelValues(policy, s.Name).Add(float64(s.BytesRead))
		m.srcFiles.WithLabelValues(policy, s.Name).Add(float64(s.Files))
		if s.Result == v1.ResultSucceeded {
			m.srcWritten.WithLabelValues(policy, s.Name).Add(float64(s.Bytes))
			if s.Storage == v1.StorageDeduplicated {
				m.srcNew.WithLabelValues(policy, s.Name).Add(float64(s.NewBytes))
			}
		}
	}
	for _, d := range res.Destinations {
		m.destWritten.WithLabelValues(d.Name, policy).Add(float64(d.Bytes))
	}
}

// RetentionDeleted counts snapshots retention deleted.
func (m *Metrics) RetentionDeleted(policy, destination string, n int) {
	m.retentionDeleted.WithLabelValues(policy, destination).Add(float64(n))
}

// RetentionRun counts a retention pass of a policy, by result
// (v1.ResultSucceeded or v1.ResultFailed).
func (m *Metrics) RetentionRun(policy, result string) {
	m.retentionRuns.WithLabelValues(policy, result).Inc()
}

// Notification counts one notification (after its retries).
func (m *Metrics) Notification(policy, channel string, sent bool) {
	outcome := "sent"
	if !sent {
		outcome = "failed"
	}
	m.notifications.WithLabelValues(policy, channel, outcome).Inc()
}

// NotificationDelivered records the end of one delivery to a channel.
func (m *Metrics) NotificationDelivered(policy, channel string, ok bool, t time.Time) {
	m.notifyLastOK.WithLabelValues(policy, channel).Set(boolFloat(ok))
	setTime(m.notifyLastTime, t, policy, channel)
}

// AuditWriteFailed counts an audit line that was lost.
func (m *Metrics) AuditWriteFailed() { m.auditErrors.Inc() }

// FailureReasons classifies what went wrong in a run, each reason once,
// sorted; none for a run that succeeded.
func FailureReasons(res *v1.RunResult) []string {
	if res == nil || res.Result == v1.ResultSucceeded {
		return nil
	}
	set := map[string]bool{}
	classify := func(msg string, dest bool) string {
		switch {
		case strings.Contains(msg, "not supported yet"):
			return FailureNotSupported
		case strings.Contains(msg, context.Canceled.Error()), strings.Contains(msg, context.DeadlineExceeded.Error()):
			return FailureCancelled
		case strings.Contains(msg, "is not usable"):
			return FailureDestinationUnreachable
		case dest && strings.Contains(msg, "not found"):
			return FailureConfig
		case dest, strings.Contains(msg, "every destination failed"), strings.Contains(msg, "no destination is usable"):
			return FailureDestination
		}
		return FailureSource
	}
	if len(res.Destinations) == 0 {
		// The run stopped before opening anything: the policy itself.
		set[FailureConfig] = true
	}
	for _, d := range res.Destinations {
		if d.Result != v1.ResultSucceeded && d.Error != "" {
			set[classify(d.Error, true)] = true
		}
	}
	for _, s := range res.Sources {
		if s.Result != v1.ResultSucceeded && s.Error != "" && len(res.Destinations) > 0 {
			r := classify(s.Error, false)
			// A source that failed only because its destinations did is
			// counted under the destination's reason.
			if r == FailureDestination && len(set) > 0 {
				continue
			}
			set[r] = true
		}
	}
	if len(set) == 0 {
		set[FailureOther] = true
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// ScheduleInterval is the longest gap between two consecutive scheduled
// times over the next ten runs after now, so that a weekday schedule's
// weekend gap counts; zero when the schedule does not parse or never fires.
func ScheduleInterval(p *v1.BackupPolicy, now time.Time) time.Duration {
	s, err := v1.ParseSchedule(p.Spec.Schedule, p.Spec.TimeZone)
	if err != nil {
		return 0
	}
	prev := s.Next(now)
	if prev.IsZero() {
		return 0
	}
	var longest time.Duration
	for range 10 {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest
}

// PolicyView is what the gauges of one policy are computed from.
type PolicyView struct {
	Policy      *v1.BackupPolicy
	LastSuccess time.Time
	LastAttempt time.Time
	LastRun     *v1.RunResult
	Health      Health
	Next        time.Time
	Running     bool
}

// DestinationView is the last reachability check of a destination.
type DestinationView struct {
	Checked   bool
	CheckTime time.Time
	Error     string
}

// sync sets every gauge from the recorded state: level-triggered, like the
// reconcile loop, so a restarted agent exports the right values at once.
// Series of policies, sources and destinations that went away are removed.
func (m *Metrics) Sync(views map[string]PolicyView, dests map[string]DestinationView, manifestErrors int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.forgetGone(views)
	for name, v := range views {
		if m.known[name] == nil {
			m.known[name] = map[string]bool{}
		}
		setTime(m.lastSuccess, v.LastSuccess, name)
		setTime(m.lastAttempt, v.LastAttempt, name)
		setTime(m.nextRun, v.Next, name)
		m.consecutiveFailures.WithLabelValues(name).Set(float64(v.Health.ConsecutiveFailures))
		m.scheduleInterval.WithLabelValues(name).Set(ScheduleInterval(v.Policy, now).Seconds())
		m.suspended.WithLabelValues(name).Set(boolFloat(v.Policy.Spec.Suspend))
		m.running.WithLabelValues(name).Set(boolFloat(v.Running))
		if lr := v.LastRun; lr != nil {
			d, _ := time.ParseDuration(lr.Duration)
			m.lastDuration.WithLabelValues(name).Set(d.Seconds())
			m.lastRunSuccess.WithLabelValues(name).Set(boolFloat(lr.Result == v1.ResultSucceeded))
			for _, s := range lr.Sources {
				m.known[name][s.Name] = true
				d, _ := time.ParseDuration(s.Duration)
				m.srcLastDuration.WithLabelValues(name, s.Name).Set(d.Seconds())
				m.srcLastRead.WithLabelValues(name, s.Name).Set(float64(s.BytesRead))
				m.srcLastWritten.WithLabelValues(name, s.Name).Set(float64(s.Bytes))
				m.srcLastFiles.WithLabelValues(name, s.Name).Set(float64(s.Files))
				m.srcLastWarnings.WithLabelValues(name, s.Name).Set(float64(len(s.Warnings)))
				if s.Storage == v1.StorageDeduplicated {
					m.srcLastNew.WithLabelValues(name, s.Name).Set(float64(s.NewBytes))
					m.srcLastRatio.WithLabelValues(name, s.Name).Set(s.DedupRatio)
				}
			}
		} else {
			m.lastDuration.DeleteLabelValues(name)
			m.lastRunSuccess.DeleteLabelValues(name)
		}
		for _, s := range v.Policy.Spec.Sources {
			if t, ok := v.Health.SourceSuccess[s.Name]; ok {
				m.known[name][s.Name] = true
				setTime(m.srcLastSuccess, t, name, s.Name)
			}
			if t, ok := v.Health.SourceAttempt[s.Name]; ok {
				m.known[name][s.Name] = true
				setTime(m.srcLastAttempt, t, name, s.Name)
			}
		}
	}
	m.destUp.Reset()
	m.destLastCheck.Reset()
	for name, r := range dests {
		if !r.Checked {
			continue
		}
		m.destUp.WithLabelValues(name).Set(boolFloat(r.Error == ""))
		setTime(m.destLastCheck, r.CheckTime, name)
	}
	m.manifestErrs.Set(float64(manifestErrors))
	m.policies.Set(float64(len(views)))
}

// forgetGone removes the series of policies and sources that went away;
// the caller holds m.mu.
func (m *Metrics) forgetGone(views map[string]PolicyView) {
	for name, srcs := range m.known {
		v, ok := views[name]
		if !ok {
			for _, vec := range m.policyVecs() {
				vec.DeletePartialMatch(prometheus.Labels{"policy": name})
			}
			delete(m.known, name)
			continue
		}
		keep := map[string]bool{}
		for _, s := range v.Policy.Spec.Sources {
			keep[s.Name] = true
		}
		for s := range srcs {
			if !keep[s] {
				for _, vec := range m.sourceVecs() {
					vec.DeletePartialMatch(prometheus.Labels{"policy": name, "source": s})
				}
				delete(srcs, s)
			}
		}
	}
}

// InventoryEntry is what one source of one policy holds on a destination.
type InventoryEntry struct {
	Snapshots int
	Bytes     int64
	Newest    time.Time
}

// SetInventory replaces the destination gauges of (destination, policy).
func (m *Metrics) SetInventory(destination, policy string, inv map[string]InventoryEntry) {
	for _, g := range []*prometheus.GaugeVec{m.destSnapshots, m.destBytes, m.destNewest} {
		g.DeletePartialMatch(prometheus.Labels{"destination": destination, "policy": policy})
	}
	for src, e := range inv {
		m.destSnapshots.WithLabelValues(destination, policy, src).Set(float64(e.Snapshots))
		m.destBytes.WithLabelValues(destination, policy, src).Set(float64(e.Bytes))
		setTime(m.destNewest, e.Newest, destination, policy, src)
	}
}

// PassDone records the end of a reconcile pass, for the health endpoints.
func (m *Metrics) PassDone(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastPass, m.lastPassErr = m.now(), err
	if err != nil {
		m.reconcileErrors.Inc()
		return
	}
	m.passes++
	m.reconciles.Inc()
	m.lastReconcile.Set(unixSeconds(m.lastPass))
}

// StallAfter is how long without a reconcile pass makes /healthz fail: the
// loop wakes at least hourly.
const StallAfter = 2*time.Hour + 5*time.Minute

// Healthy reports whether the agent's loop is alive: it has completed a pass
// within StallAfter (or started less than StallAfter ago).
func (m *Metrics) Healthy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.lastPass
	if last.IsZero() {
		last = m.started
	}
	if age := m.now().Sub(last); age > StallAfter {
		return fmt.Errorf("no reconcile pass for %s: the agent's loop is stuck", age.Round(time.Second))
	}
	return nil
}

// Ready reports whether the agent has completed a reconcile pass and the
// last one could read its configuration and state.
func (m *Metrics) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastPassErr != nil {
		return fmt.Errorf("last reconcile pass failed: %v", m.lastPassErr)
	}
	if m.passes == 0 {
		return errors.New("no reconcile pass completed yet")
	}
	return nil
}

// Handler serves /metrics (the aegis_* metrics plus the Go runtime and
// process collectors), /healthz and /readyz.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	gatherers := prometheus.Gatherers{m.reg, m.runtime}
	h := promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorLog: slogPromLogger{log}, Registry: m.runtime})
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(m.runtime, h))
	probe := func(check func() error) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := check(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
			fmt.Fprintln(w, "ok")
		}
	}
	mux.HandleFunc("/healthz", probe(m.Healthy))
	mux.HandleFunc("/readyz", probe(m.Ready))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "aegis-agent: /metrics /healthz /readyz")
	})
	return mux
}

type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) {
	if l.log != nil {
		l.log.Warn("metrics endpoint", "err", fmt.Sprint(v...))
	}
}

// Serve listens on addr and serves Handler until ctx ends. It returns the
// address it listens on (addr may name port 0).
func (m *Metrics) Serve(ctx context.Context, addr string, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %s: %w", addr, err)
	}
	srv := &http.Server{Handler: m.Handler(log), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}

// WriteTextfile writes the aegis_* metrics in the text exposition format to
// path for node_exporter's textfile collector, atomically (temporary file,
// fsync, rename), so the collector never reads half a file.
func (m *Metrics) WriteTextfile(path string) error {
	fams, err := m.reg.Gather()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("metrics textfile %s: %w", path, err)
	}
	return nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
