package retention

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// errInjected is the failure faultDest injects.
var errInjected = errors.New("injected fault")

// faultDest decorates a destination with faults: a failing listing, a
// listing that silently drops keys (breaking the contract, as a buggy
// server might), manifest reads that fail after some succeed, a mutation
// (Put or Delete) that fails, and a "kill": after a given mutation every
// later call fails, as if the process had died there.
type faultDest struct {
	drivers.Destination
	mu sync.Mutex
	// listErr fails List.
	listErr error
	// hide drops keys with this substring from List.
	hide string
	// getOK is how many Gets succeed before the rest fail; <0: all do.
	getOK int
	// failMutation fails the mutation of this number (1-based); 0: none.
	failMutation int
	// killAfter kills the destination after the mutation of this number,
	// or after the first manifest Delete when killAfterManifest is set.
	killAfter         int
	killAfterManifest bool
	dead              bool
	mutations, gets   int
	// refused counts calls made after the kill.
	refused int
	log     []string
}

func newFaultDest(d drivers.Destination) *faultDest { return &faultDest{Destination: d, getOK: -1} }

func (f *faultDest) gone() error {
	if f.dead {
		f.refused++
		return fmt.Errorf("the agent was killed: %w", errInjected)
	}
	return nil
}

func (f *faultDest) mutate(op, key string, do func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.gone(); err != nil {
		return err
	}
	f.mutations++
	if f.mutations == f.failMutation {
		f.log = append(f.log, "FAIL "+op+" "+key)
		return fmt.Errorf("%s %s: %w", op, key, errInjected)
	}
	if err := do(); err != nil {
		return err
	}
	f.log = append(f.log, op+" "+key)
	if f.mutations == f.killAfter || (f.killAfterManifest && op == "delete" && path.Base(key) == v1.ManifestName) {
		f.dead = true
	}
	return nil
}

func (f *faultDest) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	var n int64
	err := f.mutate("put", key, func() (err error) {
		n, err = f.Destination.Put(ctx, key, r)
		return err
	})
	return n, err
}

func (f *faultDest) Delete(ctx context.Context, key string) error {
	return f.mutate("delete", key, func() error { return f.Destination.Delete(ctx, key) })
}

func (f *faultDest) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.gone(); err != nil {
		return nil, err
	}
	f.gets++
	if f.getOK >= 0 && f.gets > f.getOK {
		return nil, fmt.Errorf("get %s: %w", key, errInjected)
	}
	return f.Destination.Get(ctx, key)
}

func (f *faultDest) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.gone(); err != nil {
		return drivers.ObjectInfo{}, err
	}
	return f.Destination.Stat(ctx, key)
}

func (f *faultDest) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.gone(); err != nil {
		return nil, err
	}
	if f.listErr != nil {
		return nil, f.listErr
	}
	all, err := f.Destination.List(ctx, prefix)
	if err != nil || f.hide == "" {
		return all, err
	}
	var out []drivers.ObjectInfo
	for _, o := range all {
		if !strings.Contains(o.Key, f.hide) {
			out = append(out, o)
		}
	}
	return out, nil
}

var _ drivers.Destination = (*faultDest)(nil)

const testHost = "h1"

// day is noon UTC on a day of November 2026.
func day(d int) time.Time { return time.Date(2026, time.November, d, 12, 0, 0, 0, time.UTC) }

