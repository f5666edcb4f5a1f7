package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/drivertest"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/drivers/s3"
	"github.com/aegis-backup/aegis/test/testenv"
)

// fakeClock is a virtual clock: Sleep moves it forward at once, so a
// transfer takes no real time and its duration is exact.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return nil
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// officeHours slows down from 2 MiB/s to 1 MiB/s at 08:00 UTC.
func officeHours(t *testing.T) *v1.BandwidthSchedule {
	t.Helper()
	s, err := v1.CompileBandwidth(&v1.Bandwidth{
		Limit:    "2MiB/s",
		TimeZone: "UTC",
		Schedule: []v1.BandwidthWindow{{Days: "Mon-Fri", Between: "08:00-18:00", Limit: "1MiB/s"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// 2026-12-04 is a Friday.
var beforeEight = time.Date(2026, 12, 4, 7, 59, 59, 0, time.UTC)

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// destinations are the stores the timing tests run against: the local one
// always, S3 on the server of hack/test-env.sh.
func destinations() map[string]func(t *testing.T) drivers.Destination {
	return map[string]func(t *testing.T) drivers.Destination{
		"local": func(t *testing.T) drivers.Destination { return local.New(t.TempDir()) },
		"s3":    openS3,
	}
}

func openS3(t *testing.T) drivers.Destination {
	t.Helper()
	env := testenv.Require(t, "S3 server", "AEGIS_TEST_S3_ENDPOINT", "AEGIS_TEST_S3_BUCKET", "AEGIS_TEST_S3_CREDENTIALS_FILE")
	st, err := s3.New(v1.S3Destination{
		Provider:        "other",
		Endpoint:        env["AEGIS_TEST_S3_ENDPOINT"],
		Bucket:          env["AEGIS_TEST_S3_BUCKET"],
		CredentialsFile: env["AEGIS_TEST_S3_CREDENTIALS_FILE"],
		Prefix:          fmt.Sprintf("test/ratelimit-%s-%d", t.Name(), time.Now().UnixNano()),
	}, s3.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestUploadTakesTime measures real time: 4 MiB at 2 MiB/s cannot take
// less than about 2 s (the bucket starts empty and holds at most 40 KiB).
func TestUploadTakesTime(t *testing.T) {
	for name, open := range destinations() {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			d := NewFixed(store, 2<<20, Options{})
			data := randomData(t, 4<<20)
			start := time.Now()
			n, err := d.Put(t.Context(), "big", bytes.NewReader(data))
			elapsed := time.Since(start)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Put = %d, %v; want %d, nil", n, err, len(data))
			}
			if elapsed < 1500*time.Millisecond {
				t.Errorf("4 MiB at 2 MiB/s took %v, want at least 1.5s", elapsed)
			}
			t.Logf("4 MiB at 2 MiB/s took %v", elapsed)
			rc, err := store.Get(t.Context(), "big")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, data) {
				t.Errorf("Get returned %d bytes that differ from the %d stored", len(got), len(data))
			}
		})
	}
}

// TestRateChangesMidUpload uploads 4 MiB starting one second before 08:00,
// when the rate drops from 2 MiB/s to 1 MiB/s: about 2 MiB pass in the
// first second and the rest at 1 MiB/s, about 3 s in all, where 2 MiB/s
// throughout takes about 2 s.
func TestRateChangesMidUpload(t *testing.T) {
	for name, open := range destinations() {
		t.Run(name, func(t *testing.T) {
			dst := open(t)
			data := randomData(t, 4<<20)
			for _, tt := range []struct {
				name     string
				sched    Schedule
				min, max time.Duration
			}{
				{"slows down at 08:00", officeHours(t), 2900 * time.Millisecond, 3050 * time.Millisecond},
				{"2 MiB/s throughout", fixed(2 << 20), 1950 * time.Millisecond, 2050 * time.Millisecond},
			} {
				clock := &fakeClock{now: beforeEight}
				d := New(dst, tt.sched, Options{Clock: clock})
				if _, err := d.Put(t.Context(), "big", bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
				if took := clock.Now().Sub(beforeEight); took < tt.min || took > tt.max {
					t.Errorf("%s: 4 MiB took %v on the clock, want %v to %v", tt.name, took, tt.min, tt.max)
				}
			}
			// Downloads follow the same rates.
			clock := &fakeClock{now: beforeEight}
			d := New(dst, officeHours(t), Options{Clock: clock})
			rc, err := d.Get(t.Context(), "big")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, data) {
				t.Fatalf("Get returned different bytes")
			}
			if took := clock.Now().Sub(beforeEight); took < 2900*time.Millisecond || took > 3050*time.Millisecond {
				t.Errorf("Get: 4 MiB took %v on the clock, want about 3s", took)
			}
		})
	}
}

// ranged adds GetRange to a destination, as the interface will have it.
type ranged struct{ drivers.Destination }

func (r ranged) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := r.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, rc, offset); err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, length), rc}, nil
}

