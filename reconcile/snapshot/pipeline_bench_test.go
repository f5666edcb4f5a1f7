package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// benchTree writes a data set of about total bytes: many small text files,
// a compressible log, and incompressible data.
func benchTree(b *testing.B, dir string, total int64) int64 {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var written int64
	line := []byte("2026-11-25T17:45:00Z INFO request served path=/index.html status=200 bytes=5123 duration=3ms\n")
	for i := 0; written < total/4; i++ {
		p := filepath.Join(dir, "src", fmt.Sprintf("d%03d", i%100), fmt.Sprintf("f%05d.go", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		body := bytes.Repeat(line[:40+i%40], 20+i%200)
		os.WriteFile(p, body, 0o644)
		written += int64(len(body))
	}
	log := bytes.Repeat(line, int(total/4)/len(line))
	os.WriteFile(filepath.Join(dir, "app.log"), log, 0o644)
	written += int64(len(log))
	random := make([]byte, total/2)
	for i := 0; i+8 <= len(random); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			random[i+j] = byte(v >> (8 * j))
		}
	}
	os.WriteFile(filepath.Join(dir, "random.bin"), random, 0o644)
	written += int64(len(random))
	return written
}

// peakHeap samples the heap while fn runs and returns the highest value.
func peakHeap(fn func()) uint64 {
	var peak uint64
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	return peak
}

func benchmarkPipeline(b *testing.B, enc v1.Encryption) {
	dir := b.TempDir()
	size := benchTree(b, dir, 256<<20)
	p := &v1.BackupPolicy{
		Metadata: v1.ObjectMeta{Name: "bench"},
		Spec: v1.BackupPolicySpec{
			Schedule:     "@daily",
			Sources:      []v1.Source{{Name: "tree", Files: &v1.FilesSource{Paths: []string{dir}}}},
			Destinations: []string{"disk"},
			Compression:  &v1.Compression{Algorithm: "zstd", Level: 3},
			Encryption:   &enc,
		},
	}
	dests := map[string]*v1.Destination{"disk": {Metadata: v1.ObjectMeta{Name: "disk"}, Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: filepath.Join(dir, "..", "dest")}}}}
	r := &Runner{Host: "bench", Now: time.Now}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.SetBytes(size)
	runtime.GC() // the data set's generation buffers are garbage now
	b.ResetTimer()
	var peak uint64
	for b.Loop() {
		peak = max(peak, peakHeap(func() {
			res := r.Backup(context.Background(), log, BackupRequest{Policy: p, Destinations: dests})
			if res.Result != v1.ResultSucceeded {
				b.Fatalf("backup: %+v", res)
			}
		}))
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkPipelineFilesZstdLocal: files → tar → zstd → local, no encryption.
func BenchmarkPipelineFilesZstdLocal(b *testing.B) {
	benchmarkPipeline(b, v1.Encryption{None: true})
}

// BenchmarkPipelineFilesZstdAgeLocal: files → tar → zstd → age → local.
func BenchmarkPipelineFilesZstdAgeLocal(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkPipeline(b, v1.Encryption{Age: &v1.AgeEncryption{Recipients: []string{id.Recipient().String()}}})
}

// BenchmarkPipelineFilesZstdOpenSSLLocal: files → tar → zstd → openssl
// (AES-256-CBC) → local.
func BenchmarkPipelineFilesZstdOpenSSLLocal(b *testing.B) {
	key := filepath.Join(b.TempDir(), "openssl.key")
	os.WriteFile(key, []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"), 0o600)
	benchmarkPipeline(b, v1.Encryption{OpenSSL: &v1.OpenSSLEncryption{KeyFile: key}})
}