// putSnapshot stores a snapshot as the pipeline does: data objects, then
// the manifest. Its data is random, its manifest records size and SHA-256.
func putSnapshot(t testing.TB, dest drivers.Destination, host, policy, source string, at time.Time) *v1.SnapshotManifest {
	t.Helper()
	ctx := context.Background()
	m := &v1.SnapshotManifest{
		FormatVersion: v1.SnapshotFormatVersion, ID: v1.NewSnapshotID(at), Time: at.UTC(), Host: host, Policy: policy, Source: source,
		SourceKind: "files", Compression: v1.SnapshotCodec{Algorithm: "none"}, Encryption: v1.SnapshotCodec{Algorithm: "none"}, Agent: "test",
	}
	for _, name := range []string{"a.sql", "b.sql"} {
		data := make([]byte, 64)
		rand.Read(data)
		sum := sha256.Sum256(data)
		ob := v1.SnapshotObject{Name: name, Key: name, Format: "sql", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), RawSize: int64(len(data))}
		if _, err := dest.Put(ctx, m.ObjectKey(ob), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		m.Objects = append(m.Objects, ob)
	}
	body, _ := json.Marshal(m)
	if _, err := dest.Put(ctx, m.ManifestKey(), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	return m
}

// intact fails the test unless the snapshot's manifest and every object
// are there, whole.
func intact(t *testing.T, dest drivers.Destination, m *v1.SnapshotManifest) {
	t.Helper()
	ctx := context.Background()
	if _, err := snapshot.ReadManifest(ctx, dest, m.ManifestKey()); err != nil {
		t.Errorf("kept snapshot %s/%s is damaged: %v", m.Source, m.ID, err)
		return
	}
	for _, ob := range m.Objects {
		rc, err := dest.Get(ctx, m.ObjectKey(ob))
		if err != nil {
			t.Errorf("kept snapshot %s/%s is damaged: %v", m.Source, m.ID, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != ob.SHA256 {
			t.Errorf("kept snapshot %s/%s: object %s is damaged", m.Source, m.ID, ob.Key)
		}
	}
}

// keysOf lists every key on dest.
func keysOf(t *testing.T, dest drivers.Destination) []string {
	t.Helper()
	objs, err := dest.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

// keysOfSnapshots lists the keys the given snapshots consist of.
func keysOfSnapshots(ms ...*v1.SnapshotManifest) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ManifestKey())
		for _, ob := range m.Objects {
			out = append(out, m.ObjectKey(ob))
		}
	}
	sort.Strings(out)
	return out
}

func testPolicy(name string, r *v1.Retention) *v1.BackupPolicy {
	return &v1.BackupPolicy{
		TypeMeta: v1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindBackupPolicy},
		Metadata: v1.ObjectMeta{Name: name},
		Spec: v1.BackupPolicySpec{
			Schedule:     "@daily",
			Sources:      []v1.Source{{Name: "site", Files: &v1.FilesSource{Paths: []string{"/var/www"}}}},
			Destinations: []string{"disk"},
			Retention:    r,
		},
	}
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func prune(dest drivers.Destination, p *v1.BackupPolicy, opts PruneOptions) *PruneReport {
	if opts.Host == "" {
		opts.Host = testHost
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return PrunePolicy(context.Background(), p, []PruneTarget{{Name: "disk", Dest: dest}}, opts)
}

// world is a destination shared by two hosts and two policies.
type world struct {
	root   string
	dest   drivers.Destination
	site   []*v1.SnapshotManifest // h1/web/site, 1-10 November, oldest first
	db     []*v1.SnapshotManifest // h1/web/db, 8-10 November
	others []*v1.SnapshotManifest // other hosts' and policies' snapshots
}

func newWorld(t *testing.T) *world {
	root := t.TempDir()
	w := &world{root: root, dest: local.New(root)}
	for d := 1; d <= 10; d++ {
		w.site = append(w.site, putSnapshot(t, w.dest, testHost, "web", "site", day(d)))
	}
	for d := 8; d <= 10; d++ {
		w.db = append(w.db, putSnapshot(t, w.dest, testHost, "web", "db", day(d)))
	}
	// Same policy name on another host, another policy on this host, and
	// a policy that no longer exists: never pruned by web.
	for d := 1; d <= 3; d++ {
		w.others = append(w.others,
			putSnapshot(t, w.dest, "h2", "web", "site", day(d)),
			putSnapshot(t, w.dest, testHost, "other", "site", day(d)),
			putSnapshot(t, w.dest, testHost, "gone", "site", day(d)))
	}
	return w
}

// clone copies the world into a new directory, faster than building it.
func (w *world) clone(t *testing.T) *world {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(w.root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(rel)), 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := *w
	c.root, c.dest = root, local.New(root)
	return &c
}

// want is the keys that must remain after web is pruned with keepLast 2.
func (w *world) want() []string {
	ms := append([]*v1.SnapshotManifest{w.site[8], w.site[9], w.db[1], w.db[2]}, w.others...)
	return keysOfSnapshots(ms...)
}

func (w *world) kept() []*v1.SnapshotManifest {
	return append([]*v1.SnapshotManifest{w.site[8], w.site[9], w.db[1], w.db[2]}, w.others...)
}

var keepLast2 = &v1.Retention{KeepLast: 2}

func TestPruneKeepsWhatRetentionSays(t *testing.T) {
	w := newWorld(t)
	var journal bytes.Buffer
	rep := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), Journal: NewRetentionLog(&journal)})
	if rep.Failed() || len(rep.Destinations) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	dp := rep.Destinations[0]
	if dp.Result != v1.ResultSucceeded || dp.Deleted != 9 || len(dp.Keep) != 4 || len(dp.Delete) != 9 {
		t.Errorf("destination: result %s, deleted %d, keep %d, delete %d", dp.Result, dp.Deleted, len(dp.Keep), len(dp.Delete))
	}
	if got, want := keysOf(t, w.dest), w.want(); !slices.Equal(got, want) {
		t.Errorf("left on the destination:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, k := range dp.Keep {
		if !slices.Equal(k.Rules, []string{RuleKeepLast}) {
			t.Errorf("%s/%s kept for %v", k.Source, k.ID, k.Rules)
		}
	}
	// One journal line per deletion, naming snapshot, destination, reason.
	lines := strings.Split(strings.TrimSpace(journal.String()), "\n")
	if len(lines) != 9 {
		t.Fatalf("%d journal lines, want 9:\n%s", len(lines), journal.String())
	}
	var logged []string
	for _, line := range lines {
		var e RetentionEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Action != "deleteSnapshot" || e.Destination != "disk" || e.Host != testHost || e.Policy != "web" || !strings.Contains(e.Reason, "keepLast 2") || e.SnapshotTime == nil {
			t.Errorf("journal entry: %+v", e)
		}
		logged = append(logged, e.Source+"/"+e.Snapshot)
	}
	var deleted []string
	for _, m := range append(slices.Clone(w.site[:8]), w.db[0]) {
		deleted = append(deleted, m.Source+"/"+m.ID)
	}
	slices.Sort(logged)
	slices.Sort(deleted)
	if !slices.Equal(logged, deleted) {
		t.Errorf("journal names %v, want %v", logged, deleted)
	}
	if s := rep.Summary(); s.Result != v1.ResultSucceeded || s.Deleted != 9 || s.Kept != 4 || s.BytesFreed == 0 {
		t.Errorf("summary: %+v", s)
	}
	// A second pass has nothing to do.
	again := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11))})
	if again.Destinations[0].Deleted != 0 || len(again.Destinations[0].Delete) != 0 {
		t.Errorf("second pass deletes: %+v", again.Destinations[0])
	}
}

