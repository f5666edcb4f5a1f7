package retry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Deferred runs cleanups (aborting a multipart upload, removing a temporary
// file) that must not be forgotten when the server is briefly away: a
// cleanup that fails with a Retryable error is tried again in the
// background, with backoff, until it succeeds or Close gives up on it.
//
// It exists so that a failed upload returns at once (the run goes on with
// the other destinations) while its leftovers are still removed once the
// server is back. What Close gives up on stays on the server until a later
// run sweeps it.
type Deferred struct {
	p     Policy
	grace time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	failed []string
}

// NewDeferred returns a Deferred retrying with p (its Attempts are ignored:
// a cleanup is retried until Close) whose Close waits up to grace.
func NewDeferred(p Policy, grace time.Duration) *Deferred {
	ctx, cancel := context.WithCancel(context.Background())
	return &Deferred{p: p, grace: grace, ctx: ctx, cancel: cancel}
}

// firstTryTimeout bounds the first, synchronous try of a cleanup, so that a
// server that hangs does not hold up the caller.
const firstTryTimeout = 10 * time.Second

// Run tries fn once now, whether or not ctx is done (a cancelled upload must
// still be cleaned up); if that fails with a Retryable error, Run returns
// and fn is retried in the background. what names the cleanup in logs and
// in Close's error.
func (d *Deferred) Run(ctx context.Context, what string, fn func(ctx context.Context) error) {
	first, cancel := context.WithTimeout(context.WithoutCancel(ctx), firstTryTimeout)
	err := fn(first)
	cancel()
	if err == nil {
		return
	}
	if !Retryable(err) {
		d.giveUp(what, err)
		return
	}
	if d.ctx.Err() != nil {
		d.giveUp(what, err)
		return
	}
	if d.p.Logger != nil {
		d.p.Logger.Warn("cleanup failed; retrying in the background", "cleanup", what, "err", err)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for attempt := 1; ; attempt++ {
			if d.p.sleep(d.ctx, d.Delay(attempt)) != nil {
				d.giveUp(what, err)
				return
			}
			try, cancel := context.WithTimeout(d.ctx, time.Minute)
			err = fn(try)
			cancel()
			switch {
			case err == nil:
				if d.p.Logger != nil {
					d.p.Logger.Info("cleanup done after retrying", "cleanup", what, "attempts", attempt+1)
				}
				return
			case !Retryable(err) && d.ctx.Err() == nil:
				d.giveUp(what, err)
				return
			}
		}
	}()
}

// Delay is the wait before retry number attempt: the Policy's backoff,
// capped at 5s so that a server that comes back is noticed soon.
func (d *Deferred) Delay(attempt int) time.Duration {
	p := d.p
	p.Max = min(cmp.Or(p.Max, 5*time.Second), 5*time.Second)
	return p.Delay(attempt)
}

func (d *Deferred) giveUp(what string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failed = append(d.failed, fmt.Sprintf("%s: %v", what, err))
	if d.p.Logger != nil {
		d.p.Logger.Error("cleanup abandoned; a later run sweeps what it left", "cleanup", what, "err", err)
	}
}

// Close waits for the cleanups still being retried, for up to the grace
// period, then stops them. It returns an error naming every cleanup that
// did not complete, or nil.
func (d *Deferred) Close() error {
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d.grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	d.cancel()
	<-done
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.failed) == 0 {
		return nil
	}
	errs := make([]error, len(d.failed))
	for i, f := range d.failed {
		errs[i] = errors.New(f)
	}
	d.failed = nil
	return fmt.Errorf("cleanups left undone: %w", errors.Join(errs...))
}
