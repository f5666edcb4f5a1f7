package files

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ExtractOptions tunes Extract. The zero value is ready to use.
type ExtractOptions struct {
	// Logger receives a warning for each entry not restored and each
	// kind of extended attribute that could not be set, and debug
	// messages; nil discards them.
	Logger *slog.Logger
}

// ExtractStats is what Extract did.
type ExtractStats struct {
	Files int64 // regular files written
	Dirs  int64 // directory entries restored
	Links int64 // symlinks and hard links created
	Bytes int64 // bytes of file contents written, holes included
	// Skipped lists, in archive order, every entry that was not restored,
	// or not restored whole (its owner, mode or times could not be set),
	// with the reason: an entry refused because it would land outside the
	// target, a file whose place is taken by a directory that is not
	// empty, an entry below a path that is not a directory, a hard link
	// whose target is missing, a device node without the privilege to
	// create it, an unknown entry type.
	Skipped []Skipped
	// Special lists the device nodes, FIFOs and setuid or setgid files
	// restored, in archive order, for the restore's summary.
	Special []Special
	// Warnings say what was restored with less than the archive holds:
	// extended attributes, ACLs and file capabilities that a file system
	// cannot hold (once per file system) or that could not be set.
	Warnings []string
}

// Skipped is an entry that Extract did not restore, or not whole.
type Skipped struct {
	Name   string // the entry's name in the archive
	Reason string
}

// Special is a device node, a FIFO or a setuid or setgid file that Extract
// restored.
type Special struct {
	Name string // the entry's name in the archive
	// Kind is "character device MAJOR:MINOR", "block device MAJOR:MINOR",
	// "FIFO", "setuid file", "setgid file" or "setuid and setgid file"
	// (directories: "setgid directory").
	Kind string
}

// IncompleteError is the error of an extraction that went through the
// whole archive but left entries out. Its message names the refused
// entries, then the others with their reasons, the first 20 of each.
type IncompleteError struct {
	Target  string
	Refused []string  // entries refused for landing outside Target, quoted
	Skipped []Skipped // every entry not restored, refused ones included
}

func (e *IncompleteError) Error() string {
	var parts []string
	if n := len(e.Refused); n > 0 {
		parts = append(parts, fmt.Sprintf("refused %d %s that would land outside %s: %s", n, plural(n, "entry", "entries"), e.Target, listed(e.Refused)))
	}
	var other []string
	for _, s := range e.Skipped {
		if s.Reason != reasonRefused {
			other = append(other, fmt.Sprintf("%q (%s)", s.Name, s.Reason))
		}
	}
	if n := len(other); n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s not restored in %s: %s", n, plural(n, "entry", "entries"), e.Target, listed(other)))
	}
	return strings.Join(parts, "; ")
}

const reasonRefused = "refused: it would land outside the target"

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// listed joins the first maxListed items and counts the others.
func listed(items []string) string {
	s := strings.Join(items[:min(len(items), maxListed)], ", ")
	if n := len(items); n > maxListed {
		s += fmt.Sprintf(" and %d more", n-maxListed)
	}
	return s
}

// holeBlock is the size of the all-zero blocks Extract skips over instead of
// writing, so that sparse files stay sparse.
const holeBlock = 64 << 10

var zeroBlock [holeBlock]byte

// maxListed bounds the refused entries an error names.
const maxListed = 20

