package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/retention"
)

// PruneRequest is the `prune` command.
type PruneRequest struct {
	// Policy limits the pass to one policy; empty means every valid one.
	Policy string
	DryRun bool
	Force  bool
	// Host prunes the snapshots another host made (empty: this host's):
	// pruning from a machine with credentials that may delete, for a host
	// whose own may only write (docs/security.md).
	Host string
	// Credentials replace the destinations' own, by destination name; the
	// key "" applies to every destination (retention.ParseCredentialFlags).
	Credentials map[string]string
}

// pruneMode is how one retention pass runs.
type pruneMode struct {
	dryRun, force bool
	host          string            // whose snapshots; empty: this host's
	credentials   map[string]string // by destination; "" for all
}

// ErrPolicyNotFound is returned (wrapped) by Prune for an unknown or
// invalid policy name.
var ErrPolicyNotFound = errors.New("policy not found")

// Prune applies retention now, as the `prune` command does: to one policy
// or to every valid one, each under its lock (a dry run takes none). It
// records each pass in the state and the statuses, except in a dry run.
func (a *Agent) Prune(ctx context.Context, req PruneRequest) ([]*retention.PruneReport, *Config, error) {
	cfg, err := LoadConfig(a.opts.ConfigDir)
	if err != nil {
		return nil, nil, err
	}
	pols, dests := cfg.Valid()
	var names []string
	if req.Policy != "" {
		if _, ok := pols[req.Policy]; !ok {
			if cfg.Policy(req.Policy) == nil {
				return nil, cfg, fmt.Errorf("policy %q: %w in %s", req.Policy, ErrPolicyNotFound, a.opts.ConfigDir)
			}
			return nil, cfg, fmt.Errorf("policy %q: %w: its manifest is invalid (aegis-agent validate says why)", req.Policy, ErrPolicyNotFound)
		}
		names = []string{req.Policy}
	} else {
		for n := range pols {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var reports []*retention.PruneReport
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return reports, cfg, err
		}
		p := pols[n]
		if req.DryRun {
			reports = append(reports, a.retainLocked(ctx, a.log, p, dests, pruneMode{dryRun: true, force: req.Force, host: req.Host, credentials: req.Credentials}))
			continue
		}
		lock, err := lockPolicy(ctx, a.opts.StateDir, n, false)
		if err != nil {
			reports = append(reports, &retention.PruneReport{Policy: n, Host: a.opts.Host, Time: a.opts.Now(), Error: err.Error(), Destinations: []*retention.DestinationPrune{}})
			continue
		}
		reports = append(reports, a.retainLocked(ctx, a.log, p, dests, pruneMode{force: req.Force, host: req.Host, credentials: req.Credentials}))
		lock.unlock()
	}
	if !req.DryRun && len(names) > 0 {
		a.refreshStatuses(cfg, pols, dests)
	}
	return reports, cfg, nil
}

// refreshStatuses rewrites the sidecars after a command changed the state.
func (a *Agent) refreshStatuses(cfg *Config, pols map[string]*v1.BackupPolicy, dests map[string]*v1.Destination) {
	records, _ := a.store.Records()
	w := World{Records: map[string]PolicyRecord{}, Now: a.opts.Now(), RetryAfter: a.opts.RetryAfter}
	for n, pp := range pols {
		w.Policies = append(w.Policies, pp)
		w.Records[n] = records[v1.KindBackupPolicy+"/"+n].Policy
	}
	if err := a.writeStatuses(cfg, Compute(w), pols, dests, nil); err != nil {
		a.log.Error("write status", "err", err)
	}
}

// runRetention applies a policy's retention under its lock, as a
// scheduled Retention action. A policy locked by another process is left
// for the next pass.
func (a *Agent) runRetention(ctx context.Context, p *v1.BackupPolicy, dests map[string]*v1.Destination) *retention.PruneReport {
	name := p.Metadata.Name
	lock, err := lockPolicy(ctx, a.opts.StateDir, name, false)
	if err != nil {
		a.log.Warn("retention postponed", "policy", name, "err", err)
		return nil
	}
	defer lock.unlock()
	return a.retainLocked(ctx, a.log, p, dests, pruneMode{})
}

// retainLocked applies a policy's retention to its destinations; the
// caller holds the policy's lock unless dryRun. It records the pass (not a
// dry run) in the state store.
func (a *Agent) retainLocked(ctx context.Context, log *slog.Logger, p *v1.BackupPolicy, dests map[string]*v1.Destination, mode pruneMode) *retention.PruneReport {
	name := p.Metadata.Name
	host := cmp.Or(mode.host, a.opts.Host)
	// Another host's pass is that host's business: this host's state
	// neither informs it (its last run) nor records it.
	foreign := host != a.opts.Host
	dryRun := mode.dryRun
	records, err := a.store.Records()
	if err != nil {
		return &retention.PruneReport{Policy: name, Host: host, Time: a.opts.Now(), Error: err.Error(), Destinations: []*retention.DestinationPrune{}}
	}
	rec := records[v1.KindBackupPolicy+"/"+name]
	if foreign {
		rec.LastRun = nil
	}
	opts := retention.PruneOptions{Host: host, Clock: a.opts.Now, DryRun: dryRun, Force: mode.force, LastRun: rec.LastRun, Logger: log}
	if !dryRun && a.opts.LogDir != "" {
		j, err := retention.OpenRetentionLog(a.opts.LogDir)
		if err != nil {
			rep := &retention.PruneReport{Policy: name, Host: a.opts.Host, Time: a.opts.Now(), Error: fmt.Sprintf("open %s: %v; nothing deleted", observe.RetentionLogName, err), Destinations: []*retention.DestinationPrune{}}
			a.recordRetention(name, rep)
			return rep
		}
		defer func() {
			if err := j.Close(); err != nil {
				log.Error("close retention log", "err", err)
			}
		}()
		opts.Journal = j
	}
	var targets []retention.PruneTarget
	for _, dn := range p.Spec.Destinations {
		t := retention.PruneTarget{Name: dn}
		spec, ok := dests[dn]
		if f := cmp.Or(mode.credentials[dn], mode.credentials[""]); ok && f != "" {
			if spec, err = retention.WithCredentials(spec, f); err != nil {
				t.Err = err
				targets = append(targets, t)
				continue
			}
		}
		switch {
		case !ok:
			t.Err = fmt.Errorf("destination %q not found or invalid", dn)
		default:
			d, err := registry.Destination(spec, registry.Options{Logger: log})
			if err != nil {
				t.Err = err
			} else {
				t.Dest = d
				defer d.Close()
			}
		}
		targets = append(targets, t)
	}
	rep := retention.PrunePolicy(ctx, p, targets, opts)
	if !dryRun && !foreign {
		a.recordRetention(name, rep)
	}
	return rep
}

// recordRetention stores the pass's time and summary with the policy.
func (a *Agent) recordRetention(name string, rep *retention.PruneReport) {
	a.retentionDone(name, rep) // audit lines and metrics (observe.go)
	sum := rep.Summary()
	if err := a.store.Update(v1.KindBackupPolicy, name, func(r *ObjectRecord) {
		r.Policy.LastRetentionTime = rep.Time
		r.LastRetention = sum
	}); err != nil {
		a.log.Error("record retention", "policy", name, "err", err)
	}
}
