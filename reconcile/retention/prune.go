package retention

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// MinLeftoverGrace is the least age of a leftover (data objects without a
// manifest) before retention removes it: an upload in progress, or one a
// slow clock stamped late, is never mistaken for garbage.
const MinLeftoverGrace = 24 * time.Hour

// deletingMarker is written into a snapshot's directory before its
// manifest is deleted, when its data is younger than the grace period. A
// directory with the marker and no manifest is a deletion that was
// interrupted: the next pass finishes it at once, whatever its age.
const deletingMarker = ".aegis-deleting"

// PruneOptions say how one retention pass of a policy runs.
type PruneOptions struct {
	// Host is this host's name: only its snapshots are pruned.
	Host string
	// Clock is the agent's clock (time.Now when nil). Its reading at the
	// start of the pass is "now": a snapshot stamped later is never deleted.
	Clock func() time.Time
	// DryRun decides and reports, and changes nothing.
	DryRun bool
	// Force prunes a destination whose last backup failed, or whose
	// listing lacks the snapshot the last backup stored there.
	Force bool
	// Grace is how old leftovers must be to be removed; anything below
	// MinLeftoverGrace counts as MinLeftoverGrace.
	Grace time.Duration
	// LastRun is the policy's last recorded backup run; nil if unknown.
	LastRun *v1.RunResult
	Logger  *slog.Logger
	// Journal receives every deletion; nil records none.
	Journal *RetentionLog
}

// PruneTarget is one destination of the policy, opened; Err says why it
// could not be.
type PruneTarget struct {
	Name string
	Dest drivers.Destination
	Err  error
}

// PruneReport is what a retention pass decided and did for one policy.
type PruneReport struct {
	Policy   string    `json:"policy"`
	Host     string    `json:"host"`
	Rules    string    `json:"rules"`
	TimeZone string    `json:"timeZone"`
	Time     time.Time `json:"time"`
	DryRun   bool      `json:"dryRun"`
	// Error is set when the policy could not be pruned at all.
	Error        string              `json:"error,omitempty"`
	Destinations []*DestinationPrune `json:"destinations"`
}

// DestinationPrune is what a retention pass decided and did on one
// destination.
type DestinationPrune struct {
	Destination string `json:"destination"`
	// Result is Succeeded, Skipped (nothing deleted on purpose) or Failed.
	Result  string `json:"result"`
	Message string `json:"message,omitempty"`
	// Keep and Delete hold this host's snapshots of the policy, by source,
	// newest first. In a dry run, Delete is what would be deleted.
	Keep   []SnapshotVerdict `json:"keep"`
	Delete []SnapshotVerdict `json:"delete"`
	// Leftovers are directories without a manifest.
	Leftovers        []LeftoverVerdict `json:"leftovers,omitempty"`
	Deleted          int               `json:"deleted"`
	LeftoversRemoved int               `json:"leftoversRemoved"`
	BytesFreed       int64             `json:"bytesFreed"`
	// DeleteDenied is set when the destination refused a deletion (the
	// credentials may write but not delete): the pass stopped there and
	// is Skipped, reported rather than failed (docs/security.md).
	DeleteDenied bool `json:"deleteDenied,omitempty"`
}

// SnapshotVerdict is one snapshot and what retention does with it.
type SnapshotVerdict struct {
	Source string    `json:"source"`
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	// Size is the stored size of everything in the snapshot's directory.
	Size int64 `json:"size"`
	// Rules are the rules that keep it.
	Rules []string `json:"rules,omitempty"`
	// LockedUntil is when the destination's lock on it ends, for a
	// snapshot the rules let go (read only for those).
	LockedUntil *time.Time `json:"lockedUntil,omitempty"`
	// Deleted is true once it was deleted.
	Deleted bool `json:"deleted,omitempty"`
}

// LeftoverVerdict is one directory without a manifest.
type LeftoverVerdict struct {
	Dir     string `json:"dir"`
	Objects int    `json:"objects"`
	Size    int64  `json:"size"`
	Remove  bool   `json:"remove"`
	Reason  string `json:"reason"`
	Removed bool   `json:"removed,omitempty"`
}

