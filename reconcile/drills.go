package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile/drill"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// runDrill runs a restore drill of p under the policy's lock (retention
// must not delete the snapshot it reads), one drill at a time in this
// process, and records, reports and notifies its result.
func (a *Agent) runDrill(ctx context.Context, p *v1.BackupPolicy, dests map[string]*v1.Destination, source string, wait bool) (*v1.DrillResult, error) {
	name := p.Metadata.Name
	select {
	case a.drillSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-a.drillSem }()
	lock, err := lockPolicy(ctx, a.opts.StateDir, name, wait)
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	keys, err := a.drillKeys(p)
	if err != nil {
		return nil, fmt.Errorf("drill of policy %s: %w", name, err)
	}
	log := a.log.With("policy", name)
	log.Info("restore drill started")
	res, derr := drill.Run(ctx, p, drill.Options{
		Host: a.opts.Host, StateDir: a.opts.StateDir, LogDir: a.opts.LogDir, Keys: keys, Source: source, Now: a.opts.Now, Logger: a.log,
		Open: func(_ context.Context, dn string) (drivers.Destination, error) {
			d, ok := dests[dn]
			if !ok {
				return nil, fmt.Errorf("destination %q not found", dn)
			}
			return registry.Destination(d, registry.Options{})
		},
	})
	var prev *v1.DrillResult
	if err := a.store.Update(v1.KindBackupPolicy, name, func(r *ObjectRecord) {
		prev = r.Policy.LastDrill
		r.Policy.LastDrill = res
		if source == "" {
			r.Policy.LastDrillTime = res.StartTime
			if res.Result == v1.ResultSucceeded {
				r.Policy.LastDrillSuccessTime = res.StartTime
			}
		}
	}); err != nil {
		log.Error("record the drill", "err", err)
	}
	a.drillEnded(ctx, log, p, prev, res)
	return res, derr
}

// drillKeys gathers the keys a drill decrypts with: the policy's openssl
// key file and the keys directory. A drill of an age-encrypted policy
// thus also proves that an identity is at hand.
func (a *Agent) drillKeys(p *v1.BackupPolicy) (*snapshot.KeyRing, error) {
	var files []string
	mode := ""
	if e := p.Spec.Encryption; e != nil {
		mode = e.Mode()
		if e.OpenSSL != nil {
			files = append(files, e.OpenSSL.KeyFile)
		}
	}
	kr, err := snapshot.LoadKeyRing(files, a.opts.KeysDir, nil)
	if err != nil {
		return nil, err
	}
	kr.AcceptMode(mode, false)
	return kr, nil
}

// drillEnded reports a drill: metrics, the audit line and the policy's
// notifications (a failed drill alerts like a failed backup).
func (a *Agent) drillEnded(ctx context.Context, log *slog.Logger, p *v1.BackupPolicy, prev, res *v1.DrillResult) {
	name := p.Metadata.Name
	a.obs.metrics.DrillEnded(name, res)
	if res.Result == v1.ResultSucceeded {
		log.Info("restore drill succeeded", "duration", res.Duration, "measured_rto", res.MeasuredRTO, "report", res.Report)
	} else {
		log.Error("restore drill failed", "result", res.Result, "err", res.Error, "report", res.Report)
	}
	outcome := observe.OutcomeFailure
	switch res.Result {
	case v1.ResultSucceeded:
		outcome = observe.OutcomeSuccess
	case v1.ResultPartiallyFailed:
		outcome = observe.OutcomePartial
	}
	ev := observe.AuditEvent{Action: observe.AuditDrillRun, Object: v1.KindBackupPolicy + "/" + name, Outcome: outcome,
		Policy: name, File: res.Report, Message: res.Error}
	for _, s := range res.Sources {
		if ev.Snapshot == "" {
			ev.Snapshot = s.SnapshotID
		}
		if s.Result == v1.ResultSucceeded {
			ev.Sources = append(ev.Sources, s.Name)
		}
		ev.Bytes += s.BytesRestored
	}
	a.recordAudit(ev)
	n := p.Spec.Notify
	if n == nil {
		return
	}
	if event := observe.DrillEvent(prev, res, n.OnSuccess); event != "" {
		body := observe.NewDrillWebhookBody(event, a.opts.Host, name, res, a.opts.Now())
		for i, w := range n.Webhooks {
			a.obs.notifier.Webhook(ctx, name, i, w, body)
		}
	}
}

// RunDrill drills a policy at once, whatever its drill schedule: the
// `drill` command. A policy without spec.drills is drilled with the
// defaults (every source, every file, the default timeout).
func (a *Agent) RunDrill(ctx context.Context, policy, source string, wait bool) (*v1.DrillResult, error) {
	cfg, err := LoadConfig(a.opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	pols, dests := cfg.Valid()
	p, ok := pols[policy]
	if !ok {
		if cfg.Policy(policy) == nil {
			return nil, fmt.Errorf("policy %q not found in %s", policy, a.opts.ConfigDir)
		}
		return nil, fmt.Errorf("policy %q is invalid: run aegis-agent validate", policy)
	}
	if source != "" && !slices.ContainsFunc(p.Spec.Sources, func(s v1.Source) bool { return s.Name == source }) {
		return nil, fmt.Errorf("source %q not found in policy %s", source, policy)
	}
	if err := drill.Cleanup(ctx, a.opts.StateDir, a.log); err != nil {
		a.log.Warn("clean up after an interrupted drill", "err", err)
	}
	res, err := a.runDrill(ctx, p, dests, source, wait)
	if res != nil {
		// The status shows the drill at once; the next pass recomputes
		// the rest.
		records, _ := a.store.Records()
		w := World{Records: map[string]PolicyRecord{}, Now: a.opts.Now(), RetryAfter: a.opts.RetryAfter}
		for n, pp := range pols {
			w.Policies = append(w.Policies, pp)
			w.Records[n] = records[v1.KindBackupPolicy+"/"+n].Policy
		}
		if werr := a.writeStatuses(cfg, Compute(w), pols, dests, nil); werr != nil {
			a.log.Error("write status", "err", werr)
		}
	}
	return res, err
}

// cleanupDrills removes what a drill cut short left behind; the agent
// calls it when it starts.
func (a *Agent) cleanupDrills(ctx context.Context) {
	if err := drill.Cleanup(ctx, a.opts.StateDir, a.log); err != nil {
		a.log.Error("clean up after an interrupted drill", "err", err)
	}
}
