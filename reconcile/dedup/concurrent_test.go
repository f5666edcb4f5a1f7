package dedup

import (
	"bytes"
	"context"
	"sync"
	"testing"
)

// TestTwoAgentsShareARepository runs two writers at once into the same
// repository with overlapping data; both commit and both restore.
func TestTwoAgentsShareARepository(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	shared := randomBytes(16, 3<<20)
	data := [][]byte{
		append(append([]byte{}, shared...), randomBytes(17, 1<<20)...),
		append(append([]byte{}, shared...), randomBytes(18, 1<<20)...),
	}
	chunks := make([][]ChunkRef, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range data {
		w, err := NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: e.codec, PackSize: 1 << 20, Now: fixedNow},
			[]Target{{Name: "local", Dest: e.dest, Known: e.index()}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			o, _ := w.Object("a")
			o.Write(data[i])
			o.Close()
			chunks[i] = o.Chunks()
			_, errs[i] = w.Commit(ctx)
		})
	}
	wg.Wait()
	for i := range data {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		got, err := e.restore(chunks[i])
		if err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("restore of writer %d: %v", i, err)
		}
	}
	wantProblems(t, e.verify(chunkIDs(chunks...), true))
}

func TestAbortLeavesNoIndex(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w, err := NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: e.codec, PackSize: 1 << 20, Now: fixedNow},
		[]Target{{Name: "local", Dest: e.dest, Known: e.index()}})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := w.Object("a")
	o.Write(randomBytes(19, 3<<20))
	o.Close()
	w.Abort()
	if _, err := w.Commit(ctx); err == nil {
		t.Fatal("commit after abort succeeded")
	}
	idx, _ := e.dest.List(ctx, testRepo+"index/")
	if len(idx) != 0 {
		t.Fatalf("index files %v after abort", idx)
	}
}
