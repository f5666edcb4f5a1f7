// Package benchtest is the pipeline benchmark every remote destination
// runs beside the local baseline (docs/performance.md). It is apart from
// drivertest because it runs the whole backup pipeline (reconcile), which
// drivers' own in-package tests cannot import.
package benchtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// benchSize is the size of the backup the pipeline benchmarks store: 1 GiB
// of incompressible data, so that as much goes over the wire.
const benchSize = 1 << 30

// PipelineSource writes a source tree of benchSize random bytes (a few large
// files, as a database dump or an archive would be) into a temporary
// directory of b.
func PipelineSource(b *testing.B) string {
	dir := b.TempDir()
	rng := rand.NewChaCha8([32]byte{42})
	buf := make([]byte, 4<<20)
	for i := range 4 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("part%d.bin", i)))
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < benchSize/4; n += len(buf) {
			rng.Read(buf)
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
	}
	return dir
}

// peakRSS resets the process's peak resident set size and returns a
// function that reads it (Linux: clear_refs 5 resets VmHWM).
func peakRSS() func() float64 {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return func() float64 {
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				return float64(kb) / 1024
			}
		}
		return 0
	}
}

// peakHeap samples the heap in use while fn runs and returns the most.
func peakHeap(fn func()) float64 {
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	return float64(peak) / (1 << 20)
}

// BenchPipeline backs up the bench source to dest (files → tar → zstd →
// dest, no encryption) b.N times and reports MB/s of backup stored, and
// the peak heap and resident memory of the process.
func BenchPipeline(b *testing.B, src string, dest *v1.Destination) {
	p := &v1.BackupPolicy{
		Metadata: v1.ObjectMeta{Name: "bench"},
		Spec: v1.BackupPolicySpec{
			Schedule:     "@daily",
			Sources:      []v1.Source{{Name: "tree", Files: &v1.FilesSource{Paths: []string{src}}}},
			Destinations: []string{dest.Metadata.Name},
			Compression:  &v1.Compression{Algorithm: "zstd", Level: 1},
			Encryption:   &v1.Encryption{None: true},
		},
	}
	r := &snapshot.Runner{Host: "bench-" + strconv.Itoa(rand.IntN(1e6)), Now: time.Now}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.SetBytes(benchSize)
	b.ResetTimer()
	var heap, rss float64
	for b.Loop() {
		readRSS := peakRSS()
		heap = max(heap, peakHeap(func() {
			res := r.Backup(context.Background(), log, snapshot.BackupRequest{Policy: p, Destinations: map[string]*v1.Destination{dest.Metadata.Name: dest}})
			if res.Result != v1.ResultSucceeded {
				b.Fatalf("backup: %+v", res)
			}
		}))
		rss = max(rss, readRSS())
	}
	b.ReportMetric(heap, "peak-heap-MiB")
	b.ReportMetric(rss, "peak-RSS-MiB")
}