// Extract unpacks the tar stream r into the directory target, creating it if
// needed. Nothing is ever written outside target: an entry whose name is
// absolute or contains "..", whose path goes through a symlink (one in
// target, or one an earlier entry created), or a hard link whose target is
// such a name, is refused; Extract goes on with the other entries and then
// returns an error naming every refused entry. A symlink's own target text
// may point anywhere.
//
// Regular files, directories, symlinks, hard links and FIFOs are recreated,
// and device nodes when the privilege allows, with their mode (setuid,
// setgid and sticky bits included) and mtime (not for symlinks, which get
// the time of the extraction); directories get theirs at the end, deepest
// first, so that read-only directories can be filled. When
// running as root, owners are restored too: by user and group name when
// that name exists on this host, else by numeric id. Extended attributes
// (SCHILY.xattr.* records: POSIX ACLs and file capabilities included) are
// set after the owner, so that a capability survives it; a file system
// that cannot hold them gets one warning. All-zero 64 KiB blocks of
// regular files are left as holes, and the holes of a sparse entry are
// never expanded: the work is bounded by the bytes stored. An existing
// entry in target is replaced (a directory only by a directory, unless it
// is empty); an existing file is unlinked first, never written through, so
// a hard link in target to a file elsewhere cannot be abused.
//
// Every entry not restored is listed in the stats' Skipped, and Extract
// returns an *IncompleteError naming them: that very error when it read the
// whole archive (a partial restore), joined to what stopped it otherwise.
// A read error of r, a write error in target, or the end of ctx (checked
// between entries and at least every MiB within one) stops Extract with an
// error; directories restored until then still get their modes and mtimes.
func Extract(ctx context.Context, r io.Reader, target string, opts ExtractOptions) (ExtractStats, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return ExtractStats{}, fmt.Errorf("create target %s: %w", target, err)
	}
	root, err := os.OpenRoot(target)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("open target %s: %w", target, err)
	}
	defer root.Close()
	x := &extractor{
		root:   root,
		log:    log,
		asRoot: os.Geteuid() == 0,
		dirs:   map[string]bool{},
		meta:   map[string]dirMeta{},
		uids:   map[string]int{},
		gids:   map[string]int{},
		buf:    make([]byte, copyBufSize),

		xattrWarn: map[string]*xattrWarning{},
		setxattr:  xattrSetter,
	}
	x.target = target
	// Every read checks ctx, the ones tar makes to skip an entry too.
	err = x.run(ctx, tar.NewReader(ctxReader{ctx: ctx, r: r}))
	x.finishDirs()
	x.finishXattrWarnings()
	if len(x.stats.Skipped) > 0 {
		ie := &IncompleteError{Target: target, Refused: x.refused, Skipped: x.stats.Skipped}
		if err == nil {
			return x.stats, ie
		}
		err = errors.Join(err, ie)
	}
	return x.stats, err
}

type extractor struct {
	root   *os.Root
	target string
	log    *slog.Logger
	asRoot bool
	stats  ExtractStats
	// dirs caches the paths known to be real directories (not symlinks) in
	// target; anything removed or replaced leaves it.
	dirs map[string]bool
	// meta holds the directories whose mode and mtime are set at the end.
	meta    map[string]dirMeta
	refused []string
	uids    map[string]int
	gids    map[string]int
	buf     []byte
	// xattrWarn collects the failures to set extended attributes, one per
	// file system without support, or per attribute namespace and error.
	xattrWarn map[string]*xattrWarning
	xattrKeys []string
	// setxattr sets one extended attribute; a test may replace it.
	setxattr func(path string, fd int, name string, value []byte) error
}

type dirMeta struct {
	mode         fs.FileMode
	uid, gid     int
	atime, mtime time.Time
	hdr          *tar.Header // set when it has extended attributes
}

func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := x.entry(ctx, tr, hdr); err != nil {
			return err
		}
	}
}

// entry restores one entry. It returns an error only for what stops the
// extraction; refused and skipped entries are recorded.
func (x *extractor) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	}
	name, ok := cleanName(hdr.Name)
	if !ok {
		x.refuse(hdr.Name, strconv.Quote(hdr.Name))
		return nil
	}
	if name == "." {
		return nil // target itself
	}
	refuse, err := x.parents(name, true)
	if refuse {
		x.refuse(hdr.Name, strconv.Quote(hdr.Name))
		return nil
	}
	if err != nil {
		x.skip(hdr.Name, err)
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(name, hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(ctx, name, hdr, tr)
	case tar.TypeSymlink:
		if err := x.replace(name, func() error { return x.root.Symlink(hdr.Linkname, name) }); err != nil {
			x.skip(hdr.Name, err)
			return nil
		}
		x.chown(name, hdr)
		x.setXattrsAt(name, hdr)
		x.stats.Links++
	case tar.TypeLink:
		return x.hardLink(name, hdr)
	case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		x.node(name, hdr)
	default:
		x.skipReason(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	}
	return nil
}

// cleanName returns the slash-separated name of an entry relative to the
// target, or false for one that is absolute or goes up with "..".
func cleanName(name string) (string, bool) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", false
	}
	for part := range strings.SplitSeq(name, "/") {
		if part == ".." {
			return "", false
		}
	}
	return path.Clean(name), true
}