func TestPruneDryRunChangesNothing(t *testing.T) {
	w := newWorld(t)
	before := keysOf(t, w.dest)
	var journal bytes.Buffer
	rep := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), DryRun: true, Journal: NewRetentionLog(&journal)})
	dp := rep.Destinations[0]
	if len(dp.Delete) != 9 || dp.Deleted != 0 || len(dp.Keep) != 4 {
		t.Errorf("dry run: keep %d, delete %d, deleted %d", len(dp.Keep), len(dp.Delete), dp.Deleted)
	}
	if after := keysOf(t, w.dest); !slices.Equal(before, after) {
		t.Error("a dry run changed the destination")
	}
	if journal.Len() != 0 {
		t.Errorf("a dry run wrote the journal: %s", journal.String())
	}
}

func TestPruneNothingWhenListingFails(t *testing.T) {
	w := newWorld(t)
	before := keysOf(t, w.dest)
	f := newFaultDest(w.dest)
	f.listErr = fmt.Errorf("page 3 of the listing: %w", errInjected)
	rep := prune(f, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11))})
	if dp := rep.Destinations[0]; dp.Result != v1.ResultFailed || !strings.Contains(dp.Message, "nothing deleted") {
		t.Errorf("destination: %+v", dp)
	}
	if after := keysOf(t, w.dest); !slices.Equal(before, after) {
		t.Error("a failed listing deleted something")
	}
	// The next pass finishes the job.
	prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11))})
	if got := keysOf(t, w.dest); !slices.Equal(got, w.want()) {
		t.Errorf("after the next pass:\n%s", strings.Join(got, "\n"))
	}
}

