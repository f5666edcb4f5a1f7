package snapshot

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// asyncWriter decouples two stages of the backup stream: Write copies into
// a bounded set of chunks and returns, while a goroutine writes the chunks
// to w in order. The stage behind it (encryption, hashing, a destination's
// I/O) thus runs in parallel with the one in front (reading, compressing).
// Memory is bounded by chunks × chunkSize. A write error of w is returned by
// a later Write or by Close; after it, queued data is dropped.
type asyncWriter struct {
	w     io.Writer
	size  int
	queue chan []byte
	pool  chan []byte
	cur   []byte
	done  chan struct{}

	mu  sync.Mutex
	err error
	// busy is when the write in progress started (zero: none), for a
	// watchdog to tell a stalled writer from a slow one.
	busy atomic.Int64
}

// busySince returns when the write in progress to w started, or zero.
func (a *asyncWriter) busySince() time.Time {
	if ns := a.busy.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func newAsyncWriter(w io.Writer, chunkSize, chunks int) *asyncWriter {
	a := &asyncWriter{
		w:     w,
		size:  chunkSize,
		queue: make(chan []byte, chunks),
		pool:  make(chan []byte, chunks),
		done:  make(chan struct{}),
	}
	for range chunks {
		a.pool <- nil // allocated on first use
	}
	go a.loop()
	return a
}

func (a *asyncWriter) loop() {
	defer close(a.done)
	for b := range a.queue {
		if a.failed() == nil {
			a.busy.Store(time.Now().UnixNano())
			_, err := a.w.Write(b)
			a.busy.Store(0)
			if err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		a.pool <- b[:0]
	}
}

func (a *asyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if err := a.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if a.cur == nil {
			a.cur = <-a.pool
			if a.cur == nil {
				a.cur = make([]byte, 0, a.size)
			}
		}
		k := min(len(p), a.size-len(a.cur))
		a.cur = append(a.cur, p[:k]...)
		p = p[k:]
		if len(a.cur) == a.size {
			a.queue <- a.cur
			a.cur = nil
		}
	}
	return n, nil
}

// Close queues what is left, waits until the goroutine has written
// everything, and returns the first write error. It does not close w.
func (a *asyncWriter) Close() error {
	if a.queue == nil {
		return a.failed()
	}
	if len(a.cur) > 0 {
		a.queue <- a.cur
	}
	a.cur = nil
	close(a.queue)
	<-a.done
	a.queue = nil
	return a.failed()
}
