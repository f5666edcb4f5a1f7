package retry

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/drivertest"
	"github.com/aegis-backup/aegis/drivers/local"
)

// sleeps records the waits of a Policy instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func TestDelay(t *testing.T) {
	for _, tc := range []struct {
		rand    float64
		attempt int
		want    time.Duration
	}{
		{0, 1, 500 * time.Millisecond}, // the lower half of the first second
		{0.999999, 1, time.Second},
		{0, 2, time.Second},
		{0, 3, 2 * time.Second},
		{0, 4, 4 * time.Second},
		{0, 10, 15 * time.Second}, // capped at Max (30s), then halved
		{0, 60, 15 * time.Second},
	} {
		p := Policy{Rand: func() float64 { return tc.rand }}
		if got := p.Delay(tc.attempt); got.Round(time.Millisecond) != tc.want {
			t.Errorf("Delay(%d) with rand %v = %v, want %v", tc.attempt, tc.rand, got, tc.want)
		}
	}
}

var errTransient = errors.New("connection reset")

func TestDo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		errs      []error // what fn returns, call after call; then nil
		wantCalls int
		wantErr   string
	}{
		{"success", nil, 1, ""},
		{"transient then success", []error{errTransient, errTransient}, 3, ""},
		{"gives up", []error{errTransient, errTransient, errTransient, errTransient, errTransient, errTransient}, 5, "connection reset (gave up after 5 attempts)"},
		{"permanent at once", []error{drivers.Permanent(errors.New("access denied"))}, 1, "access denied"},
		{"not found at once", []error{drivers.ErrNotFound}, 1, "not found"},
		{"cancelled at once", []error{context.Canceled}, 1, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s sleeps
			p := Policy{Sleep: s.sleep, Rand: func() float64 { return 0 }}
			calls := 0
			err := p.Do(t.Context(), "op", func(context.Context) error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tc.wantCalls)
			}
			if got := errString(err); got != tc.wantErr {
				t.Errorf("error = %q, want %q", got, tc.wantErr)
			}
			if len(s.d) != calls-1 {
				t.Errorf("slept %d times for %d calls", len(s.d), calls)
			}
			for i := 1; i < len(s.d); i++ {
				if s.d[i] <= s.d[i-1] {
					t.Errorf("waits do not grow: %v", s.d)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDoStopsWithCtx: a ctx that ends during the wait ends the retries
// with the operation's last error.
func TestDoStopsWithCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	p := Policy{Sleep: func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}}
	calls := 0
	err := p.Do(ctx, "op", func(context.Context) error { calls++; return errTransient })
	if calls != 1 || !errors.Is(err, errTransient) {
		t.Errorf("calls = %d, err = %v", calls, err)
	}
}

// flaky fails the first n calls of each operation but Put.
type flaky struct {
	drivers.Destination
	n     int
	calls map[string]int
}

func (f *flaky) fail(op string) error {
	f.calls[op]++
	if f.calls[op] <= f.n {
		return errTransient
	}
	return nil
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.fail("get"); err != nil {
		return nil, err
	}
	return f.Destination.Get(ctx, key)
}

func (f *flaky) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := f.fail("getrange"); err != nil {
		return nil, err
	}
	return f.Destination.GetRange(ctx, key, offset, length)
}

func (f *flaky) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	if err := f.fail("stat"); err != nil {
		return drivers.ObjectInfo{}, err
	}
	return f.Destination.Stat(ctx, key)
}

func (f *flaky) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	if err := f.fail("list"); err != nil {
		return nil, err
	}
	return f.Destination.List(ctx, prefix)
}

func (f *flaky) Delete(ctx context.Context, key string) error {
	if err := f.fail("delete"); err != nil {
		return err
	}
	return f.Destination.Delete(ctx, key)
}

func (f *flaky) Check(ctx context.Context) error {
	if err := f.fail("check"); err != nil {
		return err
	}
	return f.Destination.Check(ctx)
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := f.fail("put"); err != nil {
		return 0, err
	}
	return f.Destination.Put(ctx, key, r)
}

func TestWrapRetriesIdempotentOperations(t *testing.T) {
	var s sleeps
	f := &flaky{Destination: local.New(t.TempDir()), n: 2, calls: map[string]int{}}
	d := Wrap(f, Policy{Sleep: s.sleep})
	ctx := t.Context()
	if _, err := d.Put(ctx, "k", strings.NewReader("v")); err == nil {
		t.Fatal("Put was retried; a stream cannot be")
	}
	f.calls["put"] = 10
	if _, err := d.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
	if _, err := d.List(ctx, ""); err != nil {
		t.Errorf("List: %v", err)
	}
	if _, err := d.Stat(ctx, "k"); err != nil {
		t.Errorf("Stat: %v", err)
	}
	rc, err := d.Get(ctx, "k")
	if err != nil {
		t.Errorf("Get: %v", err)
	} else {
		rc.Close()
	}
	rc, err = d.GetRange(ctx, "k", 0, 1)
	if err != nil {
		t.Errorf("GetRange: %v", err)
	} else {
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != "v" {
			t.Errorf("GetRange read %q, %v; want %q", b, err, "v")
		}
	}
	if err := d.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	for _, op := range []string{"check", "list", "stat", "get", "getrange", "delete"} {
		if f.calls[op] != 3 {
			t.Errorf("%s called %d times, want 3", op, f.calls[op])
		}
	}
}

// TestConformance: the decorator keeps the contract of what it wraps.
func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		// No waits: the local driver does not mark invalid keys permanent.
		return Wrap(local.New(t.TempDir()), Policy{Sleep: func(context.Context, time.Duration) error { return nil }})
	})
}

func TestDeferred(t *testing.T) {
	var s sleeps
	d := NewDeferred(Policy{Sleep: s.sleep}, time.Minute)
	var mu sync.Mutex
	calls := map[string]int{}
	run := func(name string, failures int, err error) {
		d.Run(t.Context(), name, func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			calls[name]++
			if calls[name] <= failures {
				return err
			}
			return nil
		})
	}
	run("at once", 0, nil)
	run("after two retries", 3, errTransient)
	run("permanent", 1, drivers.Permanent(errors.New("permission denied")))
	err := d.Close()
	if err == nil || !strings.Contains(err.Error(), "permanent: permission denied") || strings.Contains(err.Error(), "after two retries") {
		t.Errorf("Close: %v; want only the permanent failure", err)
	}
	if calls["after two retries"] != 4 || calls["at once"] != 1 || calls["permanent"] != 1 {
		t.Errorf("calls: %v", calls)
	}
}

// TestDeferredGivesUp: Close stops retrying after its grace period and
// names what was left undone.
func TestDeferredGivesUp(t *testing.T) {
	d := NewDeferred(Policy{Base: time.Millisecond, Max: time.Millisecond}, 50*time.Millisecond)
	d.Run(t.Context(), "abort upload 1", func(context.Context) error { return errTransient })
	err := d.Close()
	if err == nil || !strings.Contains(err.Error(), "abort upload 1: connection reset") {
		t.Errorf("Close: %v", err)
	}
}
