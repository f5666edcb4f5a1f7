// Package retry makes remote destinations ride out transient failures: a
// drivers.Destination decorator that retries the idempotent operations with
// exponential backoff and jitter, the Policy drivers use for the requests
// they may repeat themselves (such as one buffered part of an upload), and
// Deferred, for cleanups that failed while the server was away.
//
// A streamed Put is never retried here: it cannot be rewound. A failed Put
// fails its object; the agent retries the whole run later.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

// Policy says how often and how patiently to retry.
type Policy struct {
	// Attempts is the number of tries in all, the first included
	// (default 5).
	Attempts int
	// Base is the delay before the second try; it doubles for each later
	// one (default 1s), up to Max (default 30s). Each delay is drawn at
	// random from its upper half, so that clients that failed together do
	// not come back together.
	Base, Max time.Duration
	// Rand returns a number in [0, 1) (default math/rand/v2.Float64).
	Rand func() float64
	// Sleep waits for d or until ctx is done (default: a timer). Tests
	// inject one that does not wait.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives one warning per retry (default: none).
	Logger *slog.Logger
}

func (p Policy) attempts() int {
	if p.Attempts <= 0 {
		return 5
	}
	return p.Attempts
}

// Delay is the wait before try number attempt+1, after attempt failures.
func (p Policy) Delay(attempt int) time.Duration {
	base, maxDelay := p.Base, p.Max
	if base <= 0 {
		base = time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	d := base
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	r := rand.Float64
	if p.Rand != nil {
		r = p.Rand
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

func (p Policy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retryable reports whether trying again may help: not for errors marked
// drivers.Permanent, a missing object, or a ctx that is done.
func Retryable(err error) bool {
	return err != nil &&
		!drivers.IsPermanent(err) &&
		!errors.Is(err, drivers.ErrNotFound) &&
		!errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// Do calls fn until it succeeds, fails with an error that is not
// Retryable, the attempts are used up, or ctx is done. It returns fn's last
// error; when it gave up after several tries, the error says how many.
// what names the operation in log messages ("list backups/").
func (p Policy) Do(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	n := p.attempts()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= n {
			if n > 1 {
				return fmt.Errorf("%w (gave up after %d attempts)", err, n)
			}
			return err
		}
		d := p.Delay(attempt)
		if p.Logger != nil {
			p.Logger.Warn("destination operation failed; retrying", "op", what, "attempt", attempt, "retry_in", d.Round(time.Millisecond), "err", err)
		}
		if serr := p.sleep(ctx, d); serr != nil {
			return err
		}
	}
}

// Destination retries the idempotent operations of the destination it
// wraps: Get and GetRange (the opening, not the reading), Stat, List,
// Delete and Check. Put is passed through untouched.
type Destination struct {
	d drivers.Destination
	p Policy
}

// Wrap returns d with p's retries.
func Wrap(d drivers.Destination, p Policy) *Destination {
	return &Destination{d: d, p: p}
}

// Unwrap returns the destination Wrap was given.
func (r *Destination) Unwrap() drivers.Destination { return r.d }

// Put stores r under key once: a stream cannot be rewound.
func (r *Destination) Put(ctx context.Context, key string, rd io.Reader) (int64, error) {
	return r.d.Put(ctx, key, rd)
}

// Get opens key, retrying the opening.
func (r *Destination) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.p.Do(ctx, "get "+key, func(ctx context.Context) error {
		var err error
		rc, err = r.d.Get(ctx, key)
		return err
	})
	return rc, err
}

// GetRange opens a range of key, retrying the opening.
func (r *Destination) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.p.Do(ctx, fmt.Sprintf("get %s at %d+%d", key, offset, length), func(ctx context.Context) error {
		var err error
		rc, err = r.d.GetRange(ctx, key, offset, length)
		return err
	})
	return rc, err
}

// Stat describes key, retrying.
func (r *Destination) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	var fi drivers.ObjectInfo
	err := r.p.Do(ctx, "stat "+key, func(ctx context.Context) error {
		var err error
		fi, err = r.d.Stat(ctx, key)
		return err
	})
	return fi, err
}

// List lists prefix, retrying the whole listing.
func (r *Destination) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	var out []drivers.ObjectInfo
	err := r.p.Do(ctx, "list "+prefix, func(ctx context.Context) error {
		var err error
		out, err = r.d.List(ctx, prefix)
		return err
	})
	return out, err
}

// Delete removes key, retrying.
func (r *Destination) Delete(ctx context.Context, key string) error {
	return r.p.Do(ctx, "delete "+key, func(ctx context.Context) error {
		return r.d.Delete(ctx, key)
	})
}

// Check checks the destination, retrying.
func (r *Destination) Check(ctx context.Context) error {
	return r.p.Do(ctx, "check", r.d.Check)
}

// Close closes the wrapped destination.
func (r *Destination) Close() error { return r.d.Close() }

var _ drivers.Destination = (*Destination)(nil)
