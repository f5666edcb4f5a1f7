// Package ratelimit caps the bandwidth of a destination: a
// drivers.Destination decorator whose uploads (Put) and downloads (Get,
// GetRange) share one token bucket (golang.org/x/time/rate) per
// destination, at the rate a Schedule puts in force. The rate is looked up
// again as the bytes flow, so a change of rate (at 08:00, say) takes effect
// in the middle of a long upload.
package ratelimit

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/aegis-backup/aegis/drivers"
)

// Schedule gives the rate in force at each moment; *v1.BandwidthSchedule
// is one.
type Schedule interface {
	// LimitAt returns the rate at t in bytes per second; 0 means no limit.
	LimitAt(t time.Time) int64
	// Describe says which rate is in force at t and why, for the run's log.
	Describe(t time.Time) string
}

// Clock tells the time and waits. Tests inject one whose Sleep moves its
// time forward at once.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or until ctx is done and then returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// Options tune a limited destination.
type Options struct {
	// Clock defaults to the real clock.
	Clock Clock
}

// Destination is a drivers.Destination whose transfers are limited.
type Destination struct {
	d     drivers.Destination
	sched Schedule
	clock Clock

	mu      sync.Mutex
	limiter *rate.Limiter
	current int64 // the rate the limiter is set to; 0: none
}

// New limits d to the rates of s.
func New(d drivers.Destination, s Schedule, opts Options) *Destination {
	c := opts.Clock
	if c == nil {
		c = realClock{}
	}
	return &Destination{d: d, sched: s, clock: c, limiter: rate.NewLimiter(rate.Inf, 0)}
}

// NewFixed limits d to bytesPerSecond at all times (0: no limit), for a
// limit given on the command line such as restore's.
func NewFixed(d drivers.Destination, bytesPerSecond int64, opts Options) *Destination {
	return New(d, fixed(bytesPerSecond), opts)
}

// Describe says which rate is in force now and why, such as "5MiB/s
// (Mon-Fri 08:00-18:00 5MiB/s; otherwise 50MiB/s; times in Local)".
func (l *Destination) Describe() string { return l.sched.Describe(l.clock.Now()) }

// Describe returns the description of d's limit when d is a limited
// destination, or "" when it is not.
func Describe(d drivers.Destination) string {
	if l, ok := d.(*Destination); ok {
		return l.Describe()
	}
	return ""
}

// Unwrap returns the destination New was given.
func (l *Destination) Unwrap() drivers.Destination { return l.d }

// Put stores what it reads from r no faster than the rate in force.
func (l *Destination) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	return l.d.Put(ctx, key, &reader{ctx: ctx, r: r, l: l})
}

// Get opens the object; reading it is limited.
func (l *Destination) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := l.d.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return &readCloser{reader{ctx: ctx, r: rc, l: l}, rc}, nil
}

// GetRange opens length bytes of the object from offset; reading them is
// limited.
func (l *Destination) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := l.d.GetRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return &readCloser{reader{ctx: ctx, r: rc, l: l}, rc}, nil
}

// Stat passes through: metadata is not limited.
func (l *Destination) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	return l.d.Stat(ctx, key)
}

// List passes through.
func (l *Destination) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	return l.d.List(ctx, prefix)
}

// Delete passes through.
func (l *Destination) Delete(ctx context.Context, key string) error { return l.d.Delete(ctx, key) }

// Check passes through.
func (l *Destination) Check(ctx context.Context) error { return l.d.Check(ctx) }

// Close closes the destination underneath.
func (l *Destination) Close() error { return l.d.Close() }

// CleanTemp passes through to a destination that keeps temporary files
// (drivers.TempCleaner); for any other it removes nothing.
func (l *Destination) CleanTemp(ctx context.Context, cutoff time.Time) (int, int64, error) {
	if tc, ok := l.d.(drivers.TempCleaner); ok {
		return tc.CleanTemp(ctx, cutoff)
	}
	return 0, 0, nil
}

// burst is the bucket's size at rate bps: about 20 ms of transfer, at
// least 32 KiB so that fast links are not throttled by timer overhead, at
// most 8 MiB, and never more than one second's worth.
func burst(bps int64) int {
	b := min(max(bps/50, 32<<10), 8<<20)
	return int(min(b, bps))
}

// wait blocks until n more bytes may pass at the rate in force.
func (l *Destination) wait(ctx context.Context, n int) error {
	for n > 0 {
		now := l.clock.Now()
		bps := l.sched.LimitAt(now)
		l.mu.Lock()
		l.set(now, bps)
		if bps <= 0 {
			l.mu.Unlock()
			return nil
		}
		// Reserve at most a bucket's worth at a time, so that a change of
		// rate applies to the rest.
		chunk := min(n, l.limiter.Burst())
		res := l.limiter.ReserveN(now, chunk)
		l.mu.Unlock()
		if !res.OK() {
			// Cannot happen: chunk is at most the burst.
			return fmt.Errorf("rate limit: cannot reserve %d bytes", chunk)
		}
		if d := res.DelayFrom(now); d > 0 {
			if err := l.clock.Sleep(ctx, d); err != nil {
				res.CancelAt(l.clock.Now())
				return err
			}
		}
		n -= chunk
	}
	return nil
}

// set points the limiter at bps (0: no limit) from now on; l.mu is held.
func (l *Destination) set(now time.Time, bps int64) {
	if bps == l.current {
		return
	}
	l.current = bps
	if bps <= 0 {
		l.limiter.SetLimitAt(now, rate.Inf)
		return
	}
	l.limiter.SetLimitAt(now, rate.Limit(bps))
	l.limiter.SetBurstAt(now, burst(bps))
}

// reader passes a stream through the limiter.
type reader struct {
	// ctx is the context of the Put or Get the stream belongs to: a Read
	// has none of its own, and a wait must end when the transfer is
	// cancelled.
	ctx context.Context
	r   io.Reader
	l   *Destination
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	// Read no more than a bucket's worth, so that the bytes wait for their
	// tokens right after they are read rather than in one long pause.
	if b := r.l.chunk(); b > 0 && len(p) > b {
		p = p[:b]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.l.wait(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// chunk is the burst of the rate in force, or 0 when there is no limit.
func (l *Destination) chunk() int {
	if bps := l.sched.LimitAt(l.clock.Now()); bps > 0 {
		return burst(bps)
	}
	return 0
}

type readCloser struct {
	reader
	c io.Closer
}

func (r *readCloser) Close() error { return r.c.Close() }

// fixed is a Schedule with one rate.
type fixed int64

func (f fixed) LimitAt(time.Time) int64 { return int64(f) }

func (f fixed) Describe(time.Time) string {
	if f <= 0 {
		return "unlimited"
	}
	return formatRate(int64(f))
}

// formatRate writes bytes per second in the largest binary unit that
// keeps it above 1.
func formatRate(bps int64) string {
	units := []string{"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"}
	v, i := float64(bps), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", v, units[i])
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Interface guards.
var (
	_ drivers.Destination = (*Destination)(nil)
	_ drivers.TempCleaner = (*Destination)(nil)
)