// Failed reports whether any destination failed or the policy could not be
// pruned.
func (r *PruneReport) Failed() bool {
	if r.Error != "" {
		return true
	}
	for _, d := range r.Destinations {
		if d.Result == v1.ResultFailed {
			return true
		}
	}
	return false
}

// Skipped reports whether a destination was left alone on purpose.
func (r *PruneReport) Skipped() bool {
	for _, d := range r.Destinations {
		if d.Result == v1.ResultSkipped {
			return true
		}
	}
	return false
}

// Summary is the report as recorded in the state and the status.
func (r *PruneReport) Summary() *v1.RetentionResult {
	s := &v1.RetentionResult{Time: r.Time.UTC()}
	ok := 0
	for _, d := range r.Destinations {
		s.Kept += len(d.Keep)
		s.Deleted += d.Deleted
		s.LeftoversRemoved += d.LeftoversRemoved
		s.BytesFreed += d.BytesFreed
		if d.Result == v1.ResultSucceeded || d.DeleteDenied {
			ok++
		}
		s.Destinations = append(s.Destinations, v1.RetentionDestinationResult{
			Name: d.Destination, Result: d.Result, Kept: len(d.Keep), Deleted: d.Deleted,
			LeftoversRemoved: d.LeftoversRemoved, BytesFreed: d.BytesFreed, Message: d.Message,
		})
	}
	switch {
	case r.Error != "" || ok == 0 && len(r.Destinations) > 0:
		s.Result = v1.ResultFailed
	case ok == len(r.Destinations):
		s.Result = v1.ResultSucceeded
	default:
		s.Result = v1.ResultPartiallyFailed
	}
	return s
}

// PrunePolicy applies a policy's retention on each of its destinations,
// one after the other; a problem on one leaves the others unaffected.
//
// On each destination it lists this host's snapshots of the policy, reads
// their manifests, groups them by source, and decides with DecideRetention.
// It deletes nothing there when the listing or a manifest read fails, when
// the last backup to that destination failed, or when the listing lacks
// the snapshot the last backup stored there (the last two unless
// opts.Force). It never deletes the newest snapshot of a source, nor one
// stamped after the pass started. A snapshot goes manifest first, so it
// disappears at once, then its data. Leftovers of interrupted uploads and
// deletions are removed in the same pass.
func PrunePolicy(ctx context.Context, p *v1.BackupPolicy, targets []PruneTarget, opts PruneOptions) *PruneReport {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Grace = max(opts.Grace, MinLeftoverGrace)
	name := p.Metadata.Name
	rep := &PruneReport{Policy: name, Host: opts.Host, Time: opts.Clock(), DryRun: opts.DryRun, TimeZone: cmp.Or(p.Spec.TimeZone, "UTC"), Destinations: []*DestinationPrune{}}
	rules, err := ParseRetentionRules(p.Spec.Retention, p.Spec.TimeZone)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	rep.Rules = rules.String()
	for _, t := range targets {
		log := opts.Logger.With("policy", name, "destination", t.Name)
		dp := pruneDestination(ctx, log, t, name, rules, rep.Time, opts)
		rep.Destinations = append(rep.Destinations, dp)
		switch dp.Result {
		case v1.ResultFailed:
			log.Error("retention failed", "err", dp.Message, "deleted", dp.Deleted)
		case v1.ResultSkipped:
			log.Warn("retention skipped this destination", "reason", dp.Message)
		default:
			log.Info("retention applied", "dry_run", opts.DryRun, "kept", len(dp.Keep), "deleted", dp.Deleted, "to_delete", len(dp.Delete), "leftovers_removed", dp.LeftoversRemoved)
		}
	}
	return rep
}

