// Package local is the destination driver for a directory of this host.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

// tmpPrefix starts the names of uploads in progress.
const tmpPrefix = drivers.TempPrefix

// Store keeps objects as files below a root directory. Keys map to paths
// relative to the root.
type Store struct {
	root string
}

// New returns a store rooted at dir. The directory is created on first write.
func New(dir string) *Store {
	return &Store{root: filepath.Clean(dir)}
}

func (s *Store) path(key string) (string, error) {
	if err := drivers.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// notFound reports whether err means there is no file at a path: also when
// part of the path is a file (a key beneath another key's object).
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Put writes r to a temporary file beside the final one, syncs it and
// renames it into place, then syncs the directory, so the object is either
// complete or absent, also after a crash.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(p)
	var f *os.File
	// A concurrent Delete removes directories that look empty, possibly
	// one MkdirAll just made or found (it then fails with ENOENT or
	// EEXIST); once the temporary file is in, dir stays.
	for attempt := 1; ; attempt++ {
		err = os.MkdirAll(dir, 0o700)
		if err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+filepath.Base(p)+"-")
		}
		if err == nil {
			break
		}
		vanished := errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist)
		if !vanished || attempt == 10 {
			return 0, err
		}
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		// ctx may be done while the last Read blocked: do not commit.
		err = ctx.Err()
	}
	if err != nil {
		return n, err
	}
	if err := f.Chmod(0o600); err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if err := os.Rename(tmp, p); err != nil {
		return n, err
	}
	committed = true
	return n, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	err = d.Sync()
	// Some file systems (SMB/CIFS shares, some FUSE ones) cannot sync a
	// directory: the rename is then as durable as they make it, and the
	// object is in place, so Put must not report a failure.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// Get opens the file of key.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if notFound(err) {
		return nil, fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	// A directory is a prefix of keys, not an object.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
	}
	return f, nil
}

// GetRange opens the file of key at offset.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := drivers.CheckRange(offset, length); err != nil {
		return nil, err
	}
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	f := rc.(*os.File)
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return drivers.ExactReader(f, length), nil
}

// Stat describes the file of key.
func (s *Store) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return drivers.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if notFound(err) || err == nil && !fi.Mode().IsRegular() {
		return drivers.ObjectInfo{}, fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
	}
	if err != nil {
		return drivers.ObjectInfo{}, err
	}
	return drivers.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks the directory below prefix. A missing root lists nothing; any
// other error fails the whole listing.
func (s *Store) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	switch fi, err := os.Stat(s.root); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("list %s: %w", s.root, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("list %s: not a directory", s.root)
	}
	var out []drivers.ObjectInfo
	start := s.root
	// Walk only the part of the tree the prefix can be in.
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		// Keys are clean paths: a prefix whose directory part is not
		// (such as "../") matches none, and must not leave the root.
		dir := prefix[:i]
		if path.Clean("/"+dir) != "/"+dir {
			return nil, nil
		}
		start = filepath.Join(s.root, filepath.FromSlash(dir))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// The prefix's directory may be missing, or be an object
			// ("a/b/" when "a" is one).
			if p == start && notFound(err) {
				return fs.SkipAll
			}
			// A directory a concurrent Delete removed held no objects.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the directory was read
		}
		if err != nil {
			return err
		}
		out = append(out, drivers.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.root, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the file of key and any directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	// A directory is a prefix of keys, not an object: leave it.
	if fi, err := os.Lstat(p); notFound(err) || err == nil && fi.IsDir() {
		return nil
	}
	if err := os.Remove(p); err != nil && !notFound(err) {
		return err
	}
	s.tidy(filepath.Dir(p))
	return nil
}

// tidy removes dir and its parents while they are empty, up to the root
// (also when it is "." and not a prefix of dir).
func (s *Store) tidy(dir string) {
	for ; dir != s.root && dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			return
		}
	}
}

// Check creates the root if needed and proves it is writable.
func (s *Store) Check(ctx context.Context) error {
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.root, tmpPrefix+"check-")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Close does nothing: a directory holds no connection.
func (s *Store) Close() error { return nil }

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// CleanTemp removes the temporary files of uploads that a crash
// interrupted, those last modified before cutoff, and the directories that
// leaves empty. A Put in progress keeps its file's modification time fresh,
// so it is left alone.
func (s *Store) CleanTemp(ctx context.Context, cutoff time.Time) (int, int64, error) {
	var n int
	var size int64
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err == nil {
			n++
			size += fi.Size()
			s.tidy(filepath.Dir(p))
		}
		return nil
	})
	return n, size, err
}

var (
	_ drivers.Destination = (*Store)(nil)
	_ drivers.TempCleaner = (*Store)(nil)
)
