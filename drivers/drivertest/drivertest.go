// Package drivertest is the conformance suite every destination driver
// runs: the local one on every go test, the remote ones (S3, SFTP, FTP)
// against their real servers.
//
// A driver's test calls Run with a function that opens a fresh destination:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(t *testing.T) drivers.Destination {
//			return local.New(t.TempDir())
//		})
//	}
//
// Besides what drivers.Destination states, the suite holds drivers to these
// rules, which the agent relies on:
//
//   - A valid key is a clean, relative, slash-separated path: not empty, no
//     empty, "." or ".." element, no leading or trailing slash. Put and
//     Delete refuse any other key with an error, before reading or touching
//     anything.
//   - Keys name objects only: a key that is merely a prefix of other keys
//     ("a/b" of "a/b/c"), or that lies beneath an object ("a/b/c/x"), is
//     missing for Get and Stat (ErrNotFound) and for Delete (no error).
//   - A Put whose reader fails, or whose ctx is done before it commits,
//     returns an error that wraps the reader's error or ctx.Err(), and
//     leaves the key as it was.
package drivertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

// Run runs the conformance suite as subtests of t. Each subtest calls open
// for its own destination, which must hold no objects and be independent of
// every other destination open returns; use t for temporary directories and
// cleanup. Run closes each destination when its subtest ends.
func Run(t *testing.T, open func(t *testing.T) drivers.Destination, opts ...Option) {
	t.Helper()
	s := suite{open: open}
	for _, o := range opts {
		o(&s)
	}
	for _, c := range []struct {
		name string
		fn   func(*testing.T, drivers.Destination)
	}{
		{"RoundTripEmpty", roundTrip(0)},
		{"RoundTripOneByte", roundTrip(1)},
		{"RoundTripLarge", roundTrip(3<<20 + 17)},
		{"PutReplaces", testPutReplaces},
		{"NestedKeys", testNestedKeys},
		{"Stat", testStat},
		{"NotFound", testNotFound},
		{"ListPrefix", testListPrefix},
		{"ListEmpty", testListEmpty},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"Check", testCheck},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ConcurrentPutDeleteSamePrefix", testConcurrentPutDelete},
		{"InvalidKeys", testInvalidKeys},
		{"GetRange", testGetRange},
		{"GetRangeEmptyObject", testGetRangeEmpty},
		{"GetRangeNotFound", testGetRangeNotFound},
		{"GetRangeInvalid", testGetRangeInvalid},
		{"GetRangeLarge", testGetRangeLarge},
	} {
		s.run(t, c.name, c.fn)
	}
	for _, existing := range []bool{false, true} {
		suffix := "NewKey"
		if existing {
			suffix = "ExistingKey"
		}
		s.run(t, "PutReaderFails/"+suffix, putFails(existing, failReader))
		s.run(t, "PutCancelledMidway/"+suffix, putFails(existing, cancelMidway))
		s.run(t, "PutCancelledAtEOF/"+suffix, putFails(existing, cancelAtEOF))
		s.run(t, "PutInProgressInvisible/"+suffix, putInProgress(existing))
	}
	if s.root != nil {
		s.run(t, "Sweep", s.testSweep)
	}
}

type suite struct {
	open func(t *testing.T) drivers.Destination
	root func(d drivers.Destination) string
}

// Option adds to the suite the cases of what a driver does beyond the
// Destination contract.
type Option func(*suite)

// run runs fn as a subtest with a fresh destination.
func (s suite) run(t *testing.T, name string, fn func(*testing.T, drivers.Destination)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		d := s.open(t)
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		fn(t, d)
	})
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	for i := range key {
		key[i] = byte(seed >> (8 * (i % 8)))
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// shortReader returns data in reads of uneven, often small sizes, as a
// network stream or a pipe does. It hides bytes.Reader's WriterTo so that
// drivers see plain Reads.
type shortReader struct {
	data []byte
	n    int
}

var shortSizes = []int{1, 7, 4096, 100, 65536, 3, 31337}

func (r *shortReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	size := min(shortSizes[r.n%len(shortSizes)], len(p), len(r.data))
	r.n++
	n := copy(p, r.data[:size])
	r.data = r.data[n:]
	return n, nil
}

func put(t *testing.T, d drivers.Destination, key string, data []byte) {
	t.Helper()
	n, err := d.Put(t.Context(), key, &shortReader{data: data})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%q) = %d bytes, want %d", key, n, len(data))
	}
}