func pruneDestination(ctx context.Context, log *slog.Logger, t PruneTarget, policy string, rules RetentionRules, now time.Time, opts PruneOptions) *DestinationPrune {
	dp := &DestinationPrune{Destination: t.Name, Result: v1.ResultSucceeded, Keep: []SnapshotVerdict{}, Delete: []SnapshotVerdict{}}
	fail := func(format string, args ...any) *DestinationPrune {
		dp.Result, dp.Message = v1.ResultFailed, fmt.Sprintf(format, args...)
		return dp
	}
	if t.Err != nil {
		return fail("%v", t.Err)
	}
	dirs, err := scanDestination(ctx, t.Dest, opts.Host, policy)
	if err != nil {
		return fail("nothing deleted: %v", err)
	}
	plan, err := planPrune(dirs, rules, now, opts.Grace)
	if err != nil {
		return fail("nothing deleted: %v", err)
	}
	if r, ok := drivers.As[drivers.Retainer](t.Dest); ok && len(plan.remove) > 0 {
		locked, err := readLocks(ctx, r, plan.remove, now)
		if err != nil {
			return fail("nothing deleted: %v", err)
		}
		if locked > 0 {
			// Keep them, and what they build on.
			if plan, err = planPrune(dirs, rules, now, opts.Grace); err != nil {
				return fail("nothing deleted: %v", err)
			}
		}
	}
	for _, k := range plan.keep {
		dp.Keep = append(dp.Keep, k.dir.verdict(k.rules))
	}
	for _, d := range plan.remove {
		dp.Delete = append(dp.Delete, d.verdict(nil))
	}
	// Newest first in the report, like the snapshots command reads best.
	sortVerdicts(dp.Keep)
	sortVerdicts(dp.Delete)
	for _, l := range plan.leftovers {
		dp.Leftovers = append(dp.Leftovers, LeftoverVerdict{Dir: strings.TrimSuffix(l.dir.prefix, "/"), Objects: len(l.dir.objects), Size: l.dir.size, Remove: l.remove, Reason: l.reason})
	}

	forced := ""
	if why := refusal(opts.LastRun, t.Name, dirs); why != "" {
		if !opts.Force {
			dp.Result, dp.Message = v1.ResultSkipped, why+"; nothing deleted (prune --force deletes anyway)"
			return dp
		}
		forced = why
		dp.Message = "forced: " + why
	}
	if opts.DryRun {
		return dp
	}

	ex := &pruneExec{dest: t.Dest, log: log, opts: opts, now: now, destName: t.Name, policy: policy, rules: rules.String(), forced: forced}
	if err := ex.deleteSnapshots(ctx, plan.remove, dp); err != nil {
		if errors.Is(err, drivers.ErrDeleteDenied) {
			return denied(log, dp, err)
		}
		return fail("%v", err)
	}
	if err := ex.removeLeftovers(ctx, plan.leftovers, dp); err != nil {
		return fail("%v", err)
	}
	ex.cleanUp(ctx, plan.staleMarkers, dp)
	if _, err := pruneRepository(ctx, log, t.Dest, opts.Host, policy, opts.Clock()); err != nil {
		return fail("%v", err)
	}
	return dp
}

// denied reports a pass that stopped because the destination refused a
// deletion: the credentials may write but not delete, as a host that only
// backs up should have. Reported, not failed; the pass from a host with
// delete rights does the deleting.
func denied(log *slog.Logger, dp *DestinationPrune, err error) *DestinationPrune {
	dp.Result, dp.DeleteDenied = v1.ResultSkipped, true
	dp.Message = fmt.Sprintf("the destination refused to delete, so retention stopped: %v; if these credentials are write-only on purpose, prune from a host with delete rights (aegis-agent prune --destination-credentials, docs/security.md)", err)
	log.Warn("the destination refused a deletion: retention left the rest for credentials that may delete", "err", err)
	return dp
}

