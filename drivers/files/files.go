// Package files backs up files and directories of the host as one POSIX
// (PAX) tar stream, and unpacks such a stream without letting any entry land
// outside the target directory.
//
// The archive is readable by any tar: entry names are the absolute paths
// without their leading "/" (var/www/index.html), as GNU tar writes them, so
// `tar -xf files.tar -C /restore` recreates /restore/var/www/index.html.
//
// # Exclude patterns
//
// The exclude patterns of a files source follow this rule:
//
//   - Patterns use doublestar syntax: * and ? match within one path
//     component, ** matches any number of components (zero included), [abc]
//     and {a,b} work as in a shell, and \ escapes a special character.
//     Matching is case-sensitive and a leading dot is not special (*
//     matches .hidden).
//   - A pattern that starts with "/" is matched against the entry's absolute
//     path: "/var/www/tmp" excludes that directory and everything below it,
//     "/var/www/*.bak" the .bak files directly in /var/www.
//   - Any other pattern is matched against the path relative to the
//     filesystem root (var/www/index.html) and may match at any depth, as if
//     it started with "**/": "*.log" and "**/*.log" both exclude every .log
//     file, "www/tmp" excludes /var/www/tmp and /srv/www/tmp.
//   - A pattern that ends in "/**" excludes the contents of the directories
//     it names but keeps the directories themselves (stored empty, so that a
//     restore recreates them with their owner and mode): "**/cache/**"
//     empties every directory named cache.
//   - A pattern that ends in "/" matches directories only: "build/" excludes
//     directories named build, not files.
//   - An excluded directory is not descended into, so everything below it is
//     left out too. A configured path that a pattern excludes, itself or
//     through a directory above it, is left out with a warning.
package files

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// ObjectName is the data object a files source writes.
const ObjectName = "files.tar"

const (
	copyBufSize      = 1 << 20
	outBufSize       = 256 << 10
	defaultWorkers   = 8
	defaultReadAhead = 32 << 20
	smallFileMax     = 1 << 20
	queueLen         = 256
	maxWarnings      = 100
)

// Options tunes how a files source reads. The zero value is ready to use.
type Options struct {
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
	// Workers is the number of goroutines that read small files ahead of
	// the tar writer; 0 means 8, a negative number turns read-ahead off.
	Workers int
	// ReadAhead bounds the bytes of file contents held in memory ahead of
	// the tar writer; 0 means 32 MiB.
	ReadAhead int64
}

// Source backs up the paths of a FilesSource into one tar object.
type Source struct {
	spec v1.FilesSource
	opts Options
}

// New returns a Source for spec.
func New(spec v1.FilesSource, opts Options) *Source {
	return &Source{spec: spec, opts: opts}
}

// Backup writes the archive to the object "files.tar" (format "tar") of out.
// A configured path that is missing, or an invalid exclude pattern, fails it
// before the object is created.
func (s *Source) Backup(ctx context.Context, out drivers.ObjectWriter) (drivers.SourceStats, error) {
	p, err := newPlan(s.spec)
	if err != nil {
		return drivers.SourceStats{}, err
	}
	w, err := out.Create(ctx, ObjectName, "tar")
	if err != nil {
		return drivers.SourceStats{}, fmt.Errorf("create %s: %w", ObjectName, err)
	}
	stats, err := writeTar(ctx, w, p, s.opts)
	if err != nil {
		abort(w, err)
		return stats, err
	}
	if err := w.Close(); err != nil {
		return stats, fmt.Errorf("close %s: %w", ObjectName, err)
	}
	return stats, nil
}

// abort closes w so that whatever reads the other end sees err, when w
// can carry one (an io.PipeWriter can).
func abort(w io.WriteCloser, err error) {
	if cw, ok := w.(interface{ CloseWithError(error) error }); ok {
		_ = cw.CloseWithError(err)
		return
	}
	_ = w.Close()
}

