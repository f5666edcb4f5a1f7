package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// target is one destination receiving a snapshot. Once err is set the
// target receives nothing more for this snapshot, while the others go on.
type target struct {
	name  string
	dest  drivers.Destination
	err   error
	bytes int64
	busy  time.Duration
	keys  []string // data objects stored so far, removed again on failure
	// commitFailed: the manifest's upload failed, maybe after the server
	// stored it.
	commitFailed bool
}

// snapshotWriter is the drivers.ObjectWriter a source writes into. Each
// object flows raw → compress → encrypt → (hash, count, fan out) and each
// live target stores it with one streaming Put. Nothing is buffered beyond
// the stages' own windows, and nothing is staged on disk.
type snapshotWriter struct {
	codec    *codec
	manifest v1.SnapshotManifest
	targets  []*target
	// stall is how long a destination may take no data before it is
	// dropped from the run (zero: never).
	stall time.Duration
}

func newSnapshotWriter(c *codec, m v1.SnapshotManifest, targets []*target) *snapshotWriter {
	m.Compression, m.Encryption = c.manifestCodecs()
	return &snapshotWriter{codec: c, manifest: m, targets: targets}
}

func (s *snapshotWriter) live() []*target {
	var out []*target
	for _, t := range s.targets {
		if t.err == nil {
			out = append(out, t)
		}
	}
	return out
}

// Create starts one data object.
func (s *snapshotWriter) Create(ctx context.Context, name, format string) (io.WriteCloser, error) {
	if strings.ContainsAny(name, "/\\") || name == "" || name == v1.ManifestName {
		return nil, fmt.Errorf("invalid object name %q", name)
	}
	live := s.live()
	if len(live) == 0 {
		return nil, s.allFailed()
	}
	key := name + s.codec.suffix()
	full := s.manifest.ObjectKey(v1.SnapshotObject{Key: key})
	ow := &objectWriter{
		parent: s,
		obj:    v1.SnapshotObject{Name: name, Key: key, Format: format},
		sum:    sha256.New(),
	}
	for _, t := range live {
		pr, pw := io.Pipe()
		ch := make(chan putResult, 1)
		pctx, cancel := context.WithCancel(ctx)
		putEnded := make(chan struct{})
		go func() {
			defer close(putEnded)
			defer cancel()
			start := time.Now()
			n, err := t.dest.Put(pctx, full, pr)
			if err != nil {
				pr.CloseWithError(err)
			} else {
				// Put succeeded, so it read everything; a later write
				// means the destination stopped reading too early.
				pr.CloseWithError(errEarlyEOF)
			}
			ch <- putResult{n: n, err: err, took: time.Since(start)}
		}()
		// The destination's I/O runs behind a bounded queue, so it overlaps
		// compression and encryption instead of taking turns with them.
		aw := newAsyncWriter(pw, asyncChunk, asyncChunks)
		out := &pipeOut{t: t, pw: pw, aw: aw, done: ch, key: full}
		ow.outs = append(ow.outs, out)
		if s.stall > 0 {
			go watchStall(aw, putEnded, s.stall, func() {
				err := fmt.Errorf("destination %s made no progress for %s: dropped from this run", t.name, s.stall)
				out.stalled.Store(&err)
				// Unblock the stage writing to it and end its Put.
				pr.CloseWithError(err)
				cancel()
			})
		}
	}
	enc, err := s.codec.encode(ow.sink())
	if err != nil {
		ow.abort(err)
		return nil, err
	}
	ow.enc = enc
	return ow, nil
}

var errEarlyEOF = errors.New("destination stopped reading before the end of the object")

func (s *snapshotWriter) allFailed() error {
	var msgs []string
	for _, t := range s.targets {
		msgs = append(msgs, fmt.Sprintf("%s: %v", t.name, t.err))
	}
	return fmt.Errorf("every destination failed: %s", strings.Join(msgs, "; "))
}

type putResult struct {
	n    int64
	err  error
	took time.Duration
}

// Each queue between two stages of the stream holds at most asyncChunks
// chunks of asyncChunk bytes: per destination, this is the buffer that
// absorbs its short stalls while the others go on.
const (
	asyncChunk  = 1 << 20
	asyncChunks = 8
)