func TestPruneNothingWhenAManifestReadFails(t *testing.T) {
	for _, ok := range []int{0, 3, 12} {
		t.Run(fmt.Sprintf("after %d reads", ok), func(t *testing.T) {
			w := newWorld(t)
			before := keysOf(t, w.dest)
			f := newFaultDest(w.dest)
			f.getOK = ok
			rep := prune(f, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11))})
			if dp := rep.Destinations[0]; dp.Result != v1.ResultFailed || dp.Deleted != 0 {
				t.Errorf("destination: %+v", dp)
			}
			if after := keysOf(t, w.dest); !slices.Equal(before, after) {
				t.Error("an incomplete read of the manifests deleted something")
			}
		})
	}
}

// TestPruneFaultAtEveryStep fails, and separately kills, the pass at each
// of its mutations in turn: each time no kept snapshot is damaged, and a
// clean pass afterwards leaves exactly what retention keeps, with no
// leftovers. Both young snapshots (deleted through a marker) and old ones
// (whose leftovers the grace period clears) are covered.
func TestPruneFaultAtEveryStep(t *testing.T) {
	for _, age := range []struct {
		name string
		now  time.Time
	}{
		{"young data", day(11)},
		// The data objects were written today: two days later, and with
		// snapshot times in the past, everything is older than the grace.
		{"old data", time.Now().Add(48 * time.Hour)},
	} {
		for _, mode := range []string{"fail", "kill"} {
			t.Run(age.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				template := newWorld(t)
				for step := 1; ; step++ {
					w := template.clone(t)
					f := newFaultDest(w.dest)
					if mode == "fail" {
						f.failMutation = step
					} else {
						f.killAfter = step
					}
					rep := prune(f, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(age.now)})
					hit := f.mutations >= step
					if mode == "kill" {
						// A kill after the last step leaves nothing to do.
						hit = f.refused > 0
					}
					for _, m := range w.kept() {
						intact(t, w.dest, m)
					}
					// A marker that cannot be written is worked around, not fatal.
					markerPutFailed := slices.ContainsFunc(f.log, func(l string) bool { return strings.HasPrefix(l, "FAIL put") })
					if hit && !rep.Failed() && !markerPutFailed {
						t.Fatalf("step %d: a fault at %v was not reported: %+v", step, f.log, rep.Destinations[0])
					}
					next := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(age.now)})
					if next.Failed() {
						t.Fatalf("step %d: the next pass failed: %+v", step, next.Destinations[0])
					}
					if got := keysOf(t, w.dest); !slices.Equal(got, w.want()) {
						t.Fatalf("step %d (%s after %v): the next pass leaves:\n%s", step, mode, f.log, strings.Join(got, "\n"))
					}
					if !hit {
						if step < 10 {
							t.Fatalf("only %d mutations in a pass that deletes 9 snapshots", f.mutations)
						}
						return
					}
				}
			})
		}
	}
}