// WriteTar writes the paths of spec to w as a PAX tar stream and returns
// what it did. It does not close w.
//
// The archive holds, in a deterministic order:
//   - the parent directories of each configured path, as directory entries
//     with the owner, mode and mtime of the directories they resolve to;
//   - each configured path and everything below it, walked in lexical
//     order, with paths that overlap stored once. Regular files, directories
//     (empty ones too), symlinks (not followed, target kept), FIFOs and
//     device nodes (as headers) are stored; sockets are skipped. A file with
//     several names is stored once, its later names as hard links to the
//     first. Mode (setuid, setgid and sticky bits included), owner ids and
//     names, the mtime to the nanosecond, and extended attributes are
//     kept: each as a SCHILY.xattr.NAME record, POSIX ACLs also as
//     SCHILY.acl.access and SCHILY.acl.default text, as GNU tar writes
//     them (the directories above the configured paths are stored without
//     theirs). A configured path
//     that is itself a symlink is stored as a symlink, with a warning.
//
// spec.Exclude is applied by the rule in the package documentation. With
// spec.OneFileSystem, a directory on another device than the configured path
// it was reached from (a mount point) is stored as an empty directory. A
// configured path below another one is reached even across such a mount
// point, or through a symlink: the directories on the way to it are stored
// as directories, and nothing else of them.
//
// A configured path that is missing or not absolute, or an invalid pattern,
// fails WriteTar before anything is written; one that cannot be opened fails
// it when the walk reaches it. Below the
// configured paths, an entry that cannot be read or that vanishes is skipped
// with a warning in the returned stats; a file that shrinks while it is read
// is padded with zeros to its recorded size (with a warning), and one that
// grows is cut at that size. Warnings beyond the first 100 are counted, not
// listed. Files counts regular files (hard links included), BytesRead the
// file contents read. The first error writing to w, or the end of ctx, stops
// WriteTar.
func WriteTar(ctx context.Context, w io.Writer, spec v1.FilesSource, opts Options) (drivers.SourceStats, error) {
	p, err := newPlan(spec)
	if err != nil {
		return drivers.SourceStats{}, err
	}
	return writeTar(ctx, w, p, opts)
}

// A plan is a checked FilesSource.
type plan struct {
	// configured holds every configured path, cleaned, sorted and unique.
	configured []string
	// top holds the configured paths that are not below another one.
	top   []string
	excl  *excluder
	oneFS bool
}

func newPlan(spec v1.FilesSource) (*plan, error) {
	var errs []error
	if len(spec.Paths) == 0 {
		errs = append(errs, errors.New("no paths to back up"))
	}
	p := &plan{oneFS: spec.OneFileSystem}
	for _, raw := range spec.Paths {
		if !filepath.IsAbs(raw) {
			errs = append(errs, fmt.Errorf("path %q: not an absolute path", raw))
			continue
		}
		clean := filepath.Clean(raw)
		if _, err := os.Lstat(clean); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, fmt.Errorf("path %s: %w", clean, err))
			continue
		}
		p.configured = append(p.configured, clean)
	}
	excl, err := newExcluder(spec.Exclude)
	if err != nil {
		errs = append(errs, err)
	}
	p.excl = excl
	if len(errs) > 0 {
		return nil, drivers.Permanent(errors.Join(errs...))
	}
	slices.Sort(p.configured)
	p.configured = slices.Compact(p.configured)
	for _, c := range p.configured {
		if n := len(p.top); n > 0 && isBelow(c, p.top[n-1]) {
			continue
		}
		p.top = append(p.top, c)
	}
	return p, nil
}

// isBelow reports whether the clean absolute path p is strictly below dir.
func isBelow(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

// leadsTo reports whether some configured path is strictly below abs.
func (p *plan) leadsTo(abs string) bool {
	prefix := abs + "/"
	if abs == "/" {
		prefix = "/"
	}
	i, _ := slices.BinarySearch(p.configured, prefix)
	return i < len(p.configured) && strings.HasPrefix(p.configured[i], prefix) && p.configured[i] != abs
}

func (p *plan) isConfigured(abs string) bool {
	_, ok := slices.BinarySearch(p.configured, abs)
	return ok
}

// An entry is one tar entry on its way from the walker to the writer, or a
// warning when hdr.Name is empty.
type entry struct {
	hdr     tar.Header
	path    string // absolute, for warnings
	warning string

	// fd is the open regular file, or -1. The writer closes it, unless the
	// entry is read ahead: then the reader does.
	fd int
	// A file with several names: key identifies it, and maybeLink is set
	// when the walker saw it before, so its content is not read ahead.
	multi     bool
	maybeLink bool
	key       devIno

	// Set when read ahead: done is closed once data[:n] or err is ready;
	// weight is what the entry holds of the read-ahead budget.
	ahead  bool
	weight int64
	done   chan struct{}
	data   *[]byte
	n      int
	err    error
}

type devIno struct{ dev, ino uint64 }

func writeTar(ctx context.Context, w io.Writer, p *plan, opts Options) (drivers.SourceStats, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	workers := opts.Workers
	if workers == 0 {
		workers = defaultWorkers
	}
	budget := opts.ReadAhead
	if budget <= 0 {
		budget = defaultReadAhead
	}
	small := min(int64(smallFileMax), budget)

	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan *entry, queueLen)
	reads := make(chan *entry, queueLen)
	sem := semaphore.NewWeighted(budget)

	wk := &walker{
		plan:    p,
		jobs:    jobs,
		reads:   reads,
		ahead:   workers > 0,
		small:   small,
		budget:  budget,
		sem:     sem,
		seen:    make(map[devIno]struct{}),
		parents: make(map[string]bool),
		names:   newIDNames(),
		noatime: true,
	}
	g.Go(func() error {
		defer close(jobs)
		defer close(reads)
		return wk.run(gctx)
	})
	for range max(workers, 0) {
		g.Go(func() error {
			readAhead(gctx, reads)
			return nil
		})
	}

	a := newArchiver(w, sem, log)
	g.Go(func() error {
		for e := range jobs {
			if err := a.write(gctx, e); err != nil {
				a.discard(e)
				return err
			}
		}
		if err := a.tw.Close(); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
		if err := a.bw.Flush(); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
		return nil
	})
	err := g.Wait()
	// The walker has closed jobs; release what nobody wrote.
	for e := range jobs {
		a.discard(e)
	}
	if err != nil && ctx.Err() != nil {
		// Report the caller's cancellation rather than what it caused.
		err = ctx.Err()
	}
	if a.dropped > 0 {
		a.stats.Warnings = append(a.stats.Warnings, fmt.Sprintf("... and %d more warnings", a.dropped))
	}
	return a.stats, err
}