// watchStall calls stalled once, when a destination makes no progress
// for longer than stall: the writer behind aw stuck in one write, or, once
// everything is written, the Put not ending (its last part, its commit). It
// returns when the Put has ended.
func watchStall(aw *asyncWriter, putEnded <-chan struct{}, stall time.Duration, stalled func()) {
	tick := time.NewTicker(max(stall/10, 10*time.Millisecond))
	defer tick.Stop()
	var written time.Time // when aw was closed and drained
	for {
		select {
		case <-putEnded:
			return
		case now := <-tick.C:
			select {
			case <-aw.done:
				if written.IsZero() {
					written = now
				}
			default:
			}
			since := aw.busySince()
			if !written.IsZero() {
				since = written
			}
			if !since.IsZero() && now.Sub(since) > stall {
				stalled()
				return
			}
		}
	}
}

type pipeOut struct {
	t    *target
	pw   *io.PipeWriter
	aw   *asyncWriter
	done chan putResult
	key  string
	dead bool
	// stalled is set when the destination was dropped for making no
	// progress: that, not its Put's "context canceled", is its error.
	stalled atomic.Pointer[error]
}

// failure is the error to report for the destination's Put.
func (p *pipeOut) failure(err error) error {
	if e := p.stalled.Load(); e != nil {
		return *e
	}
	return err
}

// objectWriter is one object in flight.
type objectWriter struct {
	parent *snapshotWriter
	obj    v1.SnapshotObject
	enc    io.WriteCloser
	sum    hash.Hash
	outs   []*pipeOut
	closed bool
	// aborting is set before abort closes the pipes, so that the codec's
	// goroutine, still writing, does not blame the destinations.
	aborting atomic.Bool
}

func (o *objectWriter) sink() io.Writer { return fanout{o} }

// fanout writes the stored bytes to the hash and every live pipe. A pipe
// whose destination failed is dropped; the write fails only when none is
// left.
type fanout struct{ o *objectWriter }

func (f fanout) Write(p []byte) (int, error) {
	o := f.o
	o.sum.Write(p)
	o.obj.Size += int64(len(p))
	alive := 0
	for _, out := range o.outs {
		if out.dead {
			continue
		}
		if _, err := out.aw.Write(p); err != nil {
			out.dead = true
			out.aw.Close() // drains: the Put has ended, nothing more is written
			res := <-out.done
			out.t.busy += res.took
			if o.aborting.Load() {
				// The source gave up and closed the pipes: not the
				// destination's failure.
				continue
			}
			if res.err == nil {
				// The destination stored the object although it stopped
				// reading early: roll it back with the rest.
				out.t.keys = append(out.t.keys, out.key)
				res.err = err
			}
			out.t.err = fmt.Errorf("store %s: %w", out.key, out.failure(res.err))
			continue
		}
		alive++
	}
	if alive == 0 {
		return 0, o.parent.allFailed()
	}
	return len(p), nil
}

func (o *objectWriter) Write(p []byte) (int, error) {
	n, err := o.enc.Write(p)
	o.obj.RawSize += int64(n)
	return n, err
}

// Close flushes the codecs and waits until every live destination has
// stored the object.
func (o *objectWriter) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	err := o.enc.Close()
	o.enc = nil
	if err != nil {
		o.abort(err)
		return err
	}
	var wg sync.WaitGroup
	for _, out := range o.outs {
		if out.dead {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			werr := out.aw.Close() // everything queued reaches the pipe
			out.pw.CloseWithError(werr)
			res := <-out.done
			if res.err == nil && werr != nil {
				res.err = werr
			}
			out.t.busy += res.took
			if res.err != nil {
				out.dead = true
				out.t.err = fmt.Errorf("store %s: %w", out.key, out.failure(res.err))
				return
			}
			out.t.bytes += res.n
			out.t.keys = append(out.t.keys, out.key)
		}()
	}
	wg.Wait()
	o.obj.SHA256 = hex.EncodeToString(o.sum.Sum(nil))
	o.parent.manifest.Objects = append(o.parent.manifest.Objects, o.obj)
	if len(o.parent.live()) == 0 {
		return o.parent.allFailed()
	}
	return nil
}

// CloseWithError abandons the object: a source that fails midway calls it
// instead of Close, so no destination stores a truncated object (each Put
// fails and drops its temporary file). The object is not listed in the
// manifest.
func (o *objectWriter) CloseWithError(err error) error {
	if o.closed {
		return nil
	}
	if err == nil {
		err = errors.New("source abandoned the object")
	}
	o.abort(err)
	return nil
}