func TestGetRange(t *testing.T) {
	store := local.New(t.TempDir())
	data := randomData(t, 3<<20)
	if _, err := store.Put(t.Context(), "obj", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: beforeEight}
	d := NewFixed(ranged{store}, 1<<20, Options{Clock: clock})
	rc, err := d.GetRange(t.Context(), "obj", 1<<20, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, rc); !bytes.Equal(got, data[1<<20:3<<20]) {
		t.Errorf("GetRange returned %d bytes, not the 2 MiB asked for", len(got))
	}
	if took := clock.Now().Sub(beforeEight); took < 1900*time.Millisecond || took > 2050*time.Millisecond {
		t.Errorf("2 MiB at 1 MiB/s took %v on the clock, want about 2s", took)
	}

	if _, err := d.GetRange(t.Context(), "missing", 0, 1); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("GetRange of a missing key: %v, want ErrNotFound", err)
	}
}

// cancellingClock cancels the transfer at its first wait.
type cancellingClock struct {
	fakeClock
	cancel context.CancelFunc
}

func (c *cancellingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.cancel()
	return ctx.Err()
}

func TestCancelWhileWaiting(t *testing.T) {
	store := local.New(t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d := NewFixed(store, 1<<20, Options{Clock: &cancellingClock{fakeClock{now: beforeEight}, cancel}})
	_, err := d.Put(ctx, "obj", bytes.NewReader(randomData(t, 4<<20)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled while waiting: %v, want context.Canceled", err)
	}
	if _, err := store.Stat(t.Context(), "obj"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("Stat after a cancelled Put: %v, want ErrNotFound", err)
	}
}

func TestUnlimitedDoesNotWait(t *testing.T) {
	clock := &fakeClock{now: beforeEight}
	d := NewFixed(local.New(t.TempDir()), 0, Options{Clock: clock})
	if _, err := d.Put(t.Context(), "obj", bytes.NewReader(randomData(t, 4<<20))); err != nil {
		t.Fatal(err)
	}
	if !clock.Now().Equal(beforeEight) {
		t.Errorf("an unlimited Put waited %v", clock.Now().Sub(beforeEight))
	}
}

func TestDescribe(t *testing.T) {
	clock := &fakeClock{now: beforeEight}
	var d drivers.Destination = New(local.New(t.TempDir()), officeHours(t), Options{Clock: clock})
	if got, want := Describe(d), "2MiB/s (Mon-Fri 08:00-18:00 1MiB/s; otherwise 2MiB/s; times in UTC)"; got != want {
		t.Errorf("Describe before 08:00 = %q, want %q", got, want)
	}
	clock.now = clock.now.Add(time.Second)
	if got, want := Describe(d), "1MiB/s (Mon-Fri 08:00-18:00 1MiB/s; otherwise 2MiB/s; times in UTC)"; got != want {
		t.Errorf("Describe at 08:00 = %q, want %q", got, want)
	}
	if got, want := Describe(NewFixed(d, 5<<20, Options{})), "5MiB/s"; got != want {
		t.Errorf("Describe of a fixed limit = %q, want %q", got, want)
	}
	if got, want := Describe(NewFixed(d, 1500<<10, Options{})), "1.465MiB/s"; got != want {
		t.Errorf("Describe of a fixed limit = %q, want %q", got, want)
	}
	if got := Describe(local.New(t.TempDir())); got != "" {
		t.Errorf("Describe of an unlimited destination = %q, want empty", got)
	}
}

// TestConformance runs the destination suite through the decorator.
func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		return NewFixed(local.New(t.TempDir()), 256<<20, Options{})
	})
}

func TestCleanTempPassesThrough(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, drivers.TempPrefix+"crashed")
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(tmp, old, old); err != nil {
		t.Fatal(err)
	}
	var d drivers.Destination = NewFixed(local.New(dir), 1<<20, Options{})
	tc, ok := d.(drivers.TempCleaner)
	if !ok {
		t.Fatal("a limited local destination is no drivers.TempCleaner")
	}
	if n, size, err := tc.CleanTemp(t.Context(), time.Now().Add(-time.Hour)); n != 1 || size != 4 || err != nil {
		t.Errorf("CleanTemp = %d, %d, %v; want 1, 4, nil", n, size, err)
	}
}