// readAhead reads the regular files sent on reads into pooled buffers, and
// closes them.
func readAhead(ctx context.Context, reads <-chan *entry) {
	for e := range reads {
		if ctx.Err() == nil {
			e.data = getBuf(int(e.hdr.Size))
			e.n, e.err = readFull(e.fd, (*e.data)[:e.hdr.Size])
		} else {
			e.err = ctx.Err()
		}
		closeFD(e.fd)
		e.fd = -1
		close(e.done)
	}
}

// An archiver writes entries, in the order it gets them, to a tar writer.
type archiver struct {
	tw *tar.Writer
	// bw buffers tw's output; cut, when the object writer offers
	// drivers.Boundary, starts a new chunk.
	bw      *bufio.Writer
	cut     func() error
	buf     []byte
	links   map[devIno]string
	sem     *semaphore.Weighted
	log     *slog.Logger
	stats   drivers.SourceStats
	dropped int
}

func newArchiver(w io.Writer, sem *semaphore.Weighted, log *slog.Logger) *archiver {
	bw := bufio.NewWriterSize(w, outBufSize)
	return &archiver{
		tw:    tar.NewWriter(bw),
		bw:    bw,
		cut:   boundaryOf(w),
		buf:   make([]byte, copyBufSize),
		links: make(map[devIno]string),
		sem:   sem,
		log:   log,
	}
}

// boundaryMin is the smallest file whose header and data start chunks of
// their own (the dedup chunker's minimum chunk size).
const boundaryMin = 256 << 10

// boundaryOf returns w's Boundary, nil when it has none.
func boundaryOf(w io.Writer) func() error {
	if b, ok := w.(drivers.Boundary); ok {
		return b.Boundary
	}
	return nil
}

// writeHeader writes a tar header. With deduplicated storage the header
// and the file data after it each start a chunk, so that a file's data
// gives the same chunks whatever its header (mtime, neighbours) says.
//
// Only files of at least boundaryMin bytes get their own chunks: smaller
// ones flow through the chunker with their neighbours, since cutting around
// each would make tiny chunks whose overhead (tar member, encryption
// header, index entry) outweighs their data.
func (a *archiver) writeHeader(h *tar.Header) error {
	if a.cut != nil && h.Size >= boundaryMin {
		// The previous entry's padding goes before the cut.
		if err := a.tw.Flush(); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
		if err := a.boundary(); err != nil {
			return err
		}
	}
	if err := a.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	if a.cut != nil && h.Size >= boundaryMin {
		return a.boundary()
	}
	return nil
}

