package files

import (
	"archive/tar"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"
)

// A walker lists the configured paths in archive order and sends one entry
// per item to the writer. It opens each file and directory relative to its
// parent's descriptor with O_NOFOLLOW and takes the metadata from the open
// descriptor, so a path swapped for a symlink during the walk is never
// followed, and what is stored is what was opened.
type walker struct {
	plan *plan

	jobs   chan<- *entry
	reads  chan<- *entry
	ahead  bool
	small  int64
	budget int64
	sem    *semaphore.Weighted

	// seen holds the files with several names met so far.
	seen map[devIno]struct{}
	// parents holds the parent directories of configured paths stored so far.
	parents map[string]bool
	names   *idNames
	// noatime is cleared the first time O_NOATIME is refused (it needs the
	// file's owner or CAP_FOWNER).
	noatime bool
}

// typeUnknown marks an entry whose type the walker has not read yet.
const typeUnknown = fs.ModeIrregular

func (w *walker) run(ctx context.Context) error {
	for _, p := range w.plan.top {
		if err := w.walkTop(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) walkTop(ctx context.Context, p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("path %s: %w", p, err)
	}
	if pat, ok := w.plan.excl.matchPath(p, isDir(&st)); ok {
		return w.warn(ctx, fmt.Sprintf("path %s is excluded by pattern %q", p, pat))
	}
	if p == "/" {
		fd, err := w.openat(unix.AT_FDCWD, "/", true)
		if err != nil {
			return fmt.Errorf("path /: %w", err)
		}
		if err := unix.Fstat(fd, &st); err != nil {
			closeFD(fd)
			return fmt.Errorf("path /: %w", err)
		}
		return w.walkDir(ctx, fd, "/", st.Dev, false)
	}
	for _, dir := range ancestors(p) {
		if w.parents[dir] {
			continue
		}
		// Follow symlinks: the entry must be a directory for p to be
		// restored below it.
		if err := unix.Stat(dir, &st); err != nil {
			return fmt.Errorf("path %s: %s: %w", p, dir, err)
		}
		if !isDir(&st) {
			return fmt.Errorf("path %s: %s is not a directory", p, dir)
		}
		w.parents[dir] = true
		if err := w.emit(ctx, &entry{hdr: w.header(dir, &st), fd: -1}); err != nil {
			return err
		}
	}
	dir := parentDir(p)
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("path %s: %s: %w", p, dir, err)
	}
	defer closeFD(dirfd)
	return w.visit(ctx, dirfd, dir, filepath.Base(p), typeUnknown, 0, true, false)
}

// ancestors returns the directories above the clean absolute path p, the
// root excluded, outermost first.
func ancestors(p string) []string {
	var dirs []string
	for d := parentDir(p); d != "/"; d = parentDir(d) {
		dirs = append(dirs, d)
	}
	slices.Reverse(dirs)
	return dirs
}

// visit stores the entry name of the directory dir (open as dirfd) and what
// is below it. typ is the type the directory listing gave. ref is the device
// of the configured path the walk came from. top is set for a configured
// path the walk starts from, whose failure fails the backup; pass is set
// when dir is only walked toward configured paths below it.
func (w *walker) visit(ctx context.Context, dirfd int, dir, name string, typ fs.FileMode, ref uint64, top, pass bool) error {
	abs := joinPath(dir, name)
	conf := top || w.plan.isConfigured(abs)
	leads := w.plan.leadsTo(abs)
	if !top {
		if pat, ok := w.plan.excl.match(abs, typ.IsDir()); ok {
			return w.warnExcluded(ctx, abs, pat)
		}
	}
	st, fd, err := w.open(dirfd, name, typ)
	if err != nil {
		if top {
			return fmt.Errorf("path %s: %w", abs, err)
		}
		return w.warn(ctx, skipMessage(abs, err))
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := w.emit(ctx, &entry{hdr: w.headerX(ctx, abs, &st, fd), fd: -1}); err != nil {
			closeFD(fd)
			return err
		}
		switch descent(w.plan.oneFS, conf, pass, leads, ref, st.Dev) {
		case walkAll:
			if conf {
				ref = st.Dev
			}
			return w.walkDir(ctx, fd, abs, ref, false)
		case walkToConfigured:
			return w.walkDir(ctx, fd, abs, ref, true)
		}
		closeFD(fd)
		return nil
	case unix.S_IFREG:
		return w.file(ctx, abs, &st, fd)
	case unix.S_IFLNK:
		if leads {
			return w.followLink(ctx, abs)
		}
		target, err := readlinkat(dirfd, name)
		if err != nil {
			return w.warn(ctx, skipMessage(abs, err))
		}
		h := w.headerX(ctx, abs, &st, -1)
		h.Linkname = target
		if err := w.emit(ctx, &entry{hdr: h, fd: -1}); err != nil {
			return err
		}
		if top {
			return w.warn(ctx, fmt.Sprintf("path %s is a symlink to %s: stored as a symlink, not followed", abs, target))
		}
		return nil
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		return w.emit(ctx, &entry{hdr: w.headerX(ctx, abs, &st, -1), fd: -1})
	}
	// Sockets are recreated by whatever listens on them.
	if top {
		return w.warn(ctx, fmt.Sprintf("path %s is a socket: skipped", abs))
	}
	return nil
}

