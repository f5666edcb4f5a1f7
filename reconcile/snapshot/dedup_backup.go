package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/dedup"
)

// dedupSink is the drivers.ObjectWriter of a deduplicated snapshot: each
// object's raw stream goes through the dedup writer, and the object is
// listed with its chunks once closed.
type dedupSink struct {
	w       *dedup.Writer
	mu      sync.Mutex
	objects []v1.SnapshotObject
}

// Create starts one object.
func (s *dedupSink) Create(ctx context.Context, name, format string) (io.WriteCloser, error) {
	if strings.ContainsAny(name, "/\\") || name == "" || name == v1.ManifestName {
		return nil, fmt.Errorf("invalid object name %q", name)
	}
	ow, err := s.w.Object(name)
	if err != nil {
		return nil, err
	}
	return &dedupObject{sink: s, ow: ow, obj: v1.SnapshotObject{Name: name, Format: format}, sum: sha256.New()}, nil
}

// dedupObject is one object in flight. It hashes the raw stream, so that
// restore and the recovery script check it end to end.
type dedupObject struct {
	sink   *dedupSink
	ow     *dedup.ObjectWriter
	obj    v1.SnapshotObject
	sum    hash.Hash
	closed bool
}

func (o *dedupObject) Write(p []byte) (int, error) {
	n, err := o.ow.Write(p)
	o.sum.Write(p[:n])
	return n, err
}

// Boundary ends the current chunk (the files source calls it at each tar
// entry, so that unchanged files give the same chunks).
func (o *dedupObject) Boundary() error { return o.ow.Boundary() }

// Close lists the object in the manifest.
func (o *dedupObject) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	if err := o.ow.Close(); err != nil {
		return err
	}
	o.obj.Size = o.ow.Size()
	o.obj.RawSize = o.obj.Size
	o.obj.SHA256 = hex.EncodeToString(o.sum.Sum(nil))
	for _, c := range o.ow.Chunks() {
		o.obj.Chunks = append(o.obj.Chunks, v1.SnapshotChunk{ID: c.ID.String(), Size: c.Size})
	}
	if o.obj.Chunks == nil {
		o.obj.Chunks = []v1.SnapshotChunk{} // an empty object still lists its chunks
	}
	o.sink.mu.Lock()
	o.sink.objects = append(o.sink.objects, o.obj)
	o.sink.mu.Unlock()
	return nil
}

// CloseWithError abandons the object: it is not listed; its chunks, not
// referenced, go at the next prune.
func (o *dedupObject) CloseWithError(err error) error {
	if o.closed {
		return nil
	}
	o.closed = true
	_ = o.ow.Close()
	return nil
}

// dedupTargets loads each destination's index of the repository (rebuilt
// when an index file is damaged) and stores the dedup key's sealed copy.
// A destination that fails is marked in its target and left out.
func dedupTargets(ctx context.Context, log *slog.Logger, c *codec, repo string, k []byte, keyID string, targets []*target) []dedup.Target {
	var out []dedup.Target
	for _, t := range targets {
		if err := storeDedupKey(ctx, t.dest, c, repo, k, keyID); err != nil {
			t.err = err
			continue
		}
		idx, problems, err := dedup.LoadIndex(ctx, t.dest, repo)
		if err == nil && len(problems) > 0 {
			log.Warn("repository index damaged: rebuilding it from the packs", "destination", t.name, "problems", strings.Join(problems, "; "))
			if _, err = dedup.RebuildIndex(ctx, t.dest, repo, false); err == nil {
				idx, _, err = dedup.LoadIndex(ctx, t.dest, repo)
			}
		}
		if err != nil {
			t.err = fmt.Errorf("load index of %s: %w", repo, err)
			continue
		}
		out = append(out, dedup.Target{Name: t.name, Dest: t.dest, Known: idx})
	}
	return out
}

// dedupBackup runs one source into a deduplicated snapshot: chunks, packs
// and indexes first (Writer.Commit), then the manifest (sw.commit).
func (r *Runner) dedupBackup(ctx context.Context, log *slog.Logger, c *codec, sw *snapshotWriter, drv drivers.Source, track func(drivers.ObjectWriter) drivers.ObjectWriter) (drivers.SourceStats, dedup.Stats, error) {
	m := &sw.manifest
	k, keyID, err := hostDedupKey(c, r.StateDir, m.Policy)
	if err != nil {
		return drivers.SourceStats{}, dedup.Stats{}, err
	}
	key, err := dedup.NewKey(k)
	if err != nil {
		return drivers.SourceStats{}, dedup.Stats{}, err
	}
	sealer, err := newChunkSealer(c)
	if err != nil {
		return drivers.SourceStats{}, dedup.Stats{}, err
	}
	repo := dedup.RepoPrefix(m.Host, m.Policy)
	dt := dedupTargets(ctx, log, c, repo, k, keyID, sw.targets)
	if len(dt) == 0 {
		return drivers.SourceStats{}, dedup.Stats{}, sw.allFailed()
	}
	w, err := dedup.NewWriter(ctx, dedup.Config{Repo: repo, Key: key, Sealer: sealer, Now: r.Now}, dt)
	if err != nil {
		return drivers.SourceStats{}, dedup.Stats{}, err
	}
	sink := &dedupSink{w: w}
	stats, err := drv.Backup(ctx, track(sink))
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		w.Abort()
		return stats, dedup.Stats{}, err
	}
	ds, err := w.Commit(ctx)
	if err != nil {
		return stats, ds, fmt.Errorf("commit chunks: %w", err)
	}
	m.FormatVersion, m.Storage, m.DedupKeyID = v1.SnapshotFormatVersion, v1.StorageDeduplicated, keyID
	m.Objects = sink.objects
	for _, t := range sw.targets {
		if t.err == nil {
			t.bytes += ds.PackBytes
		}
	}
	return stats, ds, nil
}

// setDedupResult records a deduplicated run's figures in its result.
func setDedupResult(sr *v1.SourceResult, ds dedup.Stats) {
	sr.StreamBytes, sr.NewBytes = ds.RawBytes, ds.NewRawBytes
	sr.DedupRatio = 0
	if ds.NewRawBytes > 0 {
		sr.DedupRatio = math.Round(float64(ds.RawBytes)/float64(ds.NewRawBytes)*100) / 100
	}
}
