package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/drivers/retry"
)

// lockDest is a destination that locks objects until a date, as S3 Object
// Lock does, and refuses every deletion when denyAll is set, as write-only
// credentials do.
type lockDest struct {
	drivers.Destination
	now     time.Time
	denyAll bool
	mu      sync.Mutex
	until   map[string]time.Time
}

func (d *lockDest) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	if _, err := d.Stat(ctx, key); err != nil {
		return time.Time{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.until[key], nil
}

func (d *lockDest) Retain(_ context.Context, key string, until time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if until.After(d.until[key]) {
		d.until[key] = until
	}
	return nil
}

func (d *lockDest) Delete(ctx context.Context, key string) error {
	d.mu.Lock()
	locked := d.until[key].After(d.now)
	d.mu.Unlock()
	if d.denyAll || locked {
		return drivers.Permanent(fmt.Errorf("delete %s: %w: Access Denied", key, drivers.ErrDeleteDenied))
	}
	return d.Destination.Delete(ctx, key)
}

// lockSnapshot locks every object of m until until.
func (d *lockDest) lockSnapshot(m *v1.SnapshotManifest, until time.Time) {
	d.until[m.ManifestKey()] = until
	for _, ob := range m.Objects {
		d.until[m.ObjectKey(ob)] = until
	}
}

func TestPruneKeepsLockedSnapshots(t *testing.T) {
	ld := &lockDest{Destination: local.New(t.TempDir()), now: day(6), until: map[string]time.Time{}}
	var ms []*v1.SnapshotManifest
	for d := 1; d <= 5; d++ {
		ms = append(ms, putSnapshot(t, ld, testHost, "web", "site", day(d)))
	}
	// Day 3 builds on day 2 and is locked until day 8; day 1's lock ended
	// on day 5.
	ms[2].Parent = ms[1].ID
	body, _ := json.Marshal(ms[2])
	ld.Destination.Put(context.Background(), ms[2].ManifestKey(), bytes.NewReader(body))
	ld.lockSnapshot(ms[2], day(8))
	ld.lockSnapshot(ms[0], day(5))

	// Behind the retry decorator, as the agent opens destinations.
	rep := prune(retry.Wrap(ld, retry.Policy{Attempts: 1}), testPolicy("web", &v1.Retention{KeepLast: 1}), PruneOptions{Clock: fixedClock(day(6))})
	dp := rep.Destinations[0]
	if rep.Failed() || dp.Result != v1.ResultSucceeded {
		t.Fatalf("result %s: %s", dp.Result, dp.Message)
	}
	d8, d5 := day(8), day(5)
	wantKeep := []SnapshotVerdict{
		{ID: ms[4].ID, Rules: []string{RuleKeepLast}},
		{ID: ms[2].ID, Rules: []string{RuleLocked}, LockedUntil: &d8},
		{ID: ms[1].ID, Rules: []string{RuleParent}},
	}
	wantDelete := []SnapshotVerdict{{ID: ms[3].ID, Deleted: true}, {ID: ms[0].ID, LockedUntil: &d5, Deleted: true}}
	if got := brief(dp.Keep); got != brief(wantKeep) {
		t.Errorf("keep:\n got %s\nwant %s", got, brief(wantKeep))
	}
	if got := brief(dp.Delete); got != brief(wantDelete) {
		t.Errorf("delete:\n got %s\nwant %s", got, brief(wantDelete))
	}
	if got, want := keysOf(t, ld), keysOfSnapshots(ms[1], ms[2], ms[4]); !slices.Equal(got, want) {
		t.Errorf("keys left:\n got %v\nwant %v", got, want)
	}
	// The next pass, once the lock has ended, lets day 3 (and day 2) go.
	ld.now = day(9)
	rep = prune(ld, testPolicy("web", &v1.Retention{KeepLast: 1}), PruneOptions{Clock: fixedClock(day(9))})
	if dp := rep.Destinations[0]; dp.Result != v1.ResultSucceeded || dp.Deleted != 2 {
		t.Errorf("after the lock: result %s, deleted %d (%s); want 2 deleted", dp.Result, dp.Deleted, dp.Message)
	}
}

func brief(vs []SnapshotVerdict) string {
	var b strings.Builder
	for _, v := range vs {
		until := "-"
		if v.LockedUntil != nil {
			until = v.LockedUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(&b, "[%s %v until=%s deleted=%v] ", v.ID, v.Rules, until, v.Deleted)
	}
	return b.String()
}

// TestPruneWriteOnlyCredentials: a destination that refuses every deletion
// stops the pass, which is reported (Skipped, deleteDenied), not failed,
// and leaves every snapshot whole.
func TestPruneWriteOnlyCredentials(t *testing.T) {
	ld := &lockDest{Destination: local.New(t.TempDir()), now: day(6), denyAll: true, until: map[string]time.Time{}}
	var ms []*v1.SnapshotManifest
	for d := 1; d <= 2; d++ {
		ms = append(ms, putSnapshot(t, ld, testHost, "web", "site", day(d)))
	}
	rep := prune(ld, testPolicy("web", &v1.Retention{KeepLast: 1}), PruneOptions{Clock: fixedClock(day(6))})
	dp := rep.Destinations[0]
	if rep.Failed() || dp.Result != v1.ResultSkipped || !dp.DeleteDenied || dp.Deleted != 0 {
		t.Fatalf("result %s, deleteDenied %v, deleted %d; want Skipped, true, 0", dp.Result, dp.DeleteDenied, dp.Deleted)
	}
	want := "the destination refused to delete, so retention stopped: stopped after 0 of 1 deletions: delete the manifest of snapshot " + ms[0].ID +
		" (source site): delete " + ms[0].ManifestKey() + ": delete denied: Access Denied; if these credentials are write-only on purpose, prune from a host with delete rights (aegis-agent prune --destination-credentials, docs/security.md)"
	if dp.Message != want {
		t.Errorf("message:\n got %s\nwant %s", dp.Message, want)
	}
	if s := rep.Summary(); s.Result != v1.ResultSucceeded {
		t.Errorf("summary result %s; want %s (reported, not failed)", s.Result, v1.ResultSucceeded)
	}
	for _, m := range ms {
		intact(t, ld, m)
	}
}

// TestPruneLeftoverDeleteDenied: a leftover the destination will not
// delete (a failed upload to a locked bucket) is reported and the pass
// goes on.
func TestPruneLeftoverDeleteDenied(t *testing.T) {
	root := t.TempDir()
	ld := &lockDest{Destination: local.New(root), now: day(6), until: map[string]time.Time{}}
	m := putSnapshot(t, ld, testHost, "web", "site", day(1))
	putSnapshot(t, ld, testHost, "web", "site", day(2))
	ld.Destination.Delete(context.Background(), m.ManifestKey()) // a failed upload: data only
	for _, ob := range m.Objects {
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(m.ObjectKey(ob))), day(1), day(1)); err != nil {
			t.Fatal(err)
		}
	}
	ld.lockSnapshot(m, day(9))
	rep := prune(ld, testPolicy("web", &v1.Retention{KeepLast: 1}), PruneOptions{Clock: fixedClock(day(6))})
	dp := rep.Destinations[0]
	if dp.Result != v1.ResultSucceeded || len(dp.Leftovers) != 1 || dp.Leftovers[0].Removed {
		t.Fatalf("result %s (%s), leftovers %+v", dp.Result, dp.Message, dp.Leftovers)
	}
	if want := "unfinished upload older than 24h0m0s; the destination refused to delete it"; dp.Leftovers[0].Reason != want {
		t.Errorf("leftover reason %q; want %q", dp.Leftovers[0].Reason, want)
	}
}
