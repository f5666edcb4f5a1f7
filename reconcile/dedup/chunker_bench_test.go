package dedup

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	cdc "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"  // registers fastcdc with cdc
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/ultracdc" // registers ultracdc with cdc
	"github.com/jotfs/fastcdc-go"
	"github.com/restic/chunker"
)

// benchData is 64 MiB of incompressible bytes from a fixed seed, so every
// chunker sees the same stream.
func benchData(b *testing.B) []byte {
	b.Helper()
	data := make([]byte, 64<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(data); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	return data
}

// The three candidates with the same target: 1 MiB average, 256 KiB minimum,
// 4 MiB maximum (restic's Rabin chunker has fixed 512 KiB / 8 MiB bounds by
// default; it is set to the same bounds here).
func BenchmarkChunkerRestic(b *testing.B) {
	data := benchData(b)
	buf := make([]byte, 8<<20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		c := chunker.NewWithBoundaries(bytes.NewReader(data), chunker.Pol(0x3DA3358B4DC173), 256<<10, 4<<20)
		c.SetAverageBits(20)
		n := 0
		for {
			_, err := c.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(len(data))/float64(n), "B/chunk")
	}
}

func BenchmarkChunkerJotfsFastCDC(b *testing.B) {
	data := benchData(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		c, err := fastcdc.NewChunker(bytes.NewReader(data), fastcdc.Options{AverageSize: 1 << 20, MinSize: 256 << 10, MaxSize: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(len(data))/float64(n), "B/chunk")
	}
}

func benchPlakar(b *testing.B, algo string) {
	data := benchData(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		c, err := cdc.NewChunker(algo, bytes.NewReader(data), &cdc.ChunkerOpts{MinSize: 256 << 10, NormalSize: 1 << 20, MaxSize: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			chunk, err := c.Next()
			if len(chunk) > 0 {
				n++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data))/float64(n), "B/chunk")
	}
}

func BenchmarkChunkerPlakarFastCDC(b *testing.B)  { benchPlakar(b, "fastcdc-v1.0.0") }
func BenchmarkChunkerPlakarUltraCDC(b *testing.B) { benchPlakar(b, "ultracdc-v1.0.0") }
