package dedup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

// DefaultPackSize is the size at which a pack is closed and uploaded.
const DefaultPackSize = 16 << 20

// ErrReuseUnavailable is returned by ObjectWriter.Reuse when a destination
// lacks one of the chunks: the caller must read and write the data instead.
var ErrReuseUnavailable = errors.New("chunks not present on every destination")

// ErrConcurrentPrune is returned by Writer.Commit when a prune marked for
// deletion a pack whose chunks this run reused: committing a manifest could
// then reference deleted data. The run must be retried with a fresh index.
var ErrConcurrentPrune = errors.New("a concurrent prune marked reused packs for deletion")

// ChunkRef is one chunk of an object, as the snapshot manifest lists it:
// the chunk's ID and its plaintext size. An object's stream is its chunks'
// plaintexts concatenated in order.
type ChunkRef struct {
	ID   ID    `json:"id"`
	Size int64 `json:"size"`
}

// Target is one destination of a Writer with the chunks it already holds
// (from LoadIndex). Writer.Commit adds what it uploaded to Known.
type Target struct {
	Name  string
	Dest  drivers.Destination
	Known *Index
}

// Config configures a Writer.
type Config struct {
	// Repo is the repository prefix (RepoPrefix).
	Repo string
	// Key keys chunk IDs.
	Key Key
	// Sealer compresses and encrypts each new chunk.
	Sealer Sealer
	// PackSize closes a pack once it holds this many bytes; 0 means
	// DefaultPackSize.
	PackSize int
	// Now gives the time recorded in pack members; nil means time.Now.
	Now func() time.Time
}

// Stats counts a Writer's work.
type Stats struct {
	Chunks      int64 // chunks referenced by objects
	NewChunks   int64 // chunks sealed and uploaded
	RawBytes    int64 // plaintext bytes of all objects
	NewRawBytes int64 // plaintext bytes of new chunks
	Packs       int64 // packs uploaded (to every destination)
	PackBytes   int64 // bytes of those packs (once, not per destination)
}

type finishedPack struct {
	id    string
	data  []byte
	entry PackEntry
}

// Writer turns object streams into chunks, seals each new chunk once, packs
// them and uploads each pack to every target. Memory is bounded: one pack
// being filled and one being uploaded. Objects may be written one after the
// other or concurrently; a chunk is sealed once per Writer.
type Writer struct {
	cfg     Config
	targets []Target

	mu      sync.Mutex
	pack    *packBuilder
	pending map[ID]bool
	used    []map[string]bool // per target: packs of reused chunks
	stats   Stats
	err     error
	closed  bool
	sealBuf bytes.Buffer

	uploads chan finishedPack
	done    chan struct{}
	upMu    sync.Mutex
	upErr   error
	written []PackEntry
}

