package dedup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aegis-backup/aegis/drivers"
	"golang.org/x/sync/errgroup"
)

// getRange reads a byte range of key.
func getRange(ctx context.Context, dest drivers.Destination, key string, offset, length int64) ([]byte, error) {
	rc, err := dest.GetRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, length)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// Reader restores object streams from a repository.
type Reader struct {
	Dest   drivers.Destination
	Repo   string
	Index  *Index
	Key    Key
	Opener Opener
	// Parallel is how many ranges are fetched at once; 0 means 4.
	Parallel int
	// MaxRange caps the bytes of one ranged read (adjacent chunks of one
	// pack are read together up to it); 0 means 16 MiB. Memory is about
	// Parallel × MaxRange plus one chunk's plaintext.
	MaxRange int64
}

// span is a run of chunks read with one ranged read.
type span struct {
	pack   string
	offset int64
	length int64
	chunks []spanChunk
}

type spanChunk struct {
	ref ChunkRef
	loc Location
}

func (r *Reader) plan(chunks []ChunkRef) ([]span, error) {
	maxRange := r.MaxRange
	if maxRange <= 0 {
		maxRange = 16 << 20
	}
	var spans []span
	for _, c := range chunks {
		loc, ok := r.Index.Lookup(c.ID)
		if !ok {
			return nil, fmt.Errorf("chunk %s: not in any index", c.ID)
		}
		if n := len(spans); n > 0 {
			s := &spans[n-1]
			if s.pack == loc.Pack && loc.Offset >= s.offset+s.length && loc.Offset+loc.Length-s.offset <= maxRange && loc.Offset-(s.offset+s.length) <= 4096 {
				s.length = loc.Offset + loc.Length - s.offset
				s.chunks = append(s.chunks, spanChunk{c, loc})
				continue
			}
		}
		spans = append(spans, span{pack: loc.Pack, offset: loc.Offset, length: loc.Length, chunks: []spanChunk{{c, loc}}})
	}
	return spans, nil
}

// Restore writes the stream of the object made of chunks to w. Packs are
// read with ranged reads, several at once, and each chunk is checked after
// decryption against its keyed ID and size: a chunk that does not match
// fails the restore naming the chunk and its pack.
func (r *Reader) Restore(ctx context.Context, chunks []ChunkRef, w io.Writer) error {
	spans, err := r.plan(chunks)
	if err != nil {
		return err
	}
	par := r.Parallel
	if par <= 0 {
		par = 4
	}
	g, ctx := errgroup.WithContext(ctx)
	results := make([]chan []byte, len(spans))
	for i := range results {
		results[i] = make(chan []byte, 1)
	}
	sem := make(chan struct{}, par)
	g.Go(func() error {
		for i, s := range spans {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			g.Go(func() error {
				key := PackKey(r.Repo, s.pack)
				b, err := getRange(ctx, r.Dest, key, s.offset, s.length)
				if err != nil {
					return fmt.Errorf("read pack %s: %w", key, err)
				}
				results[i] <- b
				return nil
			})
		}
		return nil
	})
	g.Go(func() error {
		for i, s := range spans {
			var b []byte
			select {
			case b = <-results[i]:
			case <-ctx.Done():
				return ctx.Err()
			}
			for _, c := range s.chunks {
				sealed := b[c.loc.Offset-s.offset : c.loc.Offset-s.offset+c.loc.Length]
				plain, err := r.openChunk(c.ref.ID, s.pack, sealed)
				if err != nil {
					return err
				}
				if int64(len(plain)) != c.ref.Size {
					return fmt.Errorf("chunk %s in pack %s: size %d, manifest says %d", c.ref.ID, s.pack, len(plain), c.ref.Size)
				}
				if _, err := w.Write(plain); err != nil {
					return fmt.Errorf("write restored data: %w", err)
				}
			}
			<-sem
		}
		return nil
	})
	return g.Wait()
}

// openChunk decrypts and decompresses a sealed chunk and checks its ID.
func (r *Reader) openChunk(id ID, pack string, sealed []byte) ([]byte, error) {
	return openChunk(r.Key, r.Opener, id, pack, sealed)
}

func openChunk(key Key, op Opener, id ID, pack string, sealed []byte) ([]byte, error) {
	rc, err := op.Open(bytes.NewReader(sealed))
	if err != nil {
		return nil, fmt.Errorf("chunk %s in pack %s: open: %w", id, pack, err)
	}
	defer rc.Close()
	plain, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("chunk %s in pack %s: open: %w", id, pack, err)
	}
	if key.ID(plain) != id {
		return nil, fmt.Errorf("chunk %s in pack %s: content does not match its id", id, pack)
	}
	return plain, nil
}