// readLocks reads, for each snapshot about to be deleted, until when the
// destination locks its manifest, and returns how many are locked after
// now. The manifest is the last object of a snapshot written, so its lock
// ends last. A manifest gone meanwhile counts as unlocked.
func readLocks(ctx context.Context, r drivers.Retainer, dirs []*snapDir, now time.Time) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(manifestReaders)
	for _, d := range dirs {
		g.Go(func() error {
			until, err := r.RetainedUntil(gctx, d.prefix+v1.ManifestName)
			if err != nil && !errors.Is(err, drivers.ErrNotFound) {
				return fmt.Errorf("read the lock of snapshot %s (source %s): %w", d.id, d.source, err)
			}
			d.lockedUntil = until
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dirs {
		if d.lockedUntil.After(now) {
			n++
		}
	}
	return n, nil
}

// deleteSnapshots deletes the snapshots retention let go: several at once
// (a remote destination answers slowly), each manifest first; oldest first,
// so an interrupted pass has removed the oldest. The first failure stops
// the rest. It counts what it deleted in dp.
func (x *pruneExec) deleteSnapshots(ctx context.Context, remove []*snapDir, dp *DestinationPrune) error {
	verdictOf := make(map[string]*SnapshotVerdict, len(dp.Delete))
	for i := range dp.Delete {
		verdictOf[dp.Delete[i].Source+"/"+dp.Delete[i].ID] = &dp.Delete[i]
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteWorkers)
	for _, d := range slices.Backward(remove) {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := x.deleteSnapshot(gctx, d); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			dp.Deleted++
			dp.BytesFreed += d.size
			verdictOf[d.source+"/"+d.id].Deleted = true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("stopped after %d of %d deletions: %w", dp.Deleted, len(remove), err)
	}
	return nil
}

// removeLeftovers removes the unfinished uploads the plan let go.
func (x *pruneExec) removeLeftovers(ctx context.Context, leftovers []leftover, dp *DestinationPrune) error {
	for i, l := range leftovers {
		if !l.remove {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stopped before removing leftover %s: %w", l.dir.prefix, err)
		}
		removed, err := x.removeLeftover(ctx, l)
		if errors.Is(err, drivers.ErrDeleteDenied) {
			// Locked (a failed upload to a locked bucket) or write-only
			// credentials: it stays until the lock ends or others delete.
			dp.Leftovers[i].Reason += "; the destination refused to delete it"
			x.log.Warn("the destination refused to delete a leftover; left alone", "dir", l.dir.prefix, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("remove leftover %s: %w", strings.TrimSuffix(l.dir.prefix, "/"), err)
		}
		if removed {
			dp.LeftoversRemoved++
			dp.BytesFreed += l.dir.size
			dp.Leftovers[i].Removed = true
		}
	}
	return nil
}

// cleanUp removes stale deletion markers and the temporary files of
// uploads a crash interrupted; a failure there is logged, not fatal.
func (x *pruneExec) cleanUp(ctx context.Context, staleMarkers []string, dp *DestinationPrune) {
	for _, key := range staleMarkers {
		// A deletion that a later policy now keeps: its marker must go,
		// or a lost manifest would later look like a deletion to finish.
		if err := x.dest.Delete(ctx, key); err != nil {
			x.log.Warn("cannot remove a stale deletion marker", "key", key, "err", err)
		}
	}
	// Temporary files the driver hides from List (the local driver's
	// .aegis-tmp-* files).
	if tc, ok := drivers.As[drivers.TempCleaner](x.dest); ok {
		n, size, err := tc.CleanTemp(ctx, x.now.Add(-x.opts.Grace))
		if err != nil {
			x.log.Warn("cannot remove temporary files of interrupted uploads", "err", err)
		}
		dp.LeftoversRemoved += n
		dp.BytesFreed += size
	}
}

// refusal says why nothing should be deleted on a destination, judged
// from the last recorded run: its backup there failed, or the listing
// lacks the snapshot it stored there (so the listing may be incomplete).
func refusal(last *v1.RunResult, dest string, dirs []*snapDir) string {
	if last == nil {
		return ""
	}
	var dr *v1.DestinationResult
	for i := range last.Destinations {
		if last.Destinations[i].Name == dest {
			dr = &last.Destinations[i]
		}
	}
	switch {
	case last.Result == v1.ResultFailed:
		return fmt.Sprintf("the last backup (%s) failed", last.StartTime.UTC().Format(time.RFC3339))
	case dr == nil:
		return "" // not a destination of the last run
	case dr.Result != v1.ResultSucceeded:
		return fmt.Sprintf("the last backup to this destination failed: %s", dr.Error)
	}
	present := map[string]bool{}
	for _, d := range dirs {
		if d.manifest != nil {
			present[d.source+"/"+d.id] = true
		}
	}
	for _, s := range last.Sources {
		if s.Result == v1.ResultSucceeded && last.SnapshotID != "" && !present[s.Name+"/"+last.SnapshotID] {
			return fmt.Sprintf("the listing lacks snapshot %s of source %s, which the last backup stored here: it may be incomplete", last.SnapshotID, s.Name)
		}
	}
	return ""
}

func sortVerdicts(vs []SnapshotVerdict) {
	slices.SortFunc(vs, func(a, b SnapshotVerdict) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), b.Time.Compare(a.Time), cmp.Compare(b.ID, a.ID))
	})
}