// abort stops every upload of the object with err; the destinations drop
// their temporary files.
//
// The order matters: the codec may run a stage on its own goroutine that is
// still writing into the fan-out. First every pipe is closed (safe from any
// goroutine), so nothing can complete; then the codec is closed, which
// joins its goroutines (their writes now fail fast); only then are the
// outputs, no longer shared, collected.
func (o *objectWriter) abort(err error) {
	o.closed = true
	o.aborting.Store(true)
	for _, out := range o.outs {
		out.pw.CloseWithError(err)
	}
	if o.enc != nil {
		_ = o.enc.Close()
		o.enc = nil
	}
	for _, out := range o.outs {
		if out.dead {
			continue
		}
		out.aw.Close()
		res := <-out.done
		out.t.busy += res.took
		out.dead = true
	}
}

// commit writes the manifest to every target that stored all objects. The
// manifest is the commit: before it exists the snapshot is not listed.
func (s *snapshotWriter) commit(ctx context.Context) {
	normalizeManifest(&s.manifest)
	sealed, body, err := s.codec.seal(&s.manifest)
	if err != nil {
		for _, t := range s.live() {
			t.err = fmt.Errorf("seal manifest: %w", err)
		}
		return
	}
	if sealed != nil {
		// The sealed copy is a data object like the others: written before
		// the manifest, removed with the snapshot.
		skey := path.Join(path.Dir(s.manifest.ManifestKey()), v1.SealedManifestName)
		for _, t := range s.live() {
			start := time.Now()
			n, err := putSmall(ctx, t.dest, skey, sealed)
			t.busy += time.Since(start)
			if err != nil {
				t.err = fmt.Errorf("store %s: %w", skey, err)
				continue
			}
			t.bytes += n
			t.keys = append(t.keys, skey)
		}
	}
	key := s.manifest.ManifestKey()
	for _, t := range s.live() {
		start := time.Now()
		n, err := putSmall(ctx, t.dest, key, body)
		t.busy += time.Since(start)
		if err != nil {
			// The error may have come after the server committed (a lost
			// reply): the manifest may exist. cleanupFailed knows.
			t.err = fmt.Errorf("store %s: %w", key, err)
			t.commitFailed = true
			continue
		}
		t.bytes += n
	}
}

// putSmall stores an in-memory object, retrying a few times: unlike a
// streamed object it can be sent again, and losing the commit of a long
// upload to one transient error would be a waste.
func putSmall(ctx context.Context, d drivers.Destination, key string, body []byte) (int64, error) {
	var err error
	for attempt, wait := 0, time.Second; attempt < 3; attempt, wait = attempt+1, wait*2 {
		var n int64
		if n, err = d.Put(ctx, key, bytes.NewReader(body)); err == nil {
			return n, nil
		}
		if drivers.IsPermanent(err) || ctx.Err() != nil || attempt == 2 {
			break
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(wait):
		}
	}
	return 0, err
}

// cleanupFailed removes what a failed target stored of this snapshot. When
// the failure was the commit itself, the manifest may have reached the
// destination after all: it is removed first, and the data only once the
// manifest is known to be gone, so no listed snapshot ever loses its data.
func (t *target) cleanupFailed(ctx context.Context, manifestKey string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if t.commitFailed {
		if err := t.dest.Delete(ctx, manifestKey); err != nil {
			log.Warn("the manifest may have been stored although its upload failed; keeping the snapshot's data", "destination", t.name, "key", manifestKey, "err", err)
			return
		}
	}
	t.removeKeys(ctx, log)
}

// removeKeys deletes the data objects t stored, best effort: without a
// manifest they are invisible anyway, and retention removes what is left.
func (t *target) removeKeys(ctx context.Context, log *slog.Logger) {
	for _, k := range t.keys {
		if err := t.dest.Delete(ctx, k); err != nil {
			log.Warn("cannot remove an object of an abandoned snapshot; retention will", "destination", t.name, "key", k, "err", err)
		}
	}
	t.keys = nil
}

// rollback removes the data objects of an abandoned snapshot.
func (s *snapshotWriter) rollback(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, t := range s.targets {
		t.removeKeys(ctx, log)
	}
}

// normalizeManifest makes the manifest what a reader will decode: JSON
// replaces invalid UTF-8 (a Latin-1 file name in a warning) with U+FFFD on
// the way out, so the HMAC and the sealed copy must be computed over the
// replaced text, or a reader would never match them.
func normalizeManifest(m *v1.SnapshotManifest) {
	raw, err := json.Marshal(m)
	if err != nil {
		return
	}
	var n v1.SnapshotManifest
	if json.Unmarshal(raw, &n) == nil {
		*m = n
	}
}