// checkObject checks that Get and Stat of key give exactly want.
func checkObject(t *testing.T, d drivers.Destination, key string, want []byte) {
	t.Helper()
	rc, err := d.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); cerr != nil {
		t.Errorf("Get(%q): close: %v", key, cerr)
	}
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Get(%q): %s", key, diffBytes(got, want))
	}
	fi, err := d.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if fi.Size != int64(len(want)) {
		t.Errorf("Stat(%q).Size = %d, want %d", key, fi.Size, len(want))
	}
}

// diffBytes describes how got differs from want without dumping megabytes.
func diffBytes(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("got %d bytes, want %d; first difference at offset %d", len(got), len(want), i)
}

func checkNotFound(t *testing.T, d drivers.Destination, key string) {
	t.Helper()
	rc, err := d.Get(t.Context(), key)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("Get(%q): got error %v, want ErrNotFound", key, err)
	}
	if _, err := d.Stat(t.Context(), key); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("Stat(%q): got error %v, want ErrNotFound", key, err)
	}
}

// listKeys lists prefix and returns "key:size" for each object.
func listKeys(t *testing.T, d drivers.Destination, prefix string) []string {
	t.Helper()
	infos, err := d.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	out := []string{}
	for _, fi := range infos {
		out = append(out, fmt.Sprintf("%s:%d", fi.Key, fi.Size))
	}
	return out
}

func checkList(t *testing.T, d drivers.Destination, prefix string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := listKeys(t, d, prefix); !slices.Equal(got, want) {
		t.Errorf("List(%q):\n got %q\nwant %q", prefix, got, want)
	}
}

func roundTrip(size int) func(*testing.T, drivers.Destination) {
	return func(t *testing.T, d drivers.Destination) {
		data := randomBytes(uint64(size), size)
		put(t, d, "obj", data)
		checkObject(t, d, "obj", data)
		checkList(t, d, "", fmt.Sprintf("obj:%d", size))
	}
}

func testPutReplaces(t *testing.T, d drivers.Destination) {
	long, short := randomBytes(1, 100_000), randomBytes(2, 10)
	put(t, d, "k", long)
	put(t, d, "k", short)
	checkObject(t, d, "k", short)
	put(t, d, "k", nil)
	checkObject(t, d, "k", nil)
	checkList(t, d, "", "k:0")
}

func testNestedKeys(t *testing.T, d drivers.Destination) {
	deep, top := randomBytes(3, 1000), randomBytes(4, 10)
	put(t, d, "a/b/c/d.bin", deep)
	put(t, d, "a/e.bin", top)
	checkObject(t, d, "a/b/c/d.bin", deep)
	checkObject(t, d, "a/e.bin", top)
	checkList(t, d, "", "a/b/c/d.bin:1000", "a/e.bin:10")
}

func testStat(t *testing.T, d drivers.Destination) {
	// Remote servers stamp objects with their own clock and some with
	// one-second resolution: allow for skew, but not for a zero or
	// nonsensical time.
	const skew = time.Hour
	before := time.Now()
	put(t, d, "dir/obj", randomBytes(5, 1234))
	after := time.Now()

	fi, err := d.Stat(t.Context(), "dir/obj")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if fi.Key != "dir/obj" {
		t.Errorf("Stat.Key = %q, want %q", fi.Key, "dir/obj")
	}
	if fi.Size != 1234 {
		t.Errorf("Stat.Size = %d, want 1234", fi.Size)
	}
	checkModTime(t, "Stat", fi.ModTime, before.Add(-skew), after.Add(skew))

	infos, err := d.List(t.Context(), "dir/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(infos) != 1 {
		t.Fatalf("List returned %d objects, want 1", len(infos))
	}
	checkModTime(t, "List", infos[0].ModTime, before.Add(-skew), after.Add(skew))
}

func checkModTime(t *testing.T, op string, got, lo, hi time.Time) {
	t.Helper()
	if got.Before(lo) || got.After(hi) {
		t.Errorf("%s ModTime = %v, want between %v and %v", op, got, lo, hi)
	}
}