// snapDir is one directory HOST/POLICY/SOURCE/ID/ on a destination.
type snapDir struct {
	source, id string
	prefix     string // HOST/POLICY/SOURCE/ID/
	objects    []drivers.ObjectInfo
	size       int64
	hasMarker  bool
	// lockedUntil is when the destination's lock on the manifest ends;
	// read only for snapshots the rules let go (zero: not read or none).
	lockedUntil time.Time
	// manifest is nil when the directory has none.
	manifest *v1.SnapshotManifest
}

// time is when the snapshot was taken: its manifest's time, else the time
// in its ID.
func (d *snapDir) time() time.Time {
	if d.manifest != nil && !d.manifest.Time.IsZero() {
		return d.manifest.Time
	}
	return idTime(d.id)
}

func (d *snapDir) verdict(rules []string) SnapshotVerdict {
	v := SnapshotVerdict{Source: d.source, ID: d.id, Time: d.time().UTC(), Size: d.size, Rules: rules}
	if !d.lockedUntil.IsZero() {
		t := d.lockedUntil.UTC()
		v.LockedUntil = &t
	}
	return v
}

// idTime is the time in a snapshot ID (its first 16 characters); zero if
// the ID has none.
func idTime(id string) time.Time {
	if len(id) < 16 {
		return time.Time{}
	}
	t, err := time.Parse("20060102T150405Z", id[:16])
	if err != nil {
		return time.Time{}
	}
	return t
}

// oldEnough reports whether a directory's ID time and every object's
// modification time are older than the grace period. An object whose
// destination gives no time is never old enough.
func (d *snapDir) oldEnough(now time.Time, grace time.Duration) bool {
	limit := now.Add(-grace)
	if t := idTime(d.id); t.IsZero() || !t.Before(limit) {
		return false
	}
	for _, o := range d.objects {
		if o.ModTime.IsZero() || !o.ModTime.Before(limit) {
			return false
		}
	}
	return true
}

// manifestReaders bounds the manifests read at once from one
// destination, deleteWorkers the snapshots deleted at once.
const (
	manifestReaders = 8
	deleteWorkers   = 8
)

