package dedup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/local"
)

func chunkIDs(lists ...[]ChunkRef) []ID {
	var out []ID
	for _, l := range lists {
		for _, c := range l {
			out = append(out, c.ID)
		}
	}
	return out
}

func (e *env) packFile(id string) string {
	return filepath.Join(e.root, filepath.FromSlash(PackKey(testRepo, id)))
}

func (e *env) verify(refs []ID, readData bool) VerifyReport {
	e.t.Helper()
	rep, err := Verify(context.Background(), e.dest, testRepo, refs, VerifyOptions{ReadData: readData, Key: e.key, Opener: e.codec})
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

func wantProblems(t *testing.T, rep VerifyReport, want ...string) {
	t.Helper()
	if len(rep.Problems) != len(want) {
		t.Fatalf("problems:\n%s\nwant %d containing %q", strings.Join(rep.Problems, "\n"), len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(rep.Problems[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, rep.Problems[i], w)
		}
	}
}

func TestVerifyCleanRepository(t *testing.T) {
	e := newEnv(t)
	objs, _ := e.backup(map[string][]byte{"a": randomBytes(4, 6<<20)}, 2<<20)
	refs := chunkIDs(objs["a"])
	rep := e.verify(refs, true)
	wantProblems(t, rep)
	if rep.PacksRead != rep.Packs || rep.ChunksOpen != len(refs) {
		t.Errorf("read %d of %d packs and %d chunks, want all and %d", rep.PacksRead, rep.Packs, rep.ChunksOpen, len(refs))
	}
	rep, err := Verify(context.Background(), e.dest, testRepo, refs, VerifyOptions{ReadData: true, Subset: 0.1, Rand: rand.New(rand.NewPCG(1, 1)), Key: e.key, Opener: e.codec})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksRead != 1 {
		t.Errorf("a 10%% subset of %d packs read %d, want 1", rep.Packs, rep.PacksRead)
	}
}

func TestTamperingIsCaughtAndNamed(t *testing.T) {
	setup := func(t *testing.T) (*env, []ID, []string) {
		e := newEnv(t)
		objs, _ := e.backup(map[string][]byte{"a": randomBytes(5, 3<<20), "b": randomBytes(6, 3<<20)}, 1<<20)
		return e, chunkIDs(objs["a"], objs["b"]), e.index().Packs()
	}
	t.Run("flipped byte in a pack", func(t *testing.T) {
		e, refs, packs := setup(t)
		loc, _ := e.index().Lookup(refs[0])
		f := e.packFile(loc.Pack)
		b, _ := os.ReadFile(f)
		b[loc.Offset+loc.Length/2] ^= 1
		os.WriteFile(f, b, 0o600)
		wantProblems(t, e.verify(refs, false)) // sizes are intact
		wantProblems(t, e.verify(refs, true),
			"pack "+loc.Pack+": content does not match its name",
			"chunk "+refs[0].String()+" in pack "+loc.Pack+": open:")
		_ = packs
	})
	t.Run("swapped pack", func(t *testing.T) {
		e, refs, packs := setup(t)
		a, b := e.packFile(packs[0]), e.packFile(packs[1])
		da, _ := os.ReadFile(a)
		db, _ := os.ReadFile(b)
		os.WriteFile(a, db, 0o600)
		os.WriteFile(b, da, 0o600)
		rep := e.verify(refs, true)
		if !slices.ContainsFunc(rep.Problems, func(p string) bool {
			return strings.HasPrefix(p, "pack "+packs[0]+": content does not match its name")
		}) {
			t.Fatalf("swapped packs gave problems %q", rep.Problems)
		}
		// A restore reading the swapped pack fails instead of returning
		// the other pack's data.
		loc0 := ID{}
		for _, id := range refs {
			if l, _ := e.index().Lookup(id); l.Pack == packs[0] {
				loc0 = id
				break
			}
		}
		if _, err := e.restore([]ChunkRef{{ID: loc0}}); err == nil {
			t.Fatal("restore from a swapped pack succeeded")
		}
	})
	t.Run("edited index", func(t *testing.T) {
		e, refs, _ := setup(t)
		objs, _ := e.dest.List(context.Background(), testRepo+"index/")
		f := filepath.Join(e.root, filepath.FromSlash(objs[0].Key))
		b, _ := os.ReadFile(f)
		b = bytes.Replace(b, []byte(`"offset":`), []byte(`"offset":1`), 1)
		os.WriteFile(f, b, 0o600)
		rep := e.verify(refs, false)
		if len(rep.Problems) == 0 || rep.Problems[0] != "read index "+objs[0].Key+": content does not match its name" {
			t.Fatalf("edited index gave problems %q", rep.Problems)
		}
		// The index is rebuilt from the packs, after which all is well.
		if _, err := RebuildIndex(context.Background(), e.dest, testRepo, false); err != nil {
			t.Fatal(err)
		}
		wantProblems(t, e.verify(refs, true))
	})
	t.Run("missing pack", func(t *testing.T) {
		e, refs, packs := setup(t)
		os.Remove(e.packFile(packs[0]))
		rep := e.verify(refs, false)
		if !slices.Contains(rep.Problems, "pack "+packs[0]+": listed in an index but missing") {
			t.Fatalf("missing pack gave problems %q", rep.Problems)
		}
	})
}

func TestMissingIndexIsRebuiltFromPacks(t *testing.T) {
	e := newEnv(t)
	data := randomBytes(7, 5<<20)
	objs, _ := e.backup(map[string][]byte{"a": data}, 2<<20)
	os.RemoveAll(filepath.Join(e.root, filepath.FromSlash(testRepo+"index")))
	if n := e.index().Len(); n != 0 {
		t.Fatalf("index without index files knows %d chunks", n)
	}
	n, err := RebuildIndex(context.Background(), e.dest, testRepo, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(e.index().Packs()) || n < 2 {
		t.Fatalf("rebuilt %d packs, index lists %d", n, len(e.index().Packs()))
	}
	got, err := e.restore(objs["a"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("restore after rebuild differs")
	}
}

// failingDest fails every Put of a pack after the first okPacks.
type failingDest struct {
	*local.Store
	okPacks int
}

func (f *failingDest) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if strings.Contains(key, "/packs/") {
		if f.okPacks == 0 {
			// Read part of it, as a dropped connection would.
			io.CopyN(io.Discard, r, 100)
			return 0, errors.New("connection reset")
		}
		f.okPacks--
	}
	return f.Store.Put(ctx, key, r)
}

func TestFailedPackUploadIsNeverCommitted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bad := &failingDest{Store: e.dest, okPacks: 1}
	w, err := NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: e.codec, PackSize: 1 << 20, Now: fixedNow},
		[]Target{{Name: "flaky", Dest: bad, Known: NewIndex()}})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := w.Object("a")
	o.Write(randomBytes(8, 4<<20))
	o.Close()
	_, err = w.Commit(ctx)
	if err == nil || !strings.Contains(err.Error(), "connection reset") || !strings.Contains(err.Error(), "to flaky") {
		t.Fatalf("commit after a failed pack upload: %v", err)
	}
	// No index was written, one pack is on disk and no temporary file: a
	// later run and a prune see an unindexed pack, nothing broken.
	idx, _ := e.dest.List(ctx, testRepo+"index/")
	if len(idx) != 0 {
		t.Fatalf("index files %v after a failed run", idx)
	}
	packs, _ := e.dest.List(ctx, testRepo+"packs/")
	if len(packs) != 1 {
		t.Fatalf("%d packs after a failed run, want the 1 uploaded", len(packs))
	}
	wantProblems(t, e.verify(nil, true), "in no index")
	// The next run uploads everything again and restores.
	data := randomBytes(8, 4<<20)
	objs, _ := e.backup(map[string][]byte{"a": data}, 1<<20)
	got, err := e.restore(objs["a"])
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore after retry: %v", err)
	}
}