func testNotFound(t *testing.T, d drivers.Destination) {
	checkNotFound(t, d, "missing")
	checkNotFound(t, d, "a/b/missing")
	put(t, d, "a/b/c/d.bin", []byte("x"))
	for _, key := range []string{
		"a",                 // a prefix of a key, not a key
		"a/b",               // likewise
		"a/b/c/d.bin/x",     // beneath an object
		"a/b/c/d.bin/x/y/z", // likewise
		"a/b/c/d",           // a prefix of the key's last element
		"a/b/c/d.bin2",
	} {
		checkNotFound(t, d, key)
	}
}

func testListPrefix(t *testing.T, d drivers.Destination) {
	// Sizes differ so a list that mixes up entries shows it. "a-c" and
	// "a.d" sort before "a/..." by bytes, after "a/" in a directory walk.
	for i, key := range []string{"a/2", "a/1", "a/b/3", "ab", "a-c", "a.d", "b/1", "c"} {
		put(t, d, key, randomBytes(uint64(i), i+1))
	}
	all := []string{"a-c:5", "a.d:6", "a/1:2", "a/2:1", "a/b/3:3", "ab:4", "b/1:7", "c:8"}
	checkList(t, d, "", all...)
	checkList(t, d, "a", "a-c:5", "a.d:6", "a/1:2", "a/2:1", "a/b/3:3", "ab:4")
	checkList(t, d, "a/", "a/1:2", "a/2:1", "a/b/3:3")
	checkList(t, d, "a/b", "a/b/3:3")
	checkList(t, d, "a/b/", "a/b/3:3")
	checkList(t, d, "a/1", "a/1:2")
	checkList(t, d, "c", "c:8")
	for _, prefix := range []string{
		"zz", "a/zz", "a/zz/", "a/b/3/", "c/", "c/x/", "c/x/y", "A",
		"/", "/a", "./a", "../", "../a", "a/../", "a//", "a/./1",
	} {
		checkList(t, d, prefix)
	}
}

func testListEmpty(t *testing.T, d drivers.Destination) {
	checkList(t, d, "")
	checkList(t, d, "a/")
	checkList(t, d, "a/b")
}

func testDelete(t *testing.T, d drivers.Destination) {
	put(t, d, "x/y/z", []byte("gone"))
	put(t, d, "x/y/keep", []byte("kept"))
	put(t, d, "x/other", []byte("other"))
	if err := d.Delete(t.Context(), "x/y/z"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkNotFound(t, d, "x/y/z")
	checkList(t, d, "", "x/other:5", "x/y/keep:4")
	checkObject(t, d, "x/y/keep", []byte("kept"))

	for _, key := range []string{"x/y/keep", "x/other"} {
		if err := d.Delete(t.Context(), key); err != nil {
			t.Fatalf("Delete(%q): %v", key, err)
		}
	}
	checkList(t, d, "")

	// The key can be used again.
	put(t, d, "x/y/z", []byte("again"))
	checkObject(t, d, "x/y/z", []byte("again"))
}

func testDeleteMissing(t *testing.T, d drivers.Destination) {
	for _, key := range []string{"never", "x/never"} {
		if err := d.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v", key, err)
		}
	}
	put(t, d, "a/b/c", []byte("abc"))
	if err := d.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := d.Delete(t.Context(), "a/b/c"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	// Keys that are only prefixes of, or lie beneath, an object are
	// missing too, and deleting them touches nothing.
	put(t, d, "p/q/r", []byte("pqr"))
	for _, key := range []string{"p", "p/q", "p/q/r/s"} {
		if err := d.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete(%q) of a non-object: %v", key, err)
		}
	}
	checkObject(t, d, "p/q/r", []byte("pqr"))
	checkList(t, d, "", "p/q/r:3")
}

func testCheck(t *testing.T, d drivers.Destination) {
	if err := d.Check(t.Context()); err != nil {
		t.Fatalf("Check on a fresh destination: %v", err)
	}
	checkList(t, d, "") // Check leaves no trace
	put(t, d, "a", []byte("a"))
	if err := d.Check(t.Context()); err != nil {
		t.Fatalf("Check with an object: %v", err)
	}
	checkList(t, d, "", "a:1")
}