// scanDestination lists this host's directories of a policy and reads
// every manifest. It fails, rather than return part of the picture, when
// the listing or any manifest read fails.
func scanDestination(ctx context.Context, dest drivers.Destination, host, policy string) ([]*snapDir, error) {
	prefix := host + "/" + policy + "/"
	objs, err := dest.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	byDir := map[string]*snapDir{}
	var dirs []*snapDir
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Key, prefix)
		if !ok {
			continue
		}
		// SOURCE/ID/NAME: anything else under the prefix is not Aegis's
		// and is left alone.
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) != 3 || parts[0] == "" || parts[2] == "" || !v1.ValidSnapshotID(parts[1]) {
			continue
		}
		k := parts[0] + "/" + parts[1]
		d, ok := byDir[k]
		if !ok {
			d = &snapDir{source: parts[0], id: parts[1], prefix: prefix + k + "/"}
			byDir[k] = d
			dirs = append(dirs, d)
		}
		d.objects = append(d.objects, o)
		d.size += o.Size
		if parts[2] == deletingMarker {
			d.hasMarker = true
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(manifestReaders)
	for _, d := range dirs {
		if !slices.ContainsFunc(d.objects, func(o drivers.ObjectInfo) bool { return o.Key == d.prefix+v1.ManifestName }) {
			continue
		}
		g.Go(func() error {
			m, err := snapshot.ReadManifest(gctx, dest, d.prefix+v1.ManifestName)
			if err != nil {
				return err
			}
			d.manifest = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].prefix < dirs[j].prefix })
	return dirs, nil
}

// prunePlan is the decision for one destination.
type prunePlan struct {
	keep []keptDir
	// remove is newest first.
	remove    []*snapDir
	leftovers []leftover
	// staleMarkers are deletion markers in directories of kept snapshots.
	staleMarkers []string
}

type keptDir struct {
	dir   *snapDir
	rules []string
}

type leftover struct {
	dir    *snapDir
	remove bool
	reason string
}

// planPrune decides what to keep and delete on one destination. It is pure;
// the error reports a broken guarantee, and then nothing may be deleted.
func planPrune(dirs []*snapDir, rules RetentionRules, now time.Time, grace time.Duration) (prunePlan, error) {
	var plan prunePlan
	groups := map[string][]*snapDir{}
	var sources []string
	for _, d := range dirs {
		if d.manifest == nil {
			plan.leftovers = append(plan.leftovers, leftoverOf(d, now, grace))
			continue
		}
		if _, ok := groups[d.source]; !ok {
			sources = append(sources, d.source)
		}
		groups[d.source] = append(groups[d.source], d)
	}
	sort.Strings(sources)
	for _, src := range sources {
		group := groups[src]
		byID := make(map[string]*snapDir, len(group))
		reasons := make(map[*snapDir][]string, len(group))
		var items []RetentionItem
		for _, d := range group {
			byID[d.id] = d
			if d.time().After(now) {
				reasons[d] = []string{RuleTooNew}
				continue
			}
			items = append(items, RetentionItem{ID: d.id, Time: d.time()})
		}
		dec := DecideRetention(items, rules)
		for _, k := range dec.Keep {
			reasons[byID[k.ID]] = k.Reasons
		}
		keepLocked(group, reasons, now)
		// A kept snapshot keeps what it builds on (incremental formats).
		queue := make([]*snapDir, 0, len(reasons))
		for d := range reasons {
			queue = append(queue, d)
		}
		for len(queue) > 0 {
			d := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			for _, pid := range parentsOf(d.manifest) {
				if pd, ok := byID[pid]; ok {
					if _, kept := reasons[pd]; !kept {
						queue = append(queue, pd)
					}
					if !slices.Contains(reasons[pd], RuleParent) {
						reasons[pd] = append(slices.Clip(reasons[pd]), RuleParent)
					}
				}
			}
		}

		newest := slices.MaxFunc(group, func(a, b *snapDir) int {
			return cmp.Or(a.time().Compare(b.time()), cmp.Compare(a.id, b.id))
		})
		if _, ok := reasons[newest]; !ok {
			return prunePlan{}, fmt.Errorf("internal error: retention would delete snapshot %s, the newest of source %s", newest.id, src)
		}
		for _, d := range group {
			r, ok := reasons[d]
			switch {
			case ok:
				plan.keep = append(plan.keep, keptDir{dir: d, rules: r})
				if d.hasMarker {
					plan.staleMarkers = append(plan.staleMarkers, d.prefix+deletingMarker)
				}
			case d.time().After(now):
				return prunePlan{}, fmt.Errorf("internal error: retention would delete snapshot %s, stamped after now", d.id)
			default:
				plan.remove = append(plan.remove, d)
			}
		}
	}
	slices.SortFunc(plan.remove, func(a, b *snapDir) int {
		return cmp.Or(b.time().Compare(a.time()), cmp.Compare(b.id, a.id), cmp.Compare(a.source, b.source))
	})
	return plan, nil
}

