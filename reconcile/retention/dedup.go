package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/dedup"
)

// pruneRepository removes, after retention deleted snapshots, the packs of
// the policy's deduplicated repository that no snapshot references any
// more, and repacks the mostly unreferenced ones, in two phases (marked
// first, deleted on a later pass once dedup.DefaultGrace has passed) so
// that a backup running meanwhile never loses a chunk it reuses.
//
// now is read before the manifests are listed: PlanPrune relies on it.
func pruneRepository(ctx context.Context, log *slog.Logger, dest drivers.Destination, host, policy string, now time.Time) (dedup.PrunePlan, error) {
	repo := dedup.RepoPrefix(host, policy)
	st, indexKeys, err := dedup.LoadPruneState(ctx, dest, repo, now)
	if err != nil {
		return dedup.PrunePlan{}, fmt.Errorf("repository %s: %w", repo, err)
	}
	if len(st.Packs) == 0 && len(st.Marks) == 0 {
		return dedup.PrunePlan{}, nil // no deduplicated snapshot was ever stored
	}
	dirs, err := scanDestination(ctx, dest, host, policy)
	if err != nil {
		return dedup.PrunePlan{}, fmt.Errorf("repository %s: nothing pruned: %w", repo, err)
	}
	refs, err := referencedChunks(dirs, host)
	if err != nil {
		return dedup.PrunePlan{}, fmt.Errorf("repository %s: nothing pruned: %w", repo, err)
	}
	plan, err := dedup.PlanPrune(st, refs, dedup.PruneOptions{})
	if err != nil {
		return plan, fmt.Errorf("repository %s: nothing pruned: %w", repo, err)
	}
	log.Info("repository prune", "repository", repo, "packs", len(st.Packs),
		"mark", len(plan.Mark), "delete", len(plan.Delete), "repack", len(plan.Repack), "unmark", len(plan.Unmark), "freed_bytes", plan.FreedBytes)
	if err := dedup.Prune(ctx, dest, repo, st, indexKeys, plan, dedup.PruneOptions{}); err != nil {
		return plan, fmt.Errorf("repository %s: %w", repo, err)
	}
	return plan, nil
}

// referencedChunks lists every chunk the snapshots of dirs reference.
func referencedChunks(dirs []*snapDir, host string) (map[dedup.ID]bool, error) {
	refs := map[dedup.ID]bool{}
	for _, d := range dirs {
		m := d.manifest
		if m == nil || m.Host != host || !m.Deduplicated() {
			continue
		}
		for _, ob := range m.Objects {
			for _, c := range ob.Chunks {
				id, err := dedup.ParseID(c.ID)
				if err != nil {
					return nil, fmt.Errorf("snapshot %s/%s: chunk %q is not valid", d.source, d.id, c.ID)
				}
				refs[id] = true
			}
		}
	}
	return refs, nil
}
