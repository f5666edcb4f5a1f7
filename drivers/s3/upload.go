package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/aegis-backup/aegis/drivers"
)

// Put stores everything read from r under key.
//
// An object that fits in one part goes up with one PUT. A larger one is a
// multipart upload streamed from r: parts are read into memory one after the
// other and up to parallelUploads of them are uploaded at once, so the
// memory used is at most (parallelUploads + 1) × the part size. A part is
// held in memory until the server took it, so it can be retried on its own;
// the stream is never read twice. Each part and object carries its SHA-256,
// which the server checks. The object appears only when the upload
// completes; on any failure, or when ctx is done, the upload is aborted.
// Finally the size the server reports is compared with the bytes read.
//
// S3 allows 10,000 parts. An object's size is not known in advance, so the
// part size grows with the object (see partSizeFor), and the memory bound
// with it: most objects stay within the configured size, and an object may
// reach about 1 TiB at the default 8 MiB (132,000 × the part size) before
// Put stops with a clear error.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	name, err := s.objectName(key)
	if err != nil {
		return 0, err
	}
	n, err := s.upload(ctx, name, r)
	if err != nil {
		return n, fmt.Errorf("upload %s: %w", s.where(name), err)
	}
	return n, nil
}

// partSizeFor returns the size of part n (from 1): the configured size up
// to part 2,000, twice that up to part 5,000, then doubling every 1,000
// parts, at most 5 GiB. At the default 8 MiB an object of up to 15.6 GiB
// holds (parallel + 1) × 8 MiB of memory, one of up to 62.5 GiB twice as
// much, and 1 TiB fits in 10,000 parts.
func partSizeFor(base int64, n int) int64 {
	switch {
	case n <= 2000:
		return base
	case n <= 5000:
		return min(2*base, maxPartSize)
	}
	shift := (n-5001)/1000 + 2
	return min(base<<shift, maxPartSize)
}

// maxObjectSize is what fits in maxParts parts starting at base.
func maxObjectSize(base int64) int64 {
	var total int64
	for n := 1; n <= maxParts; n += 1000 {
		total += 1000 * partSizeFor(base, n)
	}
	return total
}

func (s *Store) upload(ctx context.Context, name string, r io.Reader) (int64, error) {
	first := s.bufs.get(s.partSize)
	n, err := readFull(ctx, r, first)
	switch {
	case err == io.EOF:
		defer s.bufs.put(first)
		return int64(n), s.putSingle(ctx, name, first[:n])
	case err != nil:
		s.bufs.put(first)
		return int64(n), err
	}
	// The first part is full: read the second before starting a multipart
	// upload, in case the object ends right here.
	second := s.bufs.get(partSizeFor(s.partSize, 2))
	m, err := readFull(ctx, r, second)
	total := int64(n + m)
	switch {
	case err != nil && err != io.EOF:
		s.bufs.put(first)
		s.bufs.put(second)
		return total, err
	case m == 0:
		s.bufs.put(second)
		defer s.bufs.put(first)
		return total, s.putSingle(ctx, name, first)
	}
	return s.multipart(ctx, name, r, first, second[:m], err == io.EOF)
}

// putSingle stores data with one PUT, retried as needed.
func (s *Store) putSingle(ctx context.Context, name string, data []byte) error {
	// The reader may have ended because ctx is done: commit nothing then.
	if err := ctx.Err(); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	err := s.opts.Retry.Do(ctx, "put "+s.where(name), func(ctx context.Context) error {
		return s.classify(s.guardKick(ctx, func(ctx context.Context, kick func()) error {
			_, err := s.core.PutObject(ctx, s.bucket, name, &kickReader{bytes.NewReader(data), kick}, int64(len(data)),
				s.contentMD5(data), hex.EncodeToString(sum[:]), s.putOptions())
			return err
		}), "")
	})
	if err != nil {
		return err
	}
	return s.verify(ctx, name, int64(len(data)))
}

// putOptions are the options of a PUT and of the start of a multipart
// upload: both carry the object's lock, if any.
func (s *Store) putOptions() minio.PutObjectOptions {
	return s.lockOptions(minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		StorageClass: s.class,
		// We pass each payload's SHA-256, which signs it and lets the
		// server check it, instead of minio's chunked signature.
		DisableContentSha256: true,
	})
}