// parents checks that the directories above name are real directories, not
// symlinks, creating the missing ones when create is set. refuse is true
// when one is a symlink; err tells why name cannot be restored otherwise.
func (x *extractor) parents(name string, create bool) (refuse bool, err error) {
	dir := path.Dir(name)
	if dir == "." || x.dirs[dir] {
		return false, nil
	}
	p := ""
	for part := range strings.SplitSeq(dir, "/") {
		if p == "" {
			p = part
		} else {
			p += "/" + part
		}
		if x.dirs[p] {
			continue
		}
		fi, err := x.root.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return true, nil
		case err == nil:
			return false, fmt.Errorf("its parent %s is %w", p, errNotDir)
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := x.root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return false, err
			}
		default:
			return false, err
		}
		x.dirs[p] = true
	}
	return false, nil
}

// replace runs create, and if something is in the way, removes it and runs
// create again.
func (x *extractor) replace(name string, create func() error) error {
	err := create()
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := x.remove(name); err != nil {
		return err
	}
	return create()
}

// remove removes name, a directory only if it is empty.
func (x *extractor) remove(name string) error {
	if err := x.root.Remove(name); err != nil {
		return fmt.Errorf("replace existing %s: %w", name, errnoOf(err))
	}
	delete(x.dirs, name)
	delete(x.meta, name)
	return nil
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	err := x.root.Mkdir(name, 0o700)
	if errors.Is(err, fs.ErrExist) {
		fi, lerr := x.root.Lstat(name)
		switch {
		case lerr != nil:
			err = lerr
		case fi.IsDir():
			// Restore into it even if it is read-only; finishDirs gives
			// it the archived mode.
			err = nil
			if fi.Mode().Perm()&0o700 != 0o700 {
				err = x.root.Chmod(name, fi.Mode()|0o700)
			}
		default:
			if err = x.remove(name); err == nil {
				err = x.root.Mkdir(name, 0o700)
			}
		}
	}
	if err != nil {
		x.skip(hdr.Name, err)
		return nil
	}
	x.dirs[name] = true
	if hdr.Mode&0o6000 != 0 {
		x.special(hdr)
	}
	uid, gid := x.owner(hdr)
	// Its extended attributes too wait for the end: a default ACL set now
	// would be inherited by the files restored into it.
	m := dirMeta{mode: fileMode(hdr.Mode), uid: uid, gid: gid, atime: atimeOf(hdr), mtime: hdr.ModTime}
	if hasXattrs(hdr) {
		m.hdr = hdr
	}
	x.meta[name] = m
	x.stats.Dirs++
	return nil
}