// NewWriter starts a Writer. ctx bounds every upload the Writer makes until
// Commit or Abort returns.
func NewWriter(ctx context.Context, cfg Config, targets []Target) (*Writer, error) {
	if len(targets) == 0 {
		return nil, errors.New("dedup writer: no destination")
	}
	if cfg.Sealer == nil {
		return nil, errors.New("dedup writer: no sealer")
	}
	if cfg.Key == (Key{}) {
		return nil, errors.New("dedup writer: no dedup key")
	}
	if cfg.PackSize <= 0 {
		cfg.PackSize = DefaultPackSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Writer{
		cfg:     cfg,
		targets: targets,
		pending: make(map[ID]bool),
		uploads: make(chan finishedPack),
		done:    make(chan struct{}),
	}
	for range targets {
		w.used = append(w.used, make(map[string]bool))
	}
	go w.upload(ctx)
	return w, nil
}

func (w *Writer) upload(ctx context.Context) {
	defer close(w.done)
	for p := range w.uploads {
		w.upMu.Lock()
		failed := w.upErr != nil
		w.upMu.Unlock()
		if failed {
			continue
		}
		var err error
		key := PackKey(w.cfg.Repo, p.id)
		for _, t := range w.targets {
			if _, e := t.Dest.Put(ctx, key, bytes.NewReader(p.data)); e != nil {
				err = fmt.Errorf("upload pack %s to %s: %w", key, t.Name, e)
				break
			}
		}
		w.upMu.Lock()
		if err != nil {
			w.upErr = err
		} else {
			w.written = append(w.written, p.entry)
		}
		w.upMu.Unlock()
	}
}

// needed reports whether chunk id must be sealed: a target lacks it and this
// run has not sealed it yet. It records the packs of reused chunks.
func (w *Writer) needed(id ID) bool {
	if w.pending[id] {
		return false
	}
	for _, t := range w.targets {
		if !t.Known.Has(id) {
			return true
		}
	}
	for i, t := range w.targets {
		l, _ := t.Known.Lookup(id)
		w.used[i][l.Pack] = true
	}
	return false
}

// addChunk dedups one chunk and, when new, seals it into the current pack.
func (w *Writer) addChunk(plain []byte) (ChunkRef, error) {
	id := w.cfg.Key.ID(plain)
	ref := ChunkRef{ID: id, Size: int64(len(plain))}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return ref, w.err
	}
	if w.closed {
		return ref, errors.New("dedup writer: write after commit")
	}
	w.stats.Chunks++
	w.stats.RawBytes += ref.Size
	if !w.needed(id) {
		return ref, nil
	}
	if err := w.seal(id, plain); err != nil {
		w.err = err
		return ref, err
	}
	w.pending[id] = true
	w.stats.NewChunks++
	w.stats.NewRawBytes += ref.Size
	if w.pack.buf.Len() >= w.cfg.PackSize {
		w.flushPack()
	}
	return ref, nil
}

func (w *Writer) seal(id ID, plain []byte) error {
	w.sealBuf.Reset()
	sw, err := w.cfg.Sealer.Seal(&w.sealBuf)
	if err != nil {
		return fmt.Errorf("seal chunk %s: %w", id, err)
	}
	if _, err := sw.Write(plain); err != nil {
		return fmt.Errorf("seal chunk %s: %w", id, err)
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("seal chunk %s: %w", id, err)
	}
	if w.pack == nil {
		w.pack = newPackBuilder(w.cfg.Now(), w.cfg.PackSize)
	}
	if err := w.pack.add(id, w.sealBuf.Bytes(), int64(len(plain))); err != nil {
		return fmt.Errorf("pack chunk %s: %w", id, err)
	}
	return nil
}

// flushPack hands the current pack to the uploader; it blocks while the
// previous pack is still uploading. Called with w.mu held.
func (w *Writer) flushPack() {
	if w.pack == nil {
		return
	}
	id, data, err := w.pack.finish()
	if err != nil {
		w.err = fmt.Errorf("finish pack: %w", err)
		return
	}
	entry := PackEntry{ID: id, Size: int64(len(data)), Chunks: w.pack.chunks}
	w.pack = nil
	w.stats.Packs++
	w.stats.PackBytes += entry.Size
	w.uploads <- finishedPack{id: id, data: data, entry: entry}
}

// Object starts the object name. Its stream is written to the returned
// ObjectWriter; after Close, Chunks gives its chunk list.
func (w *Writer) Object(name string) (*ObjectWriter, error) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("object %s: writer already committed", name)
	}
	o := &ObjectWriter{w: w, name: name}
	seg, err := newSegmenter(o.emit)
	if err != nil {
		return nil, err
	}
	o.seg = seg
	return o, nil
}

// ObjectWriter receives one object's stream. It is not safe for concurrent
// use. Every ObjectWriter must be closed before Commit (its chunker runs in a
// goroutine until then).
type ObjectWriter struct {
	w      *Writer
	name   string
	seg    *segmenter
	chunks []ChunkRef
	size   int64
	closed bool
}

func (o *ObjectWriter) emit(plain []byte) error {
	ref, err := o.w.addChunk(plain)
	if err != nil {
		return err
	}
	o.chunks = append(o.chunks, ref)
	o.size += ref.Size
	return nil
}

