package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/reconcile/dedup"
)

// dedupReader returns the reader of snapshot m's repository on dest,
// loading its dedup key and index once per decoder.
func (d *decoder) dedupReader(ctx context.Context, dest drivers.Destination, m *v1.SnapshotManifest) (*dedup.Reader, error) {
	if d.repo != nil && d.repoKeyID == m.DedupKeyID {
		r := *d.repo
		r.Opener = chunkOpener{dec: d, m: m}
		return &r, nil
	}
	key, err := readDedupKey(ctx, dest, m, d)
	if err != nil {
		return nil, err
	}
	repo := dedup.RepoPrefix(m.Host, m.Policy)
	idx, problems, err := dedup.LoadIndex(ctx, dest, repo)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: load index of %s: %w", m.ID, repo, err)
	}
	for _, p := range problems {
		d.problems = append(d.problems, fmt.Sprintf("%s: %s", repo, p))
	}
	d.repo = &dedup.Reader{Dest: dest, Repo: repo, Index: idx, Key: key}
	d.repoKeyID = m.DedupKeyID
	r := *d.repo
	r.Opener = chunkOpener{dec: d, m: m}
	return &r, nil
}

// chunkRefs parses an object's chunk list and checks it adds up to its
// size.
func chunkRefs(m *v1.SnapshotManifest, ob v1.SnapshotObject) ([]dedup.ChunkRef, error) {
	refs := make([]dedup.ChunkRef, 0, len(ob.Chunks))
	var total int64
	for i, c := range ob.Chunks {
		id, err := dedup.ParseID(c.ID)
		if err != nil || c.Size < 0 {
			return nil, fmt.Errorf("snapshot %s, object %s: chunk %d is not valid: the manifest is damaged", m.ID, ob.Name, i)
		}
		refs = append(refs, dedup.ChunkRef{ID: id, Size: c.Size})
		total += c.Size
	}
	if total != ob.RawSize || ob.Size != ob.RawSize {
		return nil, fmt.Errorf("snapshot %s, object %s: its chunks add up to %d bytes, the manifest says %d: the manifest is damaged", m.ID, ob.Name, total, ob.RawSize)
	}
	return refs, nil
}

// openDedupObject is openObject for a deduplicated object: its chunks are
// read, opened and checked (keyed ID, size) in order, and the check after
// reading compares the stream's size and SHA-256 with the manifest.
func openDedupObject(ctx context.Context, dest drivers.Destination, m *v1.SnapshotManifest, ob v1.SnapshotObject, dec *decoder) (io.Reader, func() error, func(), error) {
	where := fmt.Sprintf("snapshot %s, object %s", m.ID, ob.Name)
	refs, err := chunkRefs(m, ob)
	if err != nil {
		return nil, nil, nil, err
	}
	rd, err := dec.dedupReader(ctx, dest, m)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := rd.Restore(ctx, refs, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	hr := &hashReader{r: pr, h: sha256.New()}
	raw := &countReader{ReadCloser: io.NopCloser(files.LimitRaw(ctx, hr, ob.RawSize))}
	var restoreErr error
	waited := false
	wait := func() error {
		if !waited {
			waited, restoreErr = true, <-done
		}
		return restoreErr
	}
	check := func() error {
		_, derr := io.Copy(io.Discard, raw)
		if err := wait(); err != nil {
			if len(dec.problems) > 0 {
				return fmt.Errorf("%s: %w (damaged index files were skipped: %s)", where, err, strings.Join(dec.problems, "; "))
			}
			return fmt.Errorf("%s: %w", where, err)
		}
		if derr != nil {
			return fmt.Errorf("%s: %w", where, derr)
		}
		if hr.n != ob.Size {
			return fmt.Errorf("%s: read %d bytes, the manifest says %d: the object is damaged", where, hr.n, ob.Size)
		}
		if got := hex.EncodeToString(hr.h.Sum(nil)); got != ob.SHA256 {
			return fmt.Errorf("%s: SHA-256 %s differs from the manifest's %s: the object is damaged or was replaced", where, got, ob.SHA256)
		}
		return nil
	}
	closeFn := func() {
		pr.CloseWithError(errors.New("restore ended"))
		cancel()
		_ = wait()
	}
	return &errPrefixReader{r: raw, where: where}, check, closeFn, nil
}