func TestPruneKilledBetweenManifestAndData(t *testing.T) {
	w := newWorld(t)
	f := newFaultDest(w.dest)
	f.killAfterManifest = true
	prune(f, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11))})
	// One snapshot lost its manifest, and nothing else happened to it: its
	// data remains, with the marker that says a deletion was under way.
	byDir := map[string][]string{}
	for _, k := range keysOf(t, w.dest) {
		byDir[path.Dir(k)] = append(byDir[path.Dir(k)], path.Base(k))
	}
	var halfDeleted []string
	for dir, names := range byDir {
		if !slices.Contains(names, v1.ManifestName) {
			halfDeleted = append(halfDeleted, dir)
			if want := []string{deletingMarker, "a.sql", "b.sql"}; !slices.Equal(names, want) {
				t.Errorf("after the kill, %s holds %v, want %v", dir, names, want)
			}
		}
	}
	if len(halfDeleted) != 1 {
		t.Fatalf("after the kill, %d directories lack a manifest: %v", len(halfDeleted), halfDeleted)
	}
	var half *v1.SnapshotManifest
	for _, m := range append(slices.Clone(w.site), w.db...) {
		if path.Dir(m.ManifestKey()) == halfDeleted[0] {
			half = m
		}
	}
	for _, m := range w.kept() {
		intact(t, w.dest, m)
	}
	// The snapshot is gone from every listing, though its data is young.
	snaps, err := snapshot.ListSnapshots(context.Background(), w.dest, "disk", "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Manifest.ID == half.ID && s.Manifest.Source == half.Source {
			t.Fatal("the half-deleted snapshot is still listed")
		}
	}
	// The next pass finishes it at once, without waiting for the grace.
	var journal bytes.Buffer
	rep := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), Journal: NewRetentionLog(&journal)})
	if dp := rep.Destinations[0]; dp.LeftoversRemoved != 1 || dp.Leftovers[0].Reason != "interrupted deletion" {
		t.Errorf("leftovers: %+v", dp.Leftovers)
	}
	if got := keysOf(t, w.dest); !slices.Equal(got, w.want()) {
		t.Errorf("after the next pass:\n%s", strings.Join(got, "\n"))
	}
	if !strings.Contains(journal.String(), `"action":"removeLeftover"`) {
		t.Errorf("the finished deletion is not in the journal:\n%s", journal.String())
	}
}

func TestPruneRefusesDestinationWhoseLastBackupFailed(t *testing.T) {
	w := newWorld(t)
	before := keysOf(t, w.dest)
	last := &v1.RunResult{SnapshotID: w.site[9].ID, Result: v1.ResultPartiallyFailed,
		Sources:      []v1.SourceResult{{Name: "site", Result: v1.ResultSucceeded}},
		Destinations: []v1.DestinationResult{{Name: "disk", Result: v1.ResultFailed, Error: "disk full"}}}
	rep := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), LastRun: last})
	dp := rep.Destinations[0]
	if dp.Result != v1.ResultSkipped || !strings.Contains(dp.Message, "disk full") || !strings.Contains(dp.Message, "--force") || len(dp.Delete) != 9 {
		t.Errorf("destination: %+v", dp)
	}
	if after := keysOf(t, w.dest); !slices.Equal(before, after) {
		t.Error("deleted on a destination whose last backup failed")
	}
	if !rep.Skipped() || rep.Failed() {
		t.Errorf("report: skipped %v, failed %v", rep.Skipped(), rep.Failed())
	}
	// The whole run failing counts for every destination.
	failed := &v1.RunResult{Result: v1.ResultFailed, Destinations: []v1.DestinationResult{{Name: "disk", Result: v1.ResultSucceeded}}}
	if dp := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), LastRun: failed}).Destinations[0]; dp.Result != v1.ResultSkipped {
		t.Errorf("after a failed run: %+v", dp)
	}
	// --force prunes, and says so in the journal.
	var journal bytes.Buffer
	rep = prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), LastRun: last, Force: true, Journal: NewRetentionLog(&journal)})
	if dp := rep.Destinations[0]; dp.Result != v1.ResultSucceeded || dp.Deleted != 9 {
		t.Errorf("forced: %+v", dp)
	}
	if !strings.Contains(journal.String(), `"forced":true`) {
		t.Errorf("journal does not say the deletion was forced:\n%s", journal.String())
	}
}