func testConcurrentPuts(t *testing.T, d drivers.Destination) {
	const n = 8
	keys := make([]string, n)
	data := make([][]byte, n)
	for i := range n {
		// Half the keys share a prefix, so drivers that create
		// directories race on creating them.
		if i%2 == 0 {
			keys[i] = fmt.Sprintf("c/shared/%d", i)
		} else {
			keys[i] = fmt.Sprintf("c/own%d/obj", i)
		}
		data[i] = randomBytes(uint64(100+i), 50_000+i)
	}
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = d.Put(t.Context(), keys[i], &shortReader{data: data[i]})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put(%q): %v", keys[i], err)
		}
	}
	var want []string
	for i := range n {
		checkObject(t, d, keys[i], data[i])
		want = append(want, fmt.Sprintf("%s:%d", keys[i], len(data[i])))
	}
	slices.Sort(want)
	checkList(t, d, "c/", want...)
}

// testConcurrentPutDelete puts and deletes objects under one prefix from
// several goroutines while another lists it: a Delete that tidies up what
// looks empty must not break a Put that is about to write there, and a List
// must not fail because objects come and go.
func testConcurrentPutDelete(t *testing.T, d drivers.Destination) {
	const workers = 4
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	ctx := t.Context()
	start := make(chan struct{})
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range rounds {
				key := fmt.Sprintf("p/q/w%d-%d", w, i)
				if _, err := d.Put(ctx, key, strings.NewReader(key)); err != nil {
					fail(fmt.Errorf("Put(%q): %w", key, err))
					return
				}
				if err := d.Delete(ctx, key); err != nil {
					fail(fmt.Errorf("Delete(%q): %w", key, err))
					return
				}
			}
		})
	}
	listerDone := make(chan struct{})
	go func() {
		defer close(listerDone)
		<-start
		for range rounds {
			if _, err := d.List(ctx, "p/"); err != nil {
				fail(fmt.Errorf("list: %w", err))
				return
			}
		}
	}()
	close(start)
	wg.Wait()
	<-listerDone
	for _, err := range errs {
		t.Error(err)
	}
	checkList(t, d, "")
}

// countingReader records whether anything read from it.
type countingReader struct {
	reads int
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.reads++
	return 0, io.EOF
}

func testInvalidKeys(t *testing.T, d drivers.Destination) {
	put(t, d, "x", []byte("x"))
	for _, key := range []string{
		"", "../x", "/abs", "a/../b", "a/../x", "/x", "x/", "a//b", "./x", "a/./b", ".", "..",
	} {
		r := &countingReader{}
		if n, err := d.Put(t.Context(), key, r); err == nil {
			t.Errorf("Put(%q) = %d, <nil>; want an error", key, n)
		}
		if r.reads != 0 {
			t.Errorf("Put(%q) read its reader %d times; want it refused before reading", key, r.reads)
		}
		if err := d.Delete(t.Context(), key); err == nil {
			t.Errorf("Delete(%q) = <nil>; want an error", key)
		}
		if rc, err := d.Get(t.Context(), key); err == nil {
			rc.Close()
			t.Errorf("Get(%q) = <nil> error; want an error", key)
		}
		if _, err := d.Stat(t.Context(), key); err == nil {
			t.Errorf("Stat(%q) = <nil> error; want an error", key)
		}
	}
	checkObject(t, d, "x", []byte("x"))
	checkList(t, d, "", "x:1")
}

// A failing Put is set up by a function that returns the reader to Put from
// and the context to Put with, and the error Put must wrap.
type failingPut func(t *testing.T, data []byte) (context.Context, io.Reader, error)

var errReader = errors.New("drivertest: reader failed")

// failReader returns half the data, then an error.
func failReader(t *testing.T, data []byte) (context.Context, io.Reader, error) {
	return t.Context(), io.MultiReader(
		&shortReader{data: data[:len(data)/2]},
		errorReader{errReader},
	), errReader
}

type errorReader struct{ err error }

func (r errorReader) Read([]byte) (int, error) { return 0, r.err }

// cancelMidway cancels ctx after half the data and goes on returning data.
func cancelMidway(t *testing.T, data []byte) (context.Context, io.Reader, error) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, io.MultiReader(
		&shortReader{data: data[:len(data)/2]},
		funcReader(func() { cancel() }),
		&shortReader{data: data[len(data)/2:]},
	), context.Canceled
}

// cancelAtEOF returns all the data and cancels ctx just before it reports
// io.EOF: a driver must not commit an object once ctx is done.
func cancelAtEOF(t *testing.T, data []byte) (context.Context, io.Reader, error) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, io.MultiReader(
		&shortReader{data: data},
		funcReader(func() { cancel() }),
	), context.Canceled
}

