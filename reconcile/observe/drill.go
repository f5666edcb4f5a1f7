package observe

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// AuditDrillRun is the audit action of a restore drill.
const AuditDrillRun = "drill.run"

// Webhook events of restore drills.
const (
	// EventDrillFailure: a drill failed after a successful one (or as the
	// first one).
	EventDrillFailure = "drill_failure"
	// EventDrillRecovery: the first successful drill after failed ones.
	EventDrillRecovery = "drill_recovery"
	// EventDrillSuccess: a drill succeeded after a success; only with
	// spec.notify.onSuccess.
	EventDrillSuccess = "drill_success"
)

// DrillEvent returns the webhook event of a drill whose previous drill
// was prev (nil: none), or "" when nothing is to be sent. A drill that
// keeps failing alerts once; the alert rules keep reminding.
func DrillEvent(prev, res *v1.DrillResult, onSuccess bool) string {
	prevOK := prev == nil || prev.Result == v1.ResultSucceeded
	switch {
	case res.Result != v1.ResultSucceeded && prevOK:
		return EventDrillFailure
	case res.Result != v1.ResultSucceeded:
		return ""
	case !prevOK:
		return EventDrillRecovery
	case onSuccess:
		return EventDrillSuccess
	}
	return ""
}

// NewDrillWebhookBody describes a finished drill for the policy's
// webhooks, in the shape of a backup's: sources carry the drill's result
// per source, logFile names the drill's JSON report.
func NewDrillWebhookBody(event, host, policy string, res *v1.DrillResult, now time.Time) WebhookBody {
	b := WebhookBody{
		Event: event, Time: now.UTC(), Host: host, Policy: policy, Result: res.Result,
		StartTime: res.StartTime.UTC(), Duration: res.Duration, Message: res.Error,
		Sources: []v1.SourceResult{}, Destinations: []v1.DestinationResult{}, LogFile: res.Report,
		Agent: "aegis-agent " + Version,
	}
	for _, s := range res.Sources {
		b.Sources = append(b.Sources, v1.SourceResult{Name: s.Name, Result: s.Result, Files: s.Files,
			BytesRead: s.RawBytes, Duration: s.RestoreDuration, Error: s.Error,
			Meta: map[string]string{"snapshotID": s.SnapshotID, "destination": s.Destination, "measuredRTO": s.MeasuredRTO}})
		if b.SnapshotID == "" {
			b.SnapshotID = s.SnapshotID
		}
	}
	switch event {
	case EventDrillFailure:
		b.Text = fmt.Sprintf("aegis: restore drill of %s on %s %s: %s", policy, host, res.Result, res.Error)
	case EventDrillRecovery:
		b.Text = fmt.Sprintf("aegis: restore drill of %s on %s succeeded again (measured RTO %s)", policy, host, res.MeasuredRTO)
	default:
		b.Text = fmt.Sprintf("aegis: restore drill of %s on %s succeeded (measured RTO %s)", policy, host, res.MeasuredRTO)
	}
	return b
}

// drillMetrics are the gauges of restore drills and recovery objectives.
type drillMetrics struct {
	lastSuccess, lastRun, lastDuration, lastRunSuccess *prometheus.GaugeVec
	rtoMeasured, rtoObjective, rpoObjective            *prometheus.GaugeVec
	runs                                               *prometheus.CounterVec
}

func newDrillMetrics(reg *prometheus.Registry) *drillMetrics {
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"policy"})
		reg.MustRegister(g)
		return g
	}
	d := &drillMetrics{
		lastSuccess:    gauge("aegis_drill_last_success_timestamp_seconds", "When the last successful restore drill of the policy started (Unix time)."),
		lastRun:        gauge("aegis_drill_last_run_timestamp_seconds", "When the last restore drill of the policy started (Unix time)."),
		lastDuration:   gauge("aegis_drill_last_duration_seconds", "How long the last restore drill of the policy took."),
		lastRunSuccess: gauge("aegis_drill_last_run_success", "1 if the last restore drill of the policy succeeded on every source, else 0."),
		rtoMeasured:    gauge("aegis_recovery_rto_measured_seconds", "The restore time the last drill measured, scaled to the full snapshots."),
		rtoObjective:   gauge("aegis_recovery_rto_objective_seconds", "spec.objectives.rto of the policy."),
		rpoObjective:   gauge("aegis_recovery_rpo_objective_seconds", "spec.objectives.rpo of the policy; the achieved RPO is time() - aegis_source_last_success_timestamp_seconds."),
	}
	d.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aegis_drill_runs_total", Help: "Restore drills run, by result (Succeeded, PartiallyFailed, Failed)."}, []string{"policy", "result"})
	reg.MustRegister(d.runs)
	return d
}

func (d *drillMetrics) vecs() []*prometheus.MetricVec {
	return []*prometheus.MetricVec{d.lastSuccess.MetricVec, d.lastRun.MetricVec, d.lastDuration.MetricVec, d.lastRunSuccess.MetricVec,
		d.rtoMeasured.MetricVec, d.rtoObjective.MetricVec, d.rpoObjective.MetricVec, d.runs.MetricVec}
}

// DrillEnded counts a finished drill.
func (m *Metrics) DrillEnded(policy string, res *v1.DrillResult) {
	m.drill.runs.WithLabelValues(policy, res.Result).Inc()
}

// DrillView is what the drill gauges of one policy are computed from.
type DrillView struct {
	Policy      *v1.BackupPolicy
	LastDrill   *v1.DrillResult
	LastSuccess time.Time
}

// SyncDrills sets the drill and objective gauges from the recorded state,
// level-triggered like Sync (which removes the series of policies that
// went away).
func (m *Metrics) SyncDrills(views map[string]DrillView) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.drill
	for name, v := range views {
		setTime(d.lastSuccess, v.LastSuccess, name)
		rpo, rto := v.Policy.Spec.Objectives.Parse()
		setSeconds(d.rpoObjective, rpo, name)
		setSeconds(d.rtoObjective, rto, name)
		lr := v.LastDrill
		if lr == nil {
			for _, g := range []*prometheus.GaugeVec{d.lastRun, d.lastDuration, d.lastRunSuccess, d.rtoMeasured} {
				g.DeleteLabelValues(name)
			}
			continue
		}
		setTime(d.lastRun, lr.StartTime, name)
		dur, _ := time.ParseDuration(lr.Duration)
		d.lastDuration.WithLabelValues(name).Set(dur.Seconds())
		d.lastRunSuccess.WithLabelValues(name).Set(boolFloat(lr.Result == v1.ResultSucceeded))
		rtoM, err := time.ParseDuration(lr.MeasuredRTO)
		if err != nil {
			rtoM = -1 // parse failure: no series
		}
		setSeconds(d.rtoMeasured, rtoM, name)
	}
}

// setSeconds sets g to d, or removes the series when d is not positive.
func setSeconds(g *prometheus.GaugeVec, d time.Duration, labels ...string) {
	if d <= 0 {
		g.DeleteLabelValues(labels...)
		return
	}
	g.WithLabelValues(labels...).Set(d.Seconds())
}
