package files

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// IsSparse reports whether hdr is a sparse entry (the old GNU format, or
// GNU.sparse.* PAX records): one whose holes archive/tar's Read would give
// back as zeros, however large the size it declares. Aegis never writes
// such entries; other tars do.
func IsSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// errNoSparseReader is returned for a sparse entry when archive/tar no
// longer has the reader this package relies on to skip holes.
var errNoSparseReader = errors.New("sparse entry: this build cannot read it without expanding its holes")

// entryWriterTo returns the reader of tr's current entry. Given an
// io.WriteSeeker, its WriteTo seeks over the holes of a sparse entry
// instead of producing them as zeros, so the work is bounded by the bytes
// stored. archive/tar keeps that method unexported until it exports sparse
// support (golang.org/issue/22735): reach it through the Reader's field
// curr. Nil if that field is gone or changed type.
func entryWriterTo(tr *tar.Reader) io.WriterTo {
	f, ok := reflect.TypeFor[tar.Reader]().FieldByName("curr")
	if !ok || f.Type.Kind() != reflect.Interface {
		return nil
	}
	v := reflect.NewAt(f.Type, unsafe.Add(unsafe.Pointer(tr), f.Offset)).Elem()
	if v.IsNil() {
		return nil
	}
	wt, _ := v.Interface().(io.WriterTo)
	return wt
}

// writeHoles writes the sparse entry of tr to f, seeking over its holes,
// and returns the entry's size.
func writeHoles(ctx context.Context, tr *tar.Reader, f *os.File) (int64, error) {
	wt := entryWriterTo(tr)
	if wt == nil {
		return 0, errNoSparseReader
	}
	return wt.WriteTo(&ctxFile{ctx: ctx, f: f})
}

// ctxFile is a file that fails its writes and seeks once ctx is done.
type ctxFile struct {
	ctx context.Context
	f   *os.File
}

func (w *ctxFile) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.f.Write(p)
}

func (w *ctxFile) Seek(off int64, whence int) (int64, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	pos, err := w.f.Seek(off, whence)
	if errors.Is(err, unix.EINVAL) && off > 0 {
		// Past the largest file the file system can hold.
		err = unix.EFBIG
	}
	return pos, err
}

// discardSeeker discards what is written and counts it; seeking only moves
// its position.
type discardSeeker struct {
	ctx       context.Context
	pos, data int64
}

func (d *discardSeeker) Write(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	d.pos += int64(len(p))
	d.data += int64(len(p))
	return len(p), nil
}

func (d *discardSeeker) Seek(off int64, whence int) (int64, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekStart:
		d.pos = off
	case io.SeekCurrent:
		d.pos += off
	default:
		return 0, errors.New("discardSeeker: seek from the end")
	}
	return d.pos, nil
}

// ctxReader fails its reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// ScanTar reads the tar stream r to its end, entries and trailing padding,
// writing nothing, and returns the bytes of file contents it holds. The
// holes of a sparse entry are skipped, never expanded, and not counted, so
// the work is bounded by the bytes of r whatever sizes the entries declare.
// It stops with ctx's error once ctx is done, within one read of r or 32
// KiB of an entry.
func ScanTar(ctx context.Context, r io.Reader) (int64, error) {
	cr := ctxReader{ctx: ctx, r: r}
	tr := tar.NewReader(cr)
	buf := make([]byte, 32<<10)
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, ctxOr(ctx, fmt.Errorf("read tar: %w", err))
		}
		if IsSparse(hdr) {
			wt := entryWriterTo(tr)
			if wt == nil {
				return total, fmt.Errorf("read tar: %q: %w", hdr.Name, errNoSparseReader)
			}
			d := &discardSeeker{ctx: ctx}
			_, err = wt.WriteTo(d)
			total += d.data
		} else {
			var n int64
			n, err = io.CopyBuffer(ctxWriter{ctx: ctx, w: io.Discard}, tr, buf)
			total += n
		}
		if err != nil {
			return total, ctxOr(ctx, fmt.Errorf("read tar: %q: %w", hdr.Name, err))
		}
	}
	if _, err := io.CopyBuffer(io.Discard, cr, buf); err != nil {
		return total, ctxOr(ctx, fmt.Errorf("read tar: %w", err))
	}
	return total, nil
}

// ctxOr returns ctx's error once ctx is done, else err: a cancelled scan
// says so rather than what the cancellation caused.
func ctxOr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// ctxWriter fails its writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// RawSizeError is the error of a reader from LimitRaw whose stream goes on
// past its limit.
type RawSizeError struct {
	Limit  int64 // the manifest's raw size
	Excess int64 // bytes seen past Limit before stopping (at least 1)
}

func (e *RawSizeError) Error() string {
	return fmt.Sprintf("decodes to more than the manifest's raw size of %d bytes (%d bytes more at least): the object is damaged", e.Limit, e.Excess)
}

// LimitRaw returns a reader of the decoded stream r of an object whose
// manifest says it decodes to size bytes. It gives the first size bytes of
// r and fails with a *RawSizeError on the read that finds more, without
// giving any of them; once ctx is done, every read fails with ctx's error.
// A stream shorter than size is not its concern.
func LimitRaw(ctx context.Context, r io.Reader, size int64) io.Reader {
	return &rawLimiter{ctx: ctx, r: r, left: size, limit: size}
}

type rawLimiter struct {
	ctx         context.Context
	r           io.Reader
	left, limit int64
	err         error
}

func (l *rawLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if l.left == 0 {
		// One more read tells whether the stream ends here.
		n, err := l.r.Read(p)
		if n > 0 {
			l.err = &RawSizeError{Limit: l.limit, Excess: int64(n)}
			return 0, l.err
		}
		return 0, err
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		l.err = &RawSizeError{Limit: l.limit, Excess: int64(n) - l.left}
		n = int(l.left)
		l.left = 0
		return n, l.err
	}
	l.left -= int64(n)
	return n, err
}