func TestPruneRefusesListingWithoutTheLastSnapshot(t *testing.T) {
	w := newWorld(t)
	before := keysOf(t, w.dest)
	// A listing that silently drops the newest snapshot (a buggy server).
	f := newFaultDest(w.dest)
	f.hide = w.site[9].ID
	last := &v1.RunResult{SnapshotID: w.site[9].ID, Result: v1.ResultSucceeded,
		Sources:      []v1.SourceResult{{Name: "site", Result: v1.ResultSucceeded}},
		Destinations: []v1.DestinationResult{{Name: "disk", Result: v1.ResultSucceeded}}}
	rep := prune(f, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), LastRun: last})
	if dp := rep.Destinations[0]; dp.Result != v1.ResultSkipped || !strings.Contains(dp.Message, "may be incomplete") {
		t.Errorf("destination: %+v", dp)
	}
	if after := keysOf(t, w.dest); !slices.Equal(before, after) {
		t.Error("deleted on an incomplete listing")
	}
	// With the full listing it prunes.
	if dp := prune(w.dest, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(day(11)), LastRun: last}).Destinations[0]; dp.Deleted != 9 {
		t.Errorf("with the full listing: %+v", dp)
	}
}

func TestPruneLeftovers(t *testing.T) {
	dest := local.New(t.TempDir())
	keep := putSnapshot(t, dest, testHost, "web", "site", day(1))
	// An unfinished upload: data, no manifest.
	unfinished := putSnapshot(t, dest, testHost, "web", "site", day(2))
	dest.Delete(context.Background(), unfinished.ManifestKey())
	// An upload in progress two days from now (see later).
	later := time.Now().Add(48 * time.Hour)
	inFlight := putSnapshot(t, dest, testHost, "web", "site", later.Add(-time.Hour))
	dest.Delete(context.Background(), inFlight.ManifestKey())

	// Today the unfinished upload's data is younger than a day: left.
	rep := prune(dest, testPolicy("web", keepLast2), PruneOptions{Clock: time.Now})
	if dp := rep.Destinations[0]; dp.LeftoversRemoved != 0 || len(dp.Leftovers) != 2 || dp.Leftovers[0].Remove {
		t.Errorf("young leftovers: %+v", dp.Leftovers)
	}
	// A Grace below a day counts as a day.
	rep = prune(dest, testPolicy("web", keepLast2), PruneOptions{Clock: time.Now, Grace: time.Second})
	if dp := rep.Destinations[0]; dp.LeftoversRemoved != 0 {
		t.Errorf("a grace of a second removed leftovers: %+v", dp.Leftovers)
	}
	// Two days on, it goes; the upload stamped an hour before then stays,
	// and so does the snapshot.
	f := newFaultDest(dest)
	rep = prune(f, testPolicy("web", keepLast2), PruneOptions{Clock: fixedClock(later)})
	dp := rep.Destinations[0]
	if dp.LeftoversRemoved != 1 || !dp.Leftovers[0].Removed || !strings.Contains(dp.Leftovers[0].Reason, "older than 24h") {
		t.Errorf("old leftovers: %+v", dp.Leftovers)
	}
	if got, want := keysOf(t, dest), keysOfSnapshots(keep); !slices.Equal(got[:len(want)], want) || len(got) != len(want)+2 {
		t.Errorf("left: %v", got)
	}
	intact(t, dest, keep)
}