func TestMultiDestinationSealsOnceAndFillsANewDestination(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	second := local.New(t.TempDir())
	data := randomBytes(9, 3<<20)
	counting := &countingSealer{s: e.codec}
	load := func(d drivers.Destination) *Index {
		x, _, err := LoadIndex(ctx, d, testRepo)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	run := func(targets []Target) []ChunkRef {
		w, err := NewWriter(ctx, Config{Repo: testRepo, Key: e.key, Sealer: counting, Now: fixedNow}, targets)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := w.Object("a")
		o.Write(data)
		o.Close()
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return o.Chunks()
	}
	chunks := run([]Target{{Name: "one", Dest: e.dest, Known: load(e.dest)}})
	sealed := counting.n
	if sealed != len(chunks) {
		t.Fatalf("sealed %d chunks for %d", sealed, len(chunks))
	}
	// A destination added later receives what it lacks; the first one
	// already holds it all.
	run([]Target{{Name: "one", Dest: e.dest, Known: load(e.dest)}, {Name: "two", Dest: second, Known: load(second)}})
	if counting.n != 2*sealed {
		t.Fatalf("sealed %d chunks in total, want %d", counting.n, 2*sealed)
	}
	r := &Reader{Dest: second, Repo: testRepo, Index: load(second), Key: e.key, Opener: e.codec}
	var buf bytes.Buffer
	if err := r.Restore(ctx, chunks, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("restore from the new destination: %v", err)
	}
	run([]Target{{Name: "one", Dest: e.dest, Known: load(e.dest)}, {Name: "two", Dest: second, Known: load(second)}})
	if counting.n != 2*sealed {
		t.Fatalf("an unchanged run sealed %d more chunks", counting.n-2*sealed)
	}
}

type countingSealer struct {
	s Sealer
	n int
}

func (c *countingSealer) Seal(w io.Writer) (io.WriteCloser, error) { c.n++; return c.s.Seal(w) }

// rangedStore adds GetRange to the local store (which has none yet, so the
// other tests exercise the Get-and-skip fallback).
type rangedStore struct {
	*local.Store
	dir   string
	calls atomic.Int32
}

func (r *rangedStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r.calls.Add(1)
	f, err := os.Open(filepath.Join(r.dir, filepath.FromSlash(key)))
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, length), f}, nil
}

func TestRestoreUsesRangedReads(t *testing.T) {
	e := newEnv(t)
	data := randomBytes(10, 6<<20)
	objs, _ := e.backup(map[string][]byte{"a": data}, 32<<20)
	rs := &rangedStore{Store: e.dest, dir: e.root}
	r := &Reader{Dest: rs, Repo: testRepo, Index: e.index(), Key: e.key, Opener: e.codec, MaxRange: 1 << 20}
	var buf bytes.Buffer
	if err := r.Restore(context.Background(), objs["a"][1:], &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data[objs["a"][0].Size:]) {
		t.Fatal("ranged restore of all but the first chunk differs")
	}
	if int(rs.calls.Load()) != len(objs["a"])-1 {
		t.Errorf("%d ranged reads for %d chunks larger than MaxRange", rs.calls.Load(), len(objs["a"])-1)
	}
}