// Write chunks p as part of the stream.
func (o *ObjectWriter) Write(p []byte) (int, error) {
	if o.closed {
		return 0, fmt.Errorf("object %s: write after close", o.name)
	}
	n, err := o.seg.Write(p)
	if err != nil {
		return n, fmt.Errorf("object %s: %w", o.name, err)
	}
	return n, nil
}

// Boundary ends the current chunk: the next byte written starts a new one.
// The files source calls it at every tar entry (header, then file data), so
// that an unchanged file's data is a run of whole chunks it can Reuse later.
func (o *ObjectWriter) Boundary() error {
	if err := o.seg.Cut(); err != nil {
		return fmt.Errorf("object %s: %w", o.name, err)
	}
	return nil
}

// Reuse appends chunks already stored (an unchanged file's data, from the
// parent snapshot's cache) without reading them: the stream continues as if
// their plaintexts had been written. It cuts first (as Boundary). When any
// destination lacks one of them it appends nothing and returns
// ErrReuseUnavailable; the caller then writes the data instead.
func (o *ObjectWriter) Reuse(refs []ChunkRef) error {
	if err := o.Boundary(); err != nil {
		return err
	}
	w := o.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range refs {
		if w.pending[r.ID] {
			continue
		}
		for _, t := range w.targets {
			if !t.Known.Has(r.ID) {
				return ErrReuseUnavailable
			}
		}
	}
	for _, r := range refs {
		w.needed(r.ID) // records the packs reused
		w.stats.Chunks++
		w.stats.RawBytes += r.Size
		o.chunks = append(o.chunks, r)
		o.size += r.Size
	}
	return nil
}

// Close ends the stream. The chunks are not durable before Writer.Commit.
func (o *ObjectWriter) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	return o.Boundary()
}

// Chunks returns the object's chunk list, valid after Close.
func (o *ObjectWriter) Chunks() []ChunkRef { return o.chunks }

// Size returns the number of stream bytes the object holds.
func (o *ObjectWriter) Size() int64 { return o.size }

// Commit uploads the last pack, then one index file per destination listing
// every pack this Writer uploaded, and checks that no concurrent prune marked
// a pack whose chunks were reused (ErrConcurrentPrune). Only after Commit
// returns nil may the caller write a manifest referencing the chunks, and it
// must do so within the prune grace period. On error nothing this run
// uploaded is referenced; a later prune removes it.
func (w *Writer) Commit(ctx context.Context) (Stats, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.stats, errors.New("dedup writer: already committed")
	}
	w.closed = true
	if w.err == nil {
		w.flushPack()
	}
	err := w.err
	stats := w.stats
	w.mu.Unlock()
	close(w.uploads)
	<-w.done
	if err != nil {
		return stats, err
	}
	if w.upErr != nil {
		return stats, w.upErr
	}
	for i, t := range w.targets {
		if len(w.written) > 0 {
			if _, err := writeIndexFile(ctx, t.Dest, w.cfg.Repo, w.written); err != nil {
				return stats, fmt.Errorf("%s: %w", t.Name, err)
			}
		}
		marks, err := loadMarks(ctx, t.Dest, w.cfg.Repo)
		if err != nil {
			return stats, fmt.Errorf("%s: %w", t.Name, err)
		}
		// A run longer than the grace period may see its own packs
		// marked as unreferenced: refuse as for reused ones.
		for _, e := range w.written {
			w.used[i][e.ID] = true
		}
		for p := range w.used[i] {
			if marks.packs[p] {
				return stats, fmt.Errorf("%s: pack %s: %w", t.Name, p, ErrConcurrentPrune)
			}
		}
		for _, e := range w.written {
			t.Known.AddPack(e)
		}
	}
	return stats, nil
}

// Abort stops the Writer without committing; packs already uploaded stay
// unreferenced until a prune removes them.
func (w *Writer) Abort() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.err = errors.New("dedup writer: aborted")
	w.pack = nil
	w.mu.Unlock()
	close(w.uploads)
	<-w.done
}