// descentMode says how the walk goes into a directory.
type descentMode int

const (
	skipContents     descentMode = iota // store the directory, empty
	walkAll                             // store everything below it
	walkToConfigured                    // store only the way to configured paths below it
)

// descent decides how the walk goes into a directory on device dev, reached
// from a configured path on device ref. conf is set when the directory is a
// configured path itself, pass when its parent was only walked toward
// configured paths, leads when a configured path lies below it.
func descent(oneFS, conf, pass, leads bool, ref, dev uint64) descentMode {
	switch {
	case conf:
		return walkAll
	case pass:
		return walkToConfigured
	case oneFS && dev != ref:
		if leads {
			return walkToConfigured
		}
		return skipContents
	}
	return walkAll
}

// walkDir visits the entries of the directory abs, open as fd, in lexical
// order, and closes fd.
func (w *walker) walkDir(ctx context.Context, fd int, abs string, ref uint64, pass bool) error {
	f := os.NewFile(uintptr(fd), abs)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		if werr := w.warn(ctx, fmt.Sprintf("%s: read directory: %v", abs, errnoOf(err))); werr != nil {
			return werr
		}
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if pass {
			child := joinPath(abs, e.Name())
			if !w.plan.isConfigured(child) && !w.plan.leadsTo(child) {
				continue
			}
		}
		if err := w.visit(ctx, fd, abs, e.Name(), e.Type(), ref, false, pass); err != nil {
			return err
		}
	}
	return nil
}

// followLink stores a symlink that lies on the way to a configured path as
// the directory it points to, and walks that toward the configured paths.
func (w *walker) followLink(ctx context.Context, abs string) error {
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return w.warn(ctx, skipMessage(abs, err))
	}
	if !isDir(&st) {
		return w.warn(ctx, fmt.Sprintf("skipped %s: not a directory", abs))
	}
	fd, err := w.openat(unix.AT_FDCWD, abs+"/.", true)
	if err != nil {
		return w.warn(ctx, skipMessage(abs, err))
	}
	if err := w.emit(ctx, &entry{hdr: w.headerX(ctx, abs, &st, fd), fd: -1}); err != nil {
		closeFD(fd)
		return err
	}
	return w.walkDir(ctx, fd, abs, st.Dev, true)
}

// file sends a regular file, open as fd, to be written.
func (w *walker) file(ctx context.Context, abs string, st *unix.Stat_t, fd int) error {
	e := &entry{hdr: w.headerX(ctx, abs, st, fd), path: abs, fd: fd}
	if st.Nlink > 1 {
		e.multi = true
		e.key = devIno{uint64(st.Dev), st.Ino}
		if _, ok := w.seen[e.key]; ok {
			e.maybeLink = true
		} else {
			w.seen[e.key] = struct{}{}
		}
	}
	switch {
	case st.Size == 0:
		closeFD(fd)
		e.fd = -1
	case w.ahead && !e.maybeLink && st.Size <= w.small:
		// Weigh the buffer the file will take, not its size.
		e.weight = min(int64(1)<<(minBufShift+bufClass(int(st.Size))), w.budget)
		if err := w.sem.Acquire(ctx, e.weight); err != nil {
			closeFD(fd)
			return err
		}
		e.ahead = true
		e.done = make(chan struct{})
		select {
		case w.reads <- e:
		case <-ctx.Done():
			closeFD(fd)
			w.sem.Release(e.weight)
			return ctx.Err()
		}
	}
	return w.emit(ctx, e)
}