// funcReader calls f on its first Read and reports io.EOF.
func funcReader(f func()) io.Reader {
	var once sync.Once
	return readerFunc(func([]byte) (int, error) {
		once.Do(f)
		return 0, io.EOF
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// putFails checks that a failing Put returns an error and leaves the key as
// it was: missing, or holding the previous object.
func putFails(existing bool, setup failingPut) func(*testing.T, drivers.Destination) {
	return func(t *testing.T, d drivers.Destination) {
		const key = "dir/obj"
		old := randomBytes(7, 1000)
		if existing {
			put(t, d, key, old)
		}
		put(t, d, "dir/other", []byte("other"))
		data := randomBytes(8, 1<<20+3)

		ctx, r, wantErr := setup(t, data)
		n, err := d.Put(ctx, key, r)
		if err == nil {
			t.Fatalf("Put = %d, <nil>; want an error", n)
		}
		if !errors.Is(err, wantErr) {
			t.Errorf("Put: got error %v, want one wrapping %v", err, wantErr)
		}
		if existing {
			checkObject(t, d, key, old)
			checkList(t, d, "", "dir/obj:1000", "dir/other:5")
		} else {
			checkNotFound(t, d, key)
			checkList(t, d, "", "dir/other:5")
		}
	}
}

// gateReader returns head, then blocks until release is closed (after
// closing reached), then returns tail.
type gateReader struct {
	r       io.Reader
	reached chan struct{}
	release chan struct{}
}

func newGateReader(head, tail []byte) *gateReader {
	g := &gateReader{reached: make(chan struct{}), release: make(chan struct{})}
	g.r = io.MultiReader(
		&shortReader{data: head},
		readerFunc(func([]byte) (int, error) {
			close(g.reached)
			<-g.release
			return 0, io.EOF
		}),
		&shortReader{data: tail},
	)
	return g
}

func (g *gateReader) Read(p []byte) (int, error) { return g.r.Read(p) }

// putInProgress checks that an object is invisible while its Put runs, and
// that a previous object under its key stays readable until it completes.
func putInProgress(existing bool) func(*testing.T, drivers.Destination) {
	return func(t *testing.T, d drivers.Destination) {
		const key = "dir/obj"
		old := randomBytes(9, 1000)
		if existing {
			put(t, d, key, old)
		}
		data := randomBytes(10, 200_000)
		g := newGateReader(data[:100_000], data[100_000:])

		var (
			n        int64
			err      error
			finished = make(chan struct{})
		)
		go func() {
			defer close(finished)
			n, err = d.Put(t.Context(), key, g)
		}()
		var releaseOnce sync.Once
		release := func() { releaseOnce.Do(func() { close(g.release) }) }
		// On an early failure, let the Put finish before the destination
		// is closed and its storage removed.
		t.Cleanup(func() { release(); <-finished })

		select {
		case <-g.reached:
		case <-finished:
			t.Fatalf("Put = %d, %v before its reader was drained", n, err)
		}
		if existing {
			checkObject(t, d, key, old)
			checkList(t, d, "", "dir/obj:1000")
		} else {
			checkNotFound(t, d, key)
			checkList(t, d, "")
		}

		release()
		<-finished
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if n != int64(len(data)) {
			t.Errorf("Put = %d bytes, want %d", n, len(data))
		}
		checkObject(t, d, key, data)
		checkList(t, d, "", fmt.Sprintf("dir/obj:%d", len(data)))
	}
}

// getRange reads the range of key and returns what it read and the error
// that ended reading (nil at io.EOF).
func getRange(t *testing.T, d drivers.Destination, key string, offset, length int64) ([]byte, error) {
	t.Helper()
	rc, err := d.GetRange(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, offset, length, err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); cerr != nil {
		t.Errorf("GetRange(%q, %d, %d): close: %v", key, offset, length, cerr)
	}
	return got, err
}

// checkRange checks that the range of key reads as want, then ends as
// wantErr says: nil for io.EOF, io.ErrUnexpectedEOF for a range past the
// end of the object.
func checkRange(t *testing.T, d drivers.Destination, key string, offset, length int64, want []byte, wantErr error) {
	t.Helper()
	got, err := getRange(t, d, key, offset, length)
	if !errors.Is(err, wantErr) || (wantErr == nil && err != nil) {
		t.Errorf("GetRange(%q, %d, %d): read ended with %v, want %v", key, offset, length, err, cmpErr(wantErr))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("GetRange(%q, %d, %d): %s", key, offset, length, diffBytes(got, want))
	}
}

func cmpErr(err error) any {
	if err == nil {
		return "io.EOF"
	}
	return err
}

func testGetRange(t *testing.T, d drivers.Destination) {
	const size = 100_000
	data := randomBytes(20, size)
	put(t, d, "a/obj", data)
	for _, c := range []struct {
		name           string
		offset, length int64
		wantErr        error
	}{
		{"start", 0, 1000, nil},
		{"first byte", 0, 1, nil},
		{"middle", 40_000, 12_345, nil},
		{"end", size - 500, 500, nil},
		{"last byte", size - 1, 1, nil},
		{"whole", 0, size, nil},
		{"zero length at the start", 0, 0, nil},
		{"zero length in the middle", 50_000, 0, nil},
		{"zero length at the end", size, 0, nil},
		{"past the end", size - 100, 1000, io.ErrUnexpectedEOF},
		{"one byte past the end", 0, size + 1, io.ErrUnexpectedEOF},
		{"at the end", size, 1, io.ErrUnexpectedEOF},
		{"beyond the end", size + 10, 5, io.ErrUnexpectedEOF},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			lo, hi := min(c.offset, size), min(c.offset+c.length, size)
			checkRange(t, d, "a/obj", c.offset, c.length, data[lo:hi], c.wantErr)
		})
	}
	// Reading ranges leaves the object and the destination as they were.
	checkObject(t, d, "a/obj", data)
	checkList(t, d, "", fmt.Sprintf("a/obj:%d", size))
}

func testGetRangeEmpty(t *testing.T, d drivers.Destination) {
	put(t, d, "empty", nil)
	checkRange(t, d, "empty", 0, 0, nil, nil)
	checkRange(t, d, "empty", 0, 1, nil, io.ErrUnexpectedEOF)
	checkRange(t, d, "empty", 3, 10, nil, io.ErrUnexpectedEOF)
}

func testGetRangeNotFound(t *testing.T, d drivers.Destination) {
	put(t, d, "a/b/c", []byte("abc"))
	for _, key := range []string{"missing", "a", "a/b", "a/b/c/d", "a/b/cc"} {
		for _, length := range []int64{0, 1, 10} {
			rc, err := d.GetRange(t.Context(), key, 0, length)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, drivers.ErrNotFound) {
				t.Errorf("GetRange(%q, 0, %d): got error %v, want ErrNotFound", key, length, err)
			}
		}
	}
	// Once deleted, an object is missing for GetRange too.
	if err := d.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if rc, err := d.GetRange(t.Context(), "a/b/c", 1, 1); !errors.Is(err, drivers.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("GetRange of a deleted key: got error %v, want ErrNotFound", err)
	}
}