// multipart uploads first, second (the last part if last) and the rest of r.
func (s *Store) multipart(ctx context.Context, name string, r io.Reader, first, second []byte, last bool) (int64, error) {
	total := int64(len(first) + len(second))
	id, err := s.startMultipart(ctx, name)
	if err != nil {
		s.bufs.put(first)
		s.bufs.put(second)
		return total, err
	}
	u := &partUploader{s: s, name: name, id: id, slots: make(chan struct{}, s.parallel), failed: make(chan struct{})}
	read, err := s.sendParts(ctx, u, r, first, second, last)
	total += read
	parts, upErr := u.wait()
	if err == nil {
		err = upErr
	}
	if err == nil {
		// The reader may have ended because ctx is done: commit nothing.
		err = ctx.Err()
	}
	if err != nil {
		s.abort(ctx, name, id)
		return total, err
	}
	if err := s.complete(ctx, name, id, parts, total); err != nil {
		s.abort(ctx, name, id)
		return total, err
	}
	return total, s.verify(ctx, name, total)
}

// startMultipart starts a multipart upload of name, retried as needed, and
// returns its upload id.
func (s *Store) startMultipart(ctx context.Context, name string) (string, error) {
	var id string
	err := s.opts.Retry.Do(ctx, "start multipart upload "+s.where(name), func(ctx context.Context) error {
		return s.classify(s.guard(ctx, func(ctx context.Context) error {
			var err error
			id, err = s.core.NewMultipartUpload(ctx, s.bucket, name, s.putOptions())
			return err
		}), "")
	})
	return id, err
}

// sendParts hands first, second and then the rest of r, one part at a
// time, to u. Reading stops at the end of r, at the first failure of a
// part (u reports that error) or of the reader, and before part maxParts+1,
// so no part is read that could not be stored. It returns the bytes read
// from r beyond first and second, and the error that stopped the reading.
func (s *Store) sendParts(ctx context.Context, u *partUploader, r io.Reader, first, second []byte, last bool) (int64, error) {
	var read int64
	ok, err := u.send(ctx, 1, first)
	if ok {
		ok, err = u.send(ctx, 2, second)
	}
	for num := 3; ok && !last; num++ {
		if num > maxParts {
			return read, drivers.Permanent(fmt.Errorf("object is larger than the %d MiB that %d parts starting at %d MiB hold; raise spec.s3.partSizeMiB",
				maxObjectSize(s.partSize)>>20, maxParts, s.partSize>>20))
		}
		buf := s.bufs.get(partSizeFor(s.partSize, num))
		n, rerr := readFull(ctx, r, buf)
		read += int64(n)
		if rerr != nil && rerr != io.EOF {
			s.bufs.put(buf)
			return read, rerr
		}
		if n == 0 { // the object ended at a part boundary
			s.bufs.put(buf)
			return read, nil
		}
		last = rerr == io.EOF
		ok, err = u.send(ctx, num, buf[:n])
	}
	return read, err
}

// partUploader uploads the parts of one multipart upload in the
// background, at most cap(slots) at once, so that reading the next part
// overlaps with sending the previous ones; it keeps the first failure so
// that reading stops as soon as the upload cannot succeed any more.
type partUploader struct {
	s        *Store
	name, id string
	slots    chan struct{}
	failed   chan struct{} // closed at the first failed part
	wg       sync.WaitGroup

	mu    sync.Mutex
	parts []minio.CompletePart
	err   error
}

// send uploads part num from buf in the background once a slot is free;
// false means the upload already failed (or ctx is done) and nothing more
// should be read. buf goes back to the pool in every case.
func (u *partUploader) send(ctx context.Context, num int, buf []byte) (bool, error) {
	select {
	case u.slots <- struct{}{}:
	case <-u.failed:
		u.s.bufs.put(buf)
		return false, nil
	case <-ctx.Done():
		u.s.bufs.put(buf)
		return false, ctx.Err()
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		etag, err := u.s.putPart(ctx, u.name, u.id, num, buf)
		u.s.bufs.put(buf)
		<-u.slots
		u.mu.Lock()
		defer u.mu.Unlock()
		if err != nil {
			if u.err == nil {
				u.err = fmt.Errorf("part %d: %w", num, err)
				close(u.failed)
			}
			return
		}
		u.parts = append(u.parts, minio.CompletePart{PartNumber: num, ETag: etag})
	}()
	return true, nil
}

// wait waits for every part sent and returns them in part order, as
// completing the upload requires, or the first part's error.
func (u *partUploader) wait() ([]minio.CompletePart, error) {
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return nil, u.err
	}
	sort.Slice(u.parts, func(i, j int) bool { return u.parts[i].PartNumber < u.parts[j].PartNumber })
	return u.parts, nil
}