// emit sends e to the writer, in walk order.
func (w *walker) emit(ctx context.Context, e *entry) error {
	select {
	case w.jobs <- e:
		return nil
	case <-ctx.Done():
		if !e.ahead {
			closeFD(e.fd)
		}
		return ctx.Err()
	}
}

func (w *walker) warn(ctx context.Context, msg string) error {
	return w.emit(ctx, &entry{warning: msg, fd: -1})
}

// warnExcluded tells about configured paths at or below abs, which a
// pattern leaves out; other excluded entries go silently.
func (w *walker) warnExcluded(ctx context.Context, abs, pat string) error {
	for _, c := range w.plan.configured {
		if c == abs || isBelow(c, abs) {
			if err := w.warn(ctx, fmt.Sprintf("path %s is excluded by pattern %q", c, pat)); err != nil {
				return err
			}
		}
	}
	return nil
}

// open opens a regular file or a directory, or stats anything else, without
// following a symlink. fd is -1 for what is not opened.
func (w *walker) open(dirfd int, name string, typ fs.FileMode) (st unix.Stat_t, fd int, err error) {
	if typ.IsRegular() || typ.IsDir() {
		fd, err = w.openat(dirfd, name, typ.IsDir())
		if err == nil {
			if err = unix.Fstat(fd, &st); err != nil {
				closeFD(fd)
				return st, -1, err
			}
			return st, fd, nil
		}
		switch err {
		case unix.ELOOP, unix.ENOTDIR, unix.ENXIO, unix.EWOULDBLOCK:
			// The entry changed type since the directory was listed.
		default:
			return st, -1, err
		}
	}
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, -1, err
	}
	if m := st.Mode & unix.S_IFMT; m == unix.S_IFREG || m == unix.S_IFDIR {
		fd, err = w.openat(dirfd, name, m == unix.S_IFDIR)
		if err == nil {
			err = unix.Fstat(fd, &st)
		}
		if err != nil {
			closeFD(fd)
			return st, -1, err
		}
		return st, fd, nil
	}
	return st, -1, nil
}

// openat opens name below dirfd for reading without following a final
// symlink. A file is opened non-blocking, so that a FIFO swapped in for it
// cannot hang the walk.
func (w *walker) openat(dirfd int, name string, dir bool) (int, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if dir {
		flags |= unix.O_DIRECTORY
	} else {
		flags |= unix.O_NONBLOCK
	}
	for {
		f := flags
		if w.noatime {
			f |= unix.O_NOATIME
		}
		fd, err := unix.Openat(dirfd, name, f, 0)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR:
			continue
		case err == unix.EPERM && w.noatime:
			w.noatime = false
			continue
		}
		return -1, err
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// headerX describes the entry at abs from its stat and its extended
// attributes, read from fd when it is open (else from abs, not following a
// symlink). What cannot be read is a warning, sent before the entry.
func (w *walker) headerX(ctx context.Context, abs string, st *unix.Stat_t, fd int) tar.Header {
	h := w.header(abs, st)
	for _, msg := range w.xattrs(&h, fd, abs) {
		// An error here is the end of ctx, which the emit of the entry
		// reports.
		_ = w.warn(ctx, msg)
	}
	return h
}

// header describes the entry at abs from its stat.
func (w *walker) header(abs string, st *unix.Stat_t) tar.Header {
	h := tar.Header{
		Name:    abs[1:],
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		Uname:   w.names.user(st.Uid),
		Gname:   w.names.group(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case unix.S_IFREG:
		h.Typeflag = tar.TypeReg
		h.Size = st.Size
	case unix.S_IFLNK:
		h.Typeflag = tar.TypeSymlink
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	case unix.S_IFCHR:
		h.Typeflag = tar.TypeChar
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		h.Typeflag = tar.TypeBlock
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	}
	return h
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// idNames caches user and group names by id; a missing name is "".
type idNames struct {
	users, groups map[uint32]string
}

func newIDNames() *idNames {
	return &idNames{users: map[uint32]string{}, groups: map[uint32]string{}}
}

func (n *idNames) user(id uint32) string {
	name, ok := n.users[id]
	if !ok {
		if u, err := user.LookupId(strconv.FormatUint(uint64(id), 10)); err == nil {
			name = u.Username
		}
		n.users[id] = name
	}
	return name
}

func (n *idNames) group(id uint32) string {
	name, ok := n.groups[id]
	if !ok {
		if g, err := user.LookupGroupId(strconv.FormatUint(uint64(id), 10)); err == nil {
			name = g.Name
		}
		n.groups[id] = name
	}
	return name
}
