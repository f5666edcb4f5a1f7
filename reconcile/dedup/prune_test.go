package dedup

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

func refSet(lists ...[]ChunkRef) map[ID]bool {
	out := map[ID]bool{}
	for _, id := range chunkIDs(lists...) {
		out[id] = true
	}
	return out
}

// prune plans and runs one prune at now, as if the snapshots referencing
// refs were all that is left.
func (e *env) prune(now time.Time, refs map[ID]bool, opts PruneOptions) PrunePlan {
	e.t.Helper()
	ctx := context.Background()
	st, keys, err := LoadPruneState(ctx, e.dest, testRepo, now)
	if err != nil {
		e.t.Fatal(err)
	}
	plan, err := PlanPrune(st, refs, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := Prune(ctx, e.dest, testRepo, st, keys, plan, opts); err != nil {
		e.t.Fatal(err)
	}
	return plan
}

func TestPruneDeletesUnreferencedPacksAfterGrace(t *testing.T) {
	e := newEnv(t)
	old, _ := e.backup(map[string][]byte{"a": randomBytes(11, 3<<20)}, 1<<20)
	oldPacks := e.index().Packs()
	keepData := randomBytes(12, 3<<20)
	keep, _ := e.backup(map[string][]byte{"a": keepData}, 1<<20)
	refs := refSet(keep["a"])
	grace := time.Hour
	now := time.Now()

	// Young packs are never touched.
	plan := e.prune(now, refs, PruneOptions{Grace: grace})
	if len(plan.Mark)+len(plan.Delete)+len(plan.Repack) != 0 {
		t.Fatalf("prune of young packs planned %+v", plan)
	}
	// Phase one marks the old snapshot's packs; nothing is deleted yet, and
	// backups no longer reuse them.
	plan = e.prune(now.Add(2*grace), refs, PruneOptions{Grace: grace})
	if !slices.Equal(plan.Mark, oldPacks) || len(plan.Delete) != 0 {
		t.Fatalf("phase one: mark %v delete %v, want mark %v", plan.Mark, plan.Delete, oldPacks)
	}
	if e.index().Has(old["a"][0].ID) {
		t.Fatal("a chunk of a marked pack is still offered for reuse")
	}
	// Before the grace period has passed since the mark: still nothing.
	plan = e.prune(now.Add(2*grace+grace/2), refs, PruneOptions{Grace: grace})
	if len(plan.Delete) != 0 {
		t.Fatalf("deleted %v before the grace period", plan.Delete)
	}
	plan = e.prune(now.Add(3*grace), refs, PruneOptions{Grace: grace})
	if !slices.Equal(plan.Delete, oldPacks) {
		t.Fatalf("phase two deleted %v, want %v", plan.Delete, oldPacks)
	}
	ctx := context.Background()
	marks, _ := e.dest.List(ctx, testRepo+"prune/")
	if len(marks) != 0 {
		t.Errorf("marks left after deletion: %v", marks)
	}
	got, err := e.restore(keep["a"])
	if err != nil || !bytes.Equal(got, keepData) {
		t.Fatalf("restore of the kept snapshot after prune: %v", err)
	}
	wantProblems(t, e.verify(chunkIDs(keep["a"]), true))
}

func TestPruneRepacksMostlyUnreferencedPacks(t *testing.T) {
	e := newEnv(t)
	// One pack holding both objects; only the small one stays referenced.
	objs, _ := e.backup(map[string][]byte{"big": randomBytes(13, 3<<20), "small": []byte("small object")}, 64<<20)
	packs := e.index().Packs()
	if len(packs) != 1 {
		t.Fatalf("%d packs, want 1", len(packs))
	}
	refs := refSet(objs["small"])
	now := time.Now()
	grace := time.Hour
	plan := e.prune(now.Add(2*grace), refs, PruneOptions{Grace: grace})
	if !slices.Equal(plan.Repack, packs) {
		t.Fatalf("repack %v, want %v", plan.Repack, packs)
	}
	plan = e.prune(now.Add(3*grace), refs, PruneOptions{Grace: grace})
	if !slices.Equal(plan.Delete, packs) {
		t.Fatalf("after grace deleted %v, want the repacked %v", plan.Delete, packs)
	}
	got, err := e.restore(objs["small"])
	if err != nil || string(got) != "small object" {
		t.Fatalf("restore after repack: %q, %v", got, err)
	}
	wantProblems(t, e.verify(chunkIDs(objs["small"]), true))
}

func TestBackupRefusesToCommitOverAConcurrentPrune(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := randomBytes(14, 2<<20)
	e.backup(map[string][]byte{"a": data}, 1<<20)
	// A backup starts and loads the index ...
	w, err := NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: e.codec, Now: fixedNow},
		[]Target{{Name: "local", Dest: e.dest, Known: e.index()}})
	if err != nil {
		t.Fatal(err)
	}
	// ... while a prune, seeing no snapshot reference the data, marks it.
	e.prune(time.Now().Add(2*DefaultGrace), map[ID]bool{}, PruneOptions{})
	o, _ := w.Object("a")
	o.Write(data)
	o.Close()
	if _, err := w.Commit(ctx); !errors.Is(err, ErrConcurrentPrune) {
		t.Fatalf("commit reusing marked packs: %v, want ErrConcurrentPrune", err)
	}
	// The retry loads a fresh index, uploads the data again and commits.
	objs, st := e.backup(map[string][]byte{"a": data}, 1<<20)
	if st.NewRawBytes != int64(len(data)) {
		t.Fatalf("retry stored %d new bytes, want %d", st.NewRawBytes, len(data))
	}
	// A prune after the grace period keeps what the retry references.
	plan := e.prune(time.Now().Add(4*DefaultGrace), refSet(objs["a"]), PruneOptions{})
	got, err := e.restore(objs["a"])
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore after prune %+v: %v", plan, err)
	}
}

func TestPlanPruneKeepsOneCopyOfDuplicatedChunks(t *testing.T) {
	id := ID{1}
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p1, p2 := string(bytes.Repeat([]byte("a"), 64)), string(bytes.Repeat([]byte("b"), 64))
	entry := func(p string) PackEntry {
		return PackEntry{ID: p, Size: 1000, Chunks: []ChunkEntry{{ID: id, Location: Location{Offset: 512, Length: 400}}}}
	}
	st := PruneState{
		Now:     old.Add(time.Hour * 24 * 30),
		Packs:   map[string]drivers.ObjectInfo{p1: {Size: 1000, ModTime: old}, p2: {Size: 1000, ModTime: old}},
		Indexes: []IndexFile{{Version: 1, Packs: []PackEntry{entry(p1), entry(p2)}}},
	}
	plan, err := PlanPrune(st, map[ID]bool{id: true}, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan.Mark, []string{p2}) {
		t.Fatalf("marked %v, want only the second copy %v", plan.Mark, p2)
	}
	_, err = PlanPrune(st, map[ID]bool{id: true, {2}: true}, PruneOptions{})
	if !errors.Is(err, ErrUnlocatedChunk) {
		t.Fatalf("plan with an unlocated chunk: %v, want ErrUnlocatedChunk", err)
	}
}