// keepLocked adds RuleLocked to the reasons of the snapshots whose lock
// ends after now: deleting them would be refused.
func keepLocked(group []*snapDir, reasons map[*snapDir][]string, now time.Time) {
	for _, d := range group {
		if d.lockedUntil.After(now) {
			reasons[d] = append(slices.Clip(reasons[d]), RuleLocked)
		}
	}
}

// parentsOf lists the snapshot IDs a manifest builds on.
func parentsOf(m *v1.SnapshotManifest) []string {
	if m == nil {
		return nil
	}
	var out []string
	if m.Parent != "" {
		out = append(out, m.Parent)
	}
	for _, o := range m.Objects {
		if o.Parent != "" {
			out = append(out, o.Parent)
		}
	}
	return out
}

func leftoverOf(d *snapDir, now time.Time, grace time.Duration) leftover {
	switch {
	case d.hasMarker:
		return leftover{dir: d, remove: true, reason: "interrupted deletion"}
	case d.oldEnough(now, grace):
		return leftover{dir: d, remove: true, reason: fmt.Sprintf("unfinished upload older than %s", grace)}
	}
	return leftover{dir: d, reason: fmt.Sprintf("unfinished upload younger than %s, or one in progress: left for now", grace)}
}

// pruneExec carries out the deletions on one destination.
type pruneExec struct {
	dest     drivers.Destination
	log      *slog.Logger
	opts     PruneOptions
	now      time.Time
	destName string
	policy   string
	rules    string
	forced   string
}

// finishTimeout bounds how long the data of a snapshot whose manifest is
// gone is still deleted after the pass was cancelled.
const finishTimeout = time.Minute

// deleteSnapshot deletes one snapshot: a deletion marker first when its
// data is young, then the manifest (the snapshot is gone), then the rest
// of its directory, the marker last.
func (x *pruneExec) deleteSnapshot(ctx context.Context, d *snapDir) error {
	markerKey := d.prefix + deletingMarker
	marked := d.hasMarker
	// On a destination that locks objects the marker would be locked
	// too, and outlive the data it speaks for: no marker there.
	if !marked && d.lockedUntil.IsZero() && !d.oldEnough(x.now, x.opts.Grace) {
		body, _ := json.Marshal(map[string]any{"snapshot": d.id, "host": x.opts.Host, "policy": x.policy, "source": d.source, "time": x.now.UTC()})
		if _, err := x.dest.Put(ctx, markerKey, bytes.NewReader(append(body, '\n'))); err != nil {
			// Go on: freeing space matters most when writes fail. An
			// interruption now leaves data for the grace period to clear.
			x.log.Warn("cannot write the deletion marker; going on without it", "snapshot", d.id, "err", err)
		} else {
			marked = true
		}
	}
	// The last moment to stop with the snapshot whole.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := x.dest.Delete(ctx, d.prefix+v1.ManifestName); err != nil {
		return fmt.Errorf("delete the manifest of snapshot %s (source %s): %w", d.id, d.source, err)
	}
	reason := "kept by no rule (" + x.rules + ")"
	if x.forced != "" {
		reason += "; forced although " + x.forced
	}
	t := d.time().UTC()
	if err := x.journal(RetentionEntry{Action: "deleteSnapshot", Source: d.source, Snapshot: d.id, SnapshotTime: &t, Reason: reason, Objects: len(d.objects), Bytes: d.size}); err != nil {
		return err
	}
	x.log.Info("snapshot deleted", "source", d.source, "snapshot", d.id, "time", t)
	// The snapshot is gone; finish its data even if the pass is cancelled
	// now, so a stop leaves as little behind as it can.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	return x.deleteData(fctx, d, marked)
}

