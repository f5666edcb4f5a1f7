// Package drivers defines the small contracts between the agent and the
// things it talks to: a Source streams what it backs up into data objects, a
// Destination stores, lists, opens and deletes objects under keys.
//
// Each driver lives in its own package below this one, named after what it
// talks to (drivers/files, drivers/local, ...). registry.go lists them all.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
	"time"
)

// TempPrefix starts the name of an object being uploaded, on destinations
// that write to a temporary name and rename. No key may name such a file.
const TempPrefix = ".aegis-tmp-"

// CheckKey enforces the key rules of the Destination contract: a clean,
// relative, slash-separated path with no element naming a temporary file.
// Its error is permanent.
func CheckKey(key string) error {
	if key == "" || path.Clean("/"+key) != "/"+key || strings.Contains("/"+key, "/"+TempPrefix) {
		return Permanent(fmt.Errorf("invalid key %q", key))
	}
	return nil
}

// Agent names the program in the User-Agent of the HTTP requests drivers
// make ("aegis-agent" and its version). The command sets it once at start,
// before any driver is built (observe.Build knows the version).
var Agent = struct{ Name, Version string }{"aegis-agent", "dev"}

// ErrNotFound is returned (wrapped) by a Destination for a missing key.
var ErrNotFound = errors.New("not found")

// ErrDeleteDenied is returned (wrapped) by Delete when the destination
// refuses to delete an object the caller may see: the credentials may
// write but not delete (S3 without s3:DeleteObject, an SFTP or FTP account
// whose directory forbids deletion), or the object is under a retention
// lock. Retrying does not help; callers that clean up report it and go on.
var ErrDeleteDenied = errors.New("delete denied")

// ErrNotSupported is returned for a driver this build does not have yet.
var ErrNotSupported = errors.New("not supported yet")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Destination stores objects under slash-separated keys.
//
// Implementations MUST make Put atomic: while Put runs, and after it fails,
// no object is visible under key (write to a temporary name and rename, or
// rely on the server's complete-upload semantics). A reader therefore never
// sees half an object, and the snapshot commit rule (data first, manifest
// last) holds.
//
// Keys are clean, relative, slash-separated paths: not empty, no empty, "."
// or ".." element, no leading or trailing slash; Put and Delete refuse any
// other key before touching anything. Keys name objects only: a key that is
// merely a prefix of others, or lies beneath an object, is missing. A Put
// whose reader fails, or whose ctx ends before it commits, returns an error
// wrapping the reader's error or ctx.Err() and leaves the key as it was.
//
// GetRange MUST check the key like Get, and MUST refuse an offset or a
// length below zero with an error before touching anything. For a missing
// key it MUST return an error wrapping ErrNotFound. Otherwise its reader
// MUST yield exactly the length bytes of the object that start at offset
// and then io.EOF; when the object ends before offset+length, it MUST
// yield the bytes that exist and then io.ErrUnexpectedEOF (wrapped or not),
// never io.EOF, so that a caller detects a truncated object. A zero length
// MUST yield io.EOF at once. Closing the reader before its end MUST leave
// the destination usable (connections in step, transfers aborted).
// drivers/drivertest checks all of this; every driver runs it.
type Destination interface {
	// Put stores everything read from r under key, replacing any object of
	// that key, and returns the number of bytes stored.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens the object under key; a missing key gives ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens length bytes of the object under key starting at
	// offset; a missing key gives ErrNotFound; offset < 0 or length < 0
	// is an error; a range that runs past the end of the object yields the
	// bytes that exist and then io.ErrUnexpectedEOF from Read.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes the object under key; a missing key gives ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix, sorted by key.
	// It returns an error rather than a partial list.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the object under key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Check reports whether the destination is reachable and writable.
	Check(ctx context.Context) error
	// Close releases connections.
	Close() error
}

// TempCleaner is implemented by destinations that keep temporary files of
// uploads in progress out of List (the local driver). Retention calls it to
// remove those a crash left behind.
type TempCleaner interface {
	// CleanTemp removes temporary files last modified before cutoff and
	// returns how many it removed and their size.
	CleanTemp(ctx context.Context, cutoff time.Time) (int, int64, error)
}

// Retainer is implemented by destinations that can lock an object against
// deletion and overwriting until a date (S3 Object Lock). Retention asks
// it before deleting, and keeps what is still locked.
type Retainer interface {
	// RetainedUntil returns the date before which the object under key
	// cannot be deleted; the zero time when it is not locked. A missing
	// key gives ErrNotFound.
	RetainedUntil(ctx context.Context, key string) (time.Time, error)
	// Retain locks the object under key until at least until; it never
	// shortens a lock (a later lock already set is left as it is).
	Retain(ctx context.Context, key string, until time.Time) error
}

// Unwrapper is implemented by decorators of a Destination (retries, rate
// limits): Unwrap returns the destination they decorate.
type Unwrapper interface {
	Unwrap() Destination
}

// As finds T in d or in the destinations d decorates (through Unwrapper),
// outermost first: optional interfaces such as Retainer and TempCleaner
// stay reachable behind decorators.
func As[T any](d Destination) (T, bool) {
	for d != nil {
		if t, ok := d.(T); ok {
			return t, true
		}
		u, ok := d.(Unwrapper)
		if !ok {
			break
		}
		d = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Boundary is offered by the object writers of deduplicated storage: the
// next byte written starts a new chunk. A source that knows where its
// stream's units begin (the files source: each tar entry's header and
// data) calls it there, so that an unchanged unit is stored once. Calling
// it never changes the stream.
type Boundary interface {
	Boundary() error
}

// ObjectWriter receives the data objects a source produces.
type ObjectWriter interface {
	// Create starts the data object name (such as "files.tar" or
	// "app.pgdump"); the source writes its raw stream to the returned writer
	// and closes it. Compression, encryption, hashing and upload happen
	// behind it.
	Create(ctx context.Context, name, format string) (io.WriteCloser, error)
}

// SourceStats is what a source reports of its work.
type SourceStats struct {
	Files     int64
	BytesRead int64
	// Warnings are problems that did not stop the backup, such as a file
	// that could not be read or vanished during the run.
	Warnings []string
	// Meta is recorded in the snapshot manifest (server version, databases
	// dumped, ...).
	Meta map[string]string
}

// Source backs up one thing.
type Source interface {
	// Backup writes the source's data objects to out. It returns an error
	// when the backup of this source cannot be trusted; nothing of it is then
	// published.
	Backup(ctx context.Context, out ObjectWriter) (SourceStats, error)
}

// CheckRange enforces the range rules of GetRange: offset and length not
// below zero, and offset+length not past the largest int64. Its error is
// permanent.
func CheckRange(offset, length int64) error {
	if offset < 0 || length < 0 || offset > math.MaxInt64-length {
		return Permanent(fmt.Errorf("invalid range: offset %d, length %d", offset, length))
	}
	return nil
}

// ExactReader returns a reader of the next n bytes of rc that then reports
// io.EOF, or io.ErrUnexpectedEOF when rc ends before n bytes: what GetRange
// returns from a reader that starts at the range's offset. Closing it
// closes rc.
func ExactReader(rc io.ReadCloser, n int64) io.ReadCloser {
	return &exactReader{rc: rc, left: n}
}

type exactReader struct {
	rc   io.ReadCloser
	left int64
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	switch {
	case r.left <= 0:
		// The range is complete, whatever the reader says next.
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }

// Permanent marks err as one that retrying will not fix (wrong credentials,
// an unknown host key, a missing bucket).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