func (x *extractor) file(ctx context.Context, name string, hdr *tar.Header, tr *tar.Reader) error {
	var f *os.File
	err := x.replace(name, func() error {
		var err error
		f, err = x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		return err
	})
	if err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EISDIR) {
			// Something that is not ours to remove is in the way.
			x.skipReason(hdr.Name, "a directory that is not empty is in its place")
		} else {
			x.skip(hdr.Name, err)
		}
		return nil
	}
	var n int64
	if IsSparse(hdr) {
		n, err = writeHoles(ctx, tr, f)
	} else {
		n, err = x.writeSparse(ctx, f, tr)
	}
	x.stats.Bytes += n
	if errors.Is(err, unix.EFBIG) {
		// A sparse entry larger than this file system allows: the
		// archive goes on after it.
		f.Close()
		_ = x.root.Remove(name)
		x.skipReason(hdr.Name, fmt.Sprintf("its size of %d bytes is more than the file system allows", hdr.Size))
		return nil
	}
	if err == nil && x.asRoot {
		uid, gid := x.owner(hdr)
		err = ignoreEPERM(f.Chown(uid, gid))
	}
	if err == nil {
		// After the owner, which clears a file capability.
		x.setXattrs(name, hdr, "", int(f.Fd()))
		err = f.Chmod(fileMode(hdr.Mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = x.root.Chtimes(name, atimeOf(hdr), hdr.ModTime)
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	x.stats.Files++
	if hdr.Mode&0o6000 != 0 {
		x.special(hdr)
	}
	return nil
}

// writeSparse copies r to f, seeking over all-zero blocks instead of
// writing them, and returns the size of the file.
func (x *extractor) writeSparse(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	var total, hole int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := fill(r, x.buf)
		data := x.buf[:n]
		for i := 0; i < n; {
			end := min(i+holeBlock, n)
			if isZero(data[i:end]) {
				hole += int64(end - i)
				i = end
				continue
			}
			if hole > 0 {
				if _, err := f.Seek(hole, io.SeekCurrent); err != nil {
					return total, err
				}
				hole = 0
			}
			for end < n && !isZero(data[end:min(end+holeBlock, n)]) {
				end = min(end+holeBlock, n)
			}
			if _, err := f.Write(data[i:end]); err != nil {
				return total, err
			}
			i = end
		}
		total += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return total, fmt.Errorf("read tar: %w", rerr)
		}
	}
	if hole > 0 {
		// The file ends in a hole: give it its size without writing.
		if err := f.Truncate(total); err != nil {
			return total, err
		}
	}
	return total, nil
}

// fill reads r until buf is full or r ends (io.EOF) or fails.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func isZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

func (x *extractor) hardLink(name string, hdr *tar.Header) error {
	target, ok := cleanName(hdr.Linkname)
	refused := !ok || target == "."
	var err error
	if !refused {
		refused, err = x.parents(target, false)
	}
	if refused {
		x.refuse(hdr.Name, fmt.Sprintf("%q (hard link to %q)", hdr.Name, hdr.Linkname))
		return nil
	}
	if err == nil && target != name {
		err = x.replace(name, func() error { return x.root.Link(target, name) })
	}
	if errors.Is(err, fs.ErrNotExist) {
		x.skipReason(hdr.Name, fmt.Sprintf("the target of the hard link, %q, is missing", hdr.Linkname))
		return nil
	}
	if err != nil {
		x.skip(hdr.Name, err)
		return nil
	}
	x.stats.Links++
	return nil
}

// node creates a FIFO or a device node.
func (x *extractor) node(name string, hdr *tar.Header) {
	mode := uint32(fileMode(hdr.Mode).Perm())
	switch hdr.Typeflag {
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	// os.Root has no Mknod: make it relative to the parent directory,
	// opened through the root (and checked above not to be a symlink).
	parent, err := x.root.Open(path.Dir(name))
	if err != nil {
		x.skip(hdr.Name, err)
		return
	}
	defer parent.Close()
	base := path.Base(name)
	err = x.replace(name, func() error {
		err := unix.Mknodat(int(parent.Fd()), base, mode, int(dev))
		if err == unix.EEXIST {
			return fs.ErrExist
		}
		return err
	})
	if err != nil {
		x.skip(hdr.Name, err)
		return
	}
	x.chown(name, hdr)
	x.setXattrsAt(name, hdr)
	err = x.root.Chmod(name, fileMode(hdr.Mode))
	if err == nil {
		err = x.root.Chtimes(name, atimeOf(hdr), hdr.ModTime)
	}
	if err != nil {
		x.skip(hdr.Name, err)
	}
	x.special(hdr)
}

// special lists hdr in the stats' Special.
func (x *extractor) special(hdr *tar.Header) {
	var kind string
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = fmt.Sprintf("character device %d:%d", hdr.Devmajor, hdr.Devminor)
	case tar.TypeBlock:
		kind = fmt.Sprintf("block device %d:%d", hdr.Devmajor, hdr.Devminor)
	case tar.TypeFifo:
		kind = "FIFO"
	case tar.TypeDir:
		if hdr.Mode&0o2000 == 0 {
			return // setuid on a directory means nothing on Linux
		}
		kind = "setgid directory"
	default:
		switch hdr.Mode & 0o6000 {
		case 0o4000:
			kind = "setuid file"
		case 0o2000:
			kind = "setgid file"
		default:
			kind = "setuid and setgid file"
		}
	}
	x.stats.Special = append(x.stats.Special, Special{Name: hdr.Name, Kind: kind})
}