func TestPruneLeftoverCheckedForAManifestFirst(t *testing.T) {
	dest := local.New(t.TempDir())
	old := putSnapshot(t, dest, testHost, "web", "site", day(1))
	newest := putSnapshot(t, dest, testHost, "web", "site", day(2))
	// The listing misses old's manifest: it looks like a leftover. Before
	// removing it, prune asks for the manifest, finds it, and leaves it.
	f := newFaultDest(dest)
	f.hide = old.ID + "/" + v1.ManifestName
	rep := prune(f, testPolicy("web", &v1.Retention{KeepLast: 5}), PruneOptions{Clock: fixedClock(time.Now().Add(72 * time.Hour))})
	if dp := rep.Destinations[0]; dp.LeftoversRemoved != 0 || len(dp.Leftovers) != 1 {
		t.Errorf("leftovers: %+v", dp.Leftovers)
	}
	intact(t, dest, old)
	intact(t, dest, newest)
}

func TestPruneKeepsSnapshotsStampedAfterNow(t *testing.T) {
	dest := local.New(t.TempDir())
	a := putSnapshot(t, dest, testHost, "web", "site", day(1))
	b := putSnapshot(t, dest, testHost, "web", "site", day(2))
	future := putSnapshot(t, dest, testHost, "web", "site", day(20))
	rep := prune(dest, testPolicy("web", &v1.Retention{KeepLast: 1}), PruneOptions{Clock: fixedClock(day(3))})
	dp := rep.Destinations[0]
	reasons := map[string][]string{}
	for _, k := range dp.Keep {
		reasons[k.ID] = k.Rules
	}
	// The future one takes no part: the newest of the others is kept too.
	if !slices.Equal(reasons[future.ID], []string{RuleTooNew}) || !slices.Equal(reasons[b.ID], []string{RuleKeepLast}) || len(dp.Delete) != 1 || dp.Delete[0].ID != a.ID {
		t.Errorf("keep %+v, delete %+v", dp.Keep, dp.Delete)
	}
}

func TestPruneKeepsParentsOfKeptSnapshots(t *testing.T) {
	dest := local.New(t.TempDir())
	base := putSnapshot(t, dest, testHost, "web", "site", day(1))
	putSnapshot(t, dest, testHost, "web", "site", day(2))
	// A later incremental snapshot builds on base.
	inc := putSnapshot(t, dest, testHost, "web", "site", day(3))
	inc.Parent = base.ID
	body, _ := json.Marshal(inc)
	dest.Put(context.Background(), inc.ManifestKey(), bytes.NewReader(body))
	rep := prune(dest, testPolicy("web", &v1.Retention{KeepLast: 1}), PruneOptions{Clock: fixedClock(day(4))})
	dp := rep.Destinations[0]
	if len(dp.Keep) != 2 || len(dp.Delete) != 1 {
		t.Fatalf("keep %+v, delete %+v", dp.Keep, dp.Delete)
	}
	for _, k := range dp.Keep {
		if k.ID == base.ID && !slices.Equal(k.Rules, []string{RuleParent}) {
			t.Errorf("base kept for %v", k.Rules)
		}
	}
}

func TestPruneLeavesForeignKeysAlone(t *testing.T) {
	dest := local.New(t.TempDir())
	putSnapshot(t, dest, testHost, "web", "site", day(1))
	keep := putSnapshot(t, dest, testHost, "web", "site", day(2))
	ctx := context.Background()
	foreign := []string{testHost + "/web/README", testHost + "/web/site/not-an-id/x", testHost + "/web/site/" + keep.ID + "/nested/deeper"}
	for _, k := range foreign {
		dest.Put(ctx, k, strings.NewReader("x"))
	}
	prune(dest, testPolicy("web", &v1.Retention{KeepLast: 1}), PruneOptions{Clock: fixedClock(time.Now().Add(72 * time.Hour))})
	got := keysOf(t, dest)
	for _, k := range foreign {
		if !slices.Contains(got, k) {
			t.Errorf("%s was deleted", k)
		}
	}
	intact(t, dest, keep)
}

