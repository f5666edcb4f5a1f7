package main

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the renderer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTermProgress(t *testing.T) {
	var out syncBuffer
	p := newTermProgressTo(&out, func() int { return 60 })
	p.Begin("source site", 1000)
	p.Begin("→ disk", 0)
	p.Add("source site", 400)
	p.Add("→ disk", 300)
	p.Write([]byte("a log line\n"))
	p.Add("source site", 900) // past the estimate: the bar grows
	p.End("source site", nil)
	p.End("→ disk", errors.New("disk full"))
	p.Close()
	s := out.String()
	for _, want := range []string{"a log line\n", "✓ source site  1.3 KiB in", "✗ → disk  failed after 300 B: disk full"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%q", want, s)
		}
	}
	for _, line := range strings.Split(s, "\n") {
		plain := line
		if i := strings.LastIndex(plain, "\x1b[J"); i >= 0 {
			plain = plain[i+3:]
		}
		if n := len([]rune(plain)); n > 59 {
			t.Errorf("a line of %d runes would wrap a 60-column terminal: %q", n, plain)
		}
	}
	// Every bar drawn was erased: as many lines up as were drawn.
	if p.drawn != 0 || len(p.items) != 0 {
		t.Errorf("bars left: %d drawn, %d items", p.drawn, len(p.items))
	}
}
