package ratelimit

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// BenchmarkReadThrough measures what the decorator costs per byte: a
// limit far above what the benchmark reaches (on the virtual clock, so no
// wait is real) against no limit at all.
func BenchmarkReadThrough(b *testing.B) {
	data := make([]byte, 16<<20)
	for _, bc := range []struct {
		name string
		bps  int64
	}{{"unlimited", 0}, {"limited", 1 << 40}} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewFixed(nil, bc.bps, Options{Clock: &fakeClock{now: time.Unix(0, 0)}})
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r := &reader{ctx: b.Context(), r: bytes.NewReader(data), l: d}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
