package dedup

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/aegis-backup/aegis/drivers/local"
)

// BenchmarkWriter measures a first backup of 64 MiB (half compressible) into
// a local repository through chunking, keyed IDs, zstd, age and packing.
func BenchmarkWriter(b *testing.B) {
	data := randomBytes(20, 64<<20)
	for i := 0; i < len(data); i += 8192 {
		clear(data[i : i+4096]) // half of every 8 KiB compresses away
	}
	id, _ := NewKey(bytes.Repeat([]byte{1}, 32))
	codec := benchCodec(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dest := local.New(b.TempDir())
		ctx := context.Background()
		w, err := NewWriter(ctx, Config{Repo: testRepo, Key: id, Sealer: codec}, []Target{{Name: "local", Dest: dest, Known: NewIndex()}})
		if err != nil {
			b.Fatal(err)
		}
		o, _ := w.Object("a")
		if _, err := o.Write(data); err != nil {
			b.Fatal(err)
		}
		o.Close()
		st, err := w.Commit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.PackBytes)/float64(len(data)), "stored/raw")
	}
}

// BenchmarkIndexMemory reports the heap an Index costs per chunk.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		x := NewIndex()
		chunks := make([]ChunkEntry, n)
		for i := range chunks {
			chunks[i].ID = ID{byte(i), byte(i >> 8), byte(i >> 16)}
		}
		x.AddPack(PackEntry{ID: "p", Chunks: chunks})
		chunks = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/chunk")
		runtime.KeepAlive(x)
	}
}

func benchCodec(b *testing.B) ageZstd {
	c, err := newAgeZstdB()
	if err != nil {
		b.Fatal(err)
	}
	return c
}

var _ io.Writer = (*ObjectWriter)(nil)