// boundary writes out what is buffered and cuts.
func (a *archiver) boundary() error {
	if err := a.bw.Flush(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return a.cut()
}

func (a *archiver) warn(msg string) {
	a.log.Debug("files: " + msg)
	if len(a.stats.Warnings) >= maxWarnings {
		a.dropped++
		return
	}
	a.stats.Warnings = append(a.stats.Warnings, msg)
}

func (a *archiver) write(ctx context.Context, e *entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.hdr.Name == "" {
		a.warn(e.warning)
		return nil
	}
	if e.hdr.Typeflag != tar.TypeReg {
		if err := a.writeHeader(&e.hdr); err != nil {
			return err
		}
		return nil
	}
	if e.maybeLink {
		if first, ok := a.links[e.key]; ok {
			closeFD(e.fd)
			e.fd = -1
			h := e.hdr
			h.Typeflag = tar.TypeLink
			h.Linkname = first
			h.Size = 0
			h.PAXRecords = nil // the first name carries the attributes
			if err := a.writeHeader(&h); err != nil {
				return err
			}
			a.stats.Files++
			return nil
		}
	}
	var err error
	if e.ahead {
		err = a.writeAhead(ctx, e)
	} else {
		err = a.copyFile(ctx, e)
	}
	if err != nil || e.hdr.Name == "" {
		return err
	}
	if e.multi {
		if _, ok := a.links[e.key]; !ok {
			a.links[e.key] = e.hdr.Name
		}
	}
	a.stats.Files++
	return nil
}

// writeAhead writes a file read by readAhead. A file that could not be read
// at all is skipped; its name is cleared so write knows.
func (a *archiver) writeAhead(ctx context.Context, e *entry) error {
	select {
	case <-e.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer a.release(e)
	if e.err != nil && e.n == 0 {
		a.warn(skipMessage(e.path, e.err))
		e.hdr.Name = ""
		return nil
	}
	if err := a.writeHeader(&e.hdr); err != nil {
		return err
	}
	if _, err := a.tw.Write((*e.data)[:e.n]); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	a.stats.BytesRead += int64(e.n)
	return a.finishShort(e, int64(e.n), e.err)
}

// copyFile streams a file that was not read ahead through the copy buffer.
func (a *archiver) copyFile(ctx context.Context, e *entry) error {
	defer func() {
		closeFD(e.fd)
		e.fd = -1
	}()
	if err := a.writeHeader(&e.hdr); err != nil {
		return err
	}
	size := e.hdr.Size
	if e.fd < 0 || size == 0 {
		return nil
	}
	if size > copyBufSize {
		_ = unix.Fadvise(e.fd, 0, 0, unix.FADV_SEQUENTIAL)
	}
	var done int64
	var rerr error
	for done < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := a.buf[:min(int64(len(a.buf)), size-done)]
		n, err := readFull(e.fd, chunk)
		if n > 0 {
			if _, werr := a.tw.Write(chunk[:n]); werr != nil {
				return fmt.Errorf("write tar: %w", werr)
			}
			done += int64(n)
		}
		if err != nil || n < len(chunk) {
			rerr = err
			break
		}
	}
	a.stats.BytesRead += done
	return a.finishShort(e, done, rerr)
}

// finishShort pads a file that gave fewer bytes than its header says with
// zeros, so the archive stays well-formed, and says why.
func (a *archiver) finishShort(e *entry, got int64, rerr error) error {
	size := e.hdr.Size
	if got >= size {
		return nil
	}
	if rerr != nil {
		a.warn(fmt.Sprintf("%s: read error after %d of %d bytes, rest filled with zeros: %v", e.path, got, size, errnoOf(rerr)))
	} else {
		a.warn(fmt.Sprintf("%s: shrank from %d to %d bytes while read, padded with zeros", e.path, size, got))
	}
	clear(a.buf)
	for got < size {
		n := min(int64(len(a.buf)), size-got)
		if _, err := a.tw.Write(a.buf[:n]); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
		got += n
	}
	return nil
}

func (a *archiver) release(e *entry) {
	if e.data != nil {
		putBuf(e.data)
		e.data = nil
	}
	a.sem.Release(e.weight)
}

// discard frees what an entry holds when it will not be written.
func (a *archiver) discard(e *entry) {
	if e.ahead {
		<-e.done // the reader owns the file until then
		if e.data != nil {
			putBuf(e.data)
			e.data = nil
		}
		return
	}
	closeFD(e.fd)
	e.fd = -1
}

// Buffers for read-ahead, pooled by power-of-two size from 4 KiB to 1 MiB.
const (
	minBufShift = 12
	maxBufShift = 20
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	c := 0
	for size := 1 << minBufShift; size < n; size <<= 1 {
		c++
	}
	return c
}

func getBuf(n int) *[]byte {
	c := bufClass(n)
	if c >= len(bufPools) {
		b := make([]byte, n)
		return &b
	}
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<(minBufShift+c))
	return &b
}

func putBuf(b *[]byte) {
	c := bufClass(cap(*b))
	if c < len(bufPools) && cap(*b) == 1<<(minBufShift+c) {
		*b = (*b)[:cap(*b)]
		bufPools[c].Put(b)
	}
}

// readFull reads len(buf) bytes from fd unless it meets the end of the file
// or an error first.
func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

func closeFD(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// errnoOf strips the path from an *os.PathError, which warnings already name.
func errnoOf(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func skipMessage(path string, err error) string {
	err = errnoOf(err)
	if errors.Is(err, unix.ENOENT) {
		return fmt.Sprintf("skipped %s: vanished during the backup", path)
	}
	return fmt.Sprintf("skipped %s: %v", path, err)
}

var _ drivers.Source = (*Source)(nil)