// chown gives name the owner of hdr without following a symlink, when
// running as root.
func (x *extractor) chown(name string, hdr *tar.Header) {
	if !x.asRoot {
		return
	}
	uid, gid := x.owner(hdr)
	if err := ignoreEPERM(x.root.Lchown(name, uid, gid)); err != nil {
		x.skip(hdr.Name, err)
	}
}

// owner returns the ids for the owner of hdr: those of its user and group
// names on this host, else the numeric ids it records.
func (x *extractor) owner(hdr *tar.Header) (uid, gid int) {
	uid, gid = hdr.Uid, hdr.Gid
	if hdr.Uname != "" {
		id, ok := x.uids[hdr.Uname]
		if !ok {
			id = -1
			if u, err := user.Lookup(hdr.Uname); err == nil {
				id, _ = strconv.Atoi(u.Uid)
			}
			x.uids[hdr.Uname] = id
		}
		if id >= 0 {
			uid = id
		}
	}
	if hdr.Gname != "" {
		id, ok := x.gids[hdr.Gname]
		if !ok {
			id = -1
			if g, err := user.LookupGroup(hdr.Gname); err == nil {
				id, _ = strconv.Atoi(g.Gid)
			}
			x.gids[hdr.Gname] = id
		}
		if id >= 0 {
			gid = id
		}
	}
	return uid, gid
}

// finishDirs gives the restored directories their owner, mode and mtime,
// deepest first, so that setting a child's mtime does not change its
// parent's afterwards.
func (x *extractor) finishDirs() {
	names := make([]string, 0, len(x.meta))
	for name := range x.meta {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := strings.Count(b, "/") - strings.Count(a, "/"); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		m := x.meta[name]
		fi, err := x.root.Lstat(name)
		if err != nil || !fi.IsDir() {
			continue // replaced since
		}
		x.setXattrsAt(name, m.hdr)
		if x.asRoot {
			err = ignoreEPERM(x.root.Lchown(name, m.uid, m.gid))
		}
		if err == nil {
			err = x.root.Chmod(name, m.mode)
		}
		if err == nil {
			err = x.root.Chtimes(name, m.atime, m.mtime)
		}
		if err != nil {
			x.skip(name+"/", err)
		}
	}
}

// errNotDir marks a path in the way of an entry's parent directory.
var errNotDir = errors.New("not a directory")

func (x *extractor) refuse(name, what string) {
	x.log.Warn("files: entry not restored", "entry", name, "reason", reasonRefused)
	x.refused = append(x.refused, what)
	x.stats.Skipped = append(x.stats.Skipped, Skipped{Name: name, Reason: reasonRefused})
}

func (x *extractor) skip(name string, err error) {
	x.skipReason(name, errnoOf(err).Error())
}

func (x *extractor) skipReason(name, reason string) {
	x.log.Warn("files: entry not restored", "entry", name, "reason", reason)
	x.stats.Skipped = append(x.stats.Skipped, Skipped{Name: name, Reason: reason})
}

// fileMode converts the mode of a tar header, permission bits and setuid,
// setgid and sticky bits, to an fs.FileMode.
func fileMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func atimeOf(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// ignoreEPERM drops the error of a chown that the process may not do (in a
// user namespace, say): the file is restored with the extracting user's
// ownership.
func ignoreEPERM(err error) error {
	if errors.Is(err, unix.EPERM) {
		return nil
	}
	return err
}