func testGetRangeInvalid(t *testing.T, d drivers.Destination) {
	put(t, d, "x", []byte("xyz"))
	for _, c := range []struct {
		key            string
		offset, length int64
	}{
		{"x", -1, 1},
		{"x", 0, -1},
		{"x", -5, -5},
		{"x", 1, math.MaxInt64},
		{"missing", -1, 1},
		{"", 0, 1},
		{"../x", 0, 1},
		{"/x", 0, 1},
		{"a//b", 0, 0},
	} {
		rc, err := d.GetRange(t.Context(), c.key, c.offset, c.length)
		if err == nil {
			rc.Close()
			t.Errorf("GetRange(%q, %d, %d) = <nil> error; want an error", c.key, c.offset, c.length)
			continue
		}
		if errors.Is(err, drivers.ErrNotFound) {
			t.Errorf("GetRange(%q, %d, %d): got ErrNotFound (%v), want an invalid argument", c.key, c.offset, c.length, err)
		}
	}
	checkObject(t, d, "x", []byte("xyz"))
	checkList(t, d, "", "x:3")
}

// testGetRangeLarge reads ranges of an object larger than any buffer a
// driver keeps, near its end and across it, and closes ranges before their
// end more often than a driver keeps connections: each such Close must
// leave the destination usable.
func testGetRangeLarge(t *testing.T, d drivers.Destination) {
	const size = 3<<20 + 17
	data := randomBytes(21, size)
	put(t, d, "big", data)
	checkRange(t, d, "big", size-70_000, 65_536, data[size-70_000:size-70_000+65_536], nil)
	checkRange(t, d, "big", size-1000, 4096, data[size-1000:], io.ErrUnexpectedEOF)
	checkRange(t, d, "big", 1<<20, 1<<20, data[1<<20:2<<20], nil)

	for i := range 6 {
		offset := int64(i) * 100_000
		rc, err := d.GetRange(t.Context(), "big", offset, size-offset)
		if err != nil {
			t.Fatalf("GetRange(%d): %v", offset, err)
		}
		head := make([]byte, 10)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatalf("GetRange(%d): read: %v", offset, err)
		}
		if !bytes.Equal(head, data[offset:offset+10]) {
			t.Errorf("GetRange(%d): first bytes %x, want %x", offset, head, data[offset:offset+10])
		}
		if err := rc.Close(); err != nil {
			t.Errorf("GetRange(%d): Close before the end: %v", offset, err)
		}
	}
	checkObject(t, d, "big", data)
	put(t, d, "after", []byte("after"))
	checkList(t, d, "", "after:5", fmt.Sprintf("big:%d", size))
}