// putPart uploads one part, retried as needed, and returns its ETag.
func (s *Store) putPart(ctx context.Context, name, id string, num int, data []byte) (string, error) {
	sum := hex.EncodeToString(sha256Sum(data))
	var etag string
	err := s.opts.Retry.Do(ctx, fmt.Sprintf("upload part %d of %s", num, s.where(name)), func(ctx context.Context) error {
		return s.classify(s.guardKick(ctx, func(ctx context.Context, kick func()) error {
			p, err := s.core.PutObjectPart(ctx, s.bucket, name, id, num, &kickReader{bytes.NewReader(data), kick}, int64(len(data)),
				minio.PutObjectPartOptions{Md5Base64: s.contentMD5(data), Sha256Hex: sum, DisableContentSha256: true})
			etag = p.ETag
			return err
		}), "")
	})
	return etag, err
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// complete finishes the upload. When the answer to a completion that
// succeeded got lost, the retry finds no upload: the object then tells.
func (s *Store) complete(ctx context.Context, name, id string, parts []minio.CompletePart, total int64) error {
	tries := 0
	return s.opts.Retry.Do(ctx, "complete multipart upload "+s.where(name), func(ctx context.Context) error {
		tries++
		err := s.guard(ctx, func(ctx context.Context) error {
			_, err := s.core.CompleteMultipartUpload(ctx, s.bucket, name, id, parts, s.putOptions())
			return err
		})
		if err != nil && tries > 1 && isCode(err, "NoSuchUpload") {
			if oi, serr := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{}); serr == nil && oi.Size == total {
				return nil
			}
		}
		return s.classify(err, "")
	})
}

// verify compares the size the server reports with the bytes sent. An
// object of the wrong size is removed: it must not pass for a good one.
func (s *Store) verify(ctx context.Context, name string, want int64) error {
	var oi minio.ObjectInfo
	err := s.opts.Retry.Do(ctx, "stat "+s.where(name), func(ctx context.Context) error {
		return s.classify(s.guard(ctx, func(ctx context.Context) error {
			var err error
			oi, err = s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
			return err
		}), "")
	})
	if err != nil {
		return fmt.Errorf("check the stored size: %w", err)
	}
	if oi.Size != want {
		_ = s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, name, minio.RemoveObjectOptions{})
		return fmt.Errorf("the server stored %d bytes, %d were sent; the object was removed", oi.Size, want)
	}
	return nil
}

// abort aborts the multipart upload id, now or, if the server is away,
// in the background until Close (see Options.CleanupGrace).
func (s *Store) abort(ctx context.Context, name, id string) {
	s.cleanups.Run(ctx, fmt.Sprintf("abort multipart upload %s of %s", id, s.where(name)), func(ctx context.Context) error {
		err := s.guard(ctx, func(ctx context.Context) error {
			return s.core.AbortMultipartUpload(ctx, s.bucket, name, id)
		})
		if err != nil && isCode(err, "NoSuchUpload") {
			return nil
		}
		return s.classify(err, "")
	})
}

func isCode(err error, code string) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.Code == code
}

// readFull reads into buf until it is full (nil error), r ends (io.EOF,
// with what was read) or fails.
func readFull(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// bufPool keeps the part buffers of a Store for the next parts and
// objects, up to its capacity. Unlike a sync.Pool it is not emptied by
// every garbage collection: with one, each collection dropped the buffers,
// the next parts allocated new ones, and the heap grew to about twice the
// upload window between collections (peak RSS 177 MiB instead of 135 with
// 5 × 8 MiB in flight).
type bufPool struct {
	free chan []byte
}

func newBufPool(n int) *bufPool {
	return &bufPool{free: make(chan []byte, n)}
}

// get returns a buffer of size bytes. Kept buffers of another size (the
// smaller parts of an object that outgrew them) are let go.
func (p *bufPool) get(size int64) []byte {
	for {
		select {
		case b := <-p.free:
			if int64(len(b)) == size {
				return b
			}
		default:
			return make([]byte, size)
		}
	}
}

func (p *bufPool) put(b []byte) {
	select {
	case p.free <- b[:cap(b)]:
	default:
	}
}

// drain lets the garbage collector have the buffers kept.
func (p *bufPool) drain() {
	for {
		select {
		case <-p.free:
		default:
			return
		}
	}
}