// deleteData deletes every object of a directory but its manifest, the
// deletion marker last.
func (x *pruneExec) deleteData(ctx context.Context, d *snapDir, marked bool) error {
	for _, o := range d.objects {
		name := strings.TrimPrefix(o.Key, d.prefix)
		if name == v1.ManifestName || name == deletingMarker {
			continue
		}
		if err := x.dest.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("delete %s: %w", o.Key, err)
		}
	}
	if marked {
		if err := x.dest.Delete(ctx, d.prefix+deletingMarker); err != nil {
			return fmt.Errorf("delete %s: %w", d.prefix+deletingMarker, err)
		}
	}
	return nil
}

// removeLeftover removes a directory without a manifest, after checking
// once more that it has none: a listing that missed the manifest must not
// cost a snapshot.
func (x *pruneExec) removeLeftover(ctx context.Context, l leftover) (bool, error) {
	d := l.dir
	_, err := x.dest.Stat(ctx, d.prefix+v1.ManifestName)
	switch {
	case err == nil:
		x.log.Warn("a leftover has a manifest after all: left alone", "dir", d.prefix)
		return false, nil
	case !errors.Is(err, drivers.ErrNotFound):
		return false, fmt.Errorf("check for a manifest: %w", err)
	}
	if err := x.deleteData(ctx, d, d.hasMarker); err != nil {
		return false, err
	}
	var t *time.Time
	if it := idTime(d.id); !it.IsZero() {
		t = &it
	}
	if err := x.journal(RetentionEntry{Action: "removeLeftover", Source: d.source, Snapshot: d.id, SnapshotTime: t, Reason: l.reason, Objects: len(d.objects), Bytes: d.size}); err != nil {
		return true, err
	}
	x.log.Info("leftover removed", "dir", d.prefix, "reason", l.reason)
	return true, nil
}

func (x *pruneExec) journal(e RetentionEntry) error {
	if x.opts.Journal == nil {
		return nil
	}
	e.Time = x.opts.Clock().UTC()
	e.Destination, e.Host, e.Policy = x.destName, x.opts.Host, x.policy
	e.Forced = x.forced != ""
	if err := x.opts.Journal.Record(e); err != nil {
		return fmt.Errorf("write %s: %w (stopping: every deletion must be logged)", observe.RetentionLogName, err)
	}
	return nil
}

// RetentionEntry is one line of retention.log.
type RetentionEntry struct {
	Time        time.Time `json:"time"`
	Destination string    `json:"destination"`
	// Action is deleteSnapshot or removeLeftover.
	Action       string     `json:"action"`
	Host         string     `json:"host"`
	Policy       string     `json:"policy"`
	Source       string     `json:"source"`
	Snapshot     string     `json:"snapshot"`
	SnapshotTime *time.Time `json:"snapshotTime,omitempty"`
	Reason       string     `json:"reason"`
	Objects      int        `json:"objects"`
	Bytes        int64      `json:"bytes"`
	Forced       bool       `json:"forced,omitempty"`
}

// RetentionLog is the audit trail of deletions: one JSON line per deleted
// snapshot or removed leftover, appended to LOG_DIR/retention.log.
type RetentionLog struct {
	mu sync.Mutex
	w  io.Writer
	f  *os.File
}

// OpenRetentionLog opens (creating) retention.log in dir for appending.
func OpenRetentionLog(dir string) (*RetentionLog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, observe.RetentionLogName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &RetentionLog{w: f, f: f}, nil
}

// NewRetentionLog writes the entries to w.
func NewRetentionLog(w io.Writer) *RetentionLog { return &RetentionLog{w: w} }

// Record appends one entry.
func (l *RetentionLog) Record(e RetentionEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(append(b, '\n'))
	return err
}

// Close syncs and closes the file.
func (l *RetentionLog) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Sync()
	return errors.Join(err, l.f.Close())
}