// WithSweep adds the case Sweep, for drivers that keep objects as files
// below a directory of this host (the local driver, and the SFTP and FTP
// servers the tests run here): root returns that directory of a
// destination open returned, once its Check ran.
//
// Sweep checks that what crashed uploads left behind, temporary files a
// week old, is removed by Check (by CleanTemp with a one-day cutoff, for a
// drivers.TempCleaner) together with the directories that leaves empty,
// while recent temporary files (an upload may be writing them) and every
// object stay. The driver's sweep age must lie between an hour and a week.
func WithSweep(root func(d drivers.Destination) string) Option {
	return func(s *suite) { s.root = root }
}

func (s suite) testSweep(t *testing.T, d drivers.Destination) {
	ctx := t.Context()
	if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	root := s.root(d)
	put(t, d, "h/p/s/0/files.tar", []byte("kept"))
	week, minute := time.Now().Add(-7*24*time.Hour), time.Now().Add(-time.Minute)
	leftovers := []struct {
		rel     string
		modTime time.Time
	}{
		{"h/p/s/0/" + drivers.TempPrefix + "files.tar-789", week}, // beside an object
		{"h/p/s/1/" + drivers.TempPrefix + "files.tar-123", week}, // alone in its directory
		{"h/p/s/2/" + drivers.TempPrefix + "files.tar-456", minute},
		{drivers.TempPrefix + "check-0123", minute},
	}
	// Made here, owned by the server's user as uploads are.
	var uid, gid = -1, -1
	if fi, err := os.Stat(root); err != nil {
		t.Fatalf("root of the destination: %v", err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	for _, l := range leftovers {
		p := filepath.Join(root, filepath.FromSlash(l.rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		for q := p; q != root; q = filepath.Dir(q) {
			os.Chown(q, uid, gid) // fails unless run as root: then the owner is already right
		}
		if err := os.Chtimes(p, l.modTime, l.modTime); err != nil {
			t.Fatal(err)
		}
	}

	if tc, ok := d.(drivers.TempCleaner); ok {
		n, size, err := tc.CleanTemp(ctx, time.Now().Add(-24*time.Hour))
		if err != nil || n != 2 || size != 2*int64(len("partial")) {
			t.Errorf("CleanTemp = %d, %d, %v; want 2, %d, <nil>", n, size, err, 2*len("partial"))
		}
	} else if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	want := []string{
		drivers.TempPrefix + "check-0123",
		"h/", "h/p/", "h/p/s/", "h/p/s/0/", "h/p/s/0/files.tar",
		"h/p/s/2/", "h/p/s/2/" + drivers.TempPrefix + "files.tar-456",
	}
	if got := tree(t, root); !slices.Equal(got, want) {
		t.Errorf("files below the root after the sweep:\n got %q\nwant %q", got, want)
	}
	checkList(t, d, "", "h/p/s/0/files.tar:4")
	checkObject(t, d, "h/p/s/0/files.tar", []byte("kept"))
}

// tree returns every file and directory below root, relative and
// slash-separated, directories with a trailing slash, in walk order.
func tree(t *testing.T, root string) []string {
	t.Helper()
	out := []string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}