func TestPruneNoRetentionKeepsEverything(t *testing.T) {
	w := newWorld(t)
	before := keysOf(t, w.dest)
	for _, r := range []*v1.Retention{nil, {}} {
		rep := prune(w.dest, testPolicy("web", r), PruneOptions{Clock: fixedClock(day(11))})
		if dp := rep.Destinations[0]; len(dp.Delete) != 0 || len(dp.Keep) != 13 || dp.Keep[0].Rules[0] != RuleKeepAll {
			t.Errorf("retention %+v: %+v", r, dp)
		}
	}
	if after := keysOf(t, w.dest); !slices.Equal(before, after) {
		t.Error("a policy without rules deleted something")
	}
}

func TestPlanPruneRefusesToDeleteTheNewest(t *testing.T) {
	// The guard behind DecideRetention: hand planPrune a decision that
	// would remove the newest (here: by lying about a time).
	mk := func(id string, at time.Time) *snapDir {
		return &snapDir{source: "s", id: id, prefix: "h/p/s/" + id + "/", manifest: &v1.SnapshotManifest{ID: id, Time: at}}
	}
	dirs := []*snapDir{mk("20261101T120000Z-aaaaaa", day(1)), mk("20261102T120000Z-bbbbbb", day(2))}
	if _, err := planPrune(dirs, RetentionRules{KeepLast: 1}, day(3), MinLeftoverGrace); err != nil {
		t.Fatalf("a sound plan: %v", err)
	}
	// Equal times and IDs the other way round than the sort: still sound.
	dirs[0].manifest.Time = day(2)
	if _, err := planPrune(dirs, RetentionRules{KeepLast: 1}, day(3), MinLeftoverGrace); err != nil {
		t.Fatalf("equal times: %v", err)
	}
}

// BenchmarkPlanPrune100k is the whole planning step for 100,000 snapshots
// on one destination (four sources of 25,000): grouping the listing,
// deciding, and sorting the report, with the manifests already read.
func BenchmarkPlanPrune100k(b *testing.B) {
	start := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	var dirs []*snapDir
	for _, src := range []string{"db", "etc", "home", "www"} {
		for i := range 25_000 {
			at := start.Add(time.Duration(i) * 3 * time.Hour)
			id := v1.NewSnapshotID(at)
			dirs = append(dirs, &snapDir{source: src, id: id, prefix: "h/p/" + src + "/" + id + "/", size: 1 << 20,
				objects:  []drivers.ObjectInfo{{Key: "h/p/" + src + "/" + id + "/manifest.json", ModTime: at}},
				manifest: &v1.SnapshotManifest{ID: id, Time: at, Source: src}})
		}
	}
	rules := mustRules(b, &v1.Retention{KeepLast: 5, Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 5, Within: "2d"}, "Europe/Berlin")
	now := start.Add(80_000 * time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		plan, err := planPrune(dirs, rules, now, MinLeftoverGrace)
		if err != nil || len(plan.remove) == 0 {
			b.Fatal(err)
		}
		vs := make([]SnapshotVerdict, 0, len(plan.remove))
		for _, d := range plan.remove {
			vs = append(vs, d.verdict(nil))
		}
		sortVerdicts(vs)
	}
}

// BenchmarkPruneLocal10k prunes 10,000 snapshots on the local destination
// down to a year's worth: listing, reading every manifest, deciding and
// deleting (about 9,950 snapshots). Each iteration builds the snapshots
// first, outside the timer.
func BenchmarkPruneLocal10k(b *testing.B) {
	for _, age := range []struct {
		name string
		now  time.Time
	}{{"old", time.Now().Add(72 * time.Hour)}, {"young-with-markers", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}} {
		b.Run(age.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				dest := local.New(b.TempDir())
				start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
				for i := range 10_000 {
					putSnapshot(b, dest, testHost, "web", "site", start.Add(time.Duration(i)*time.Hour))
				}
				b.StartTimer()
				rep := prune(dest, testPolicy("web", &v1.Retention{Daily: 7, Weekly: 4, Monthly: 12}), PruneOptions{Clock: fixedClock(age.now)})
				if dp := rep.Destinations[0]; dp.Result != v1.ResultSucceeded || dp.Deleted < 9_900 {
					b.Fatalf("%+v", dp.Message)
				}
			}
		})
	}
}
