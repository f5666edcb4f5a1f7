package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// WriteNew writes r as a new file at name, a slash-separated path below
// root whose directory exists, and returns the bytes written. The file is
// written under a temporary name unique to this call (".NAME.aegis-XXXXXXXXXXXXXXXX.tmp"
// beside it), created exclusively, given mode perm (whatever the umask)
// and, when the process runs as root, the owner uid:gid; it is synced, then
// renamed over name and the directory synced. Whatever was at name (a file
// of another owner or mode, a hard link to a file elsewhere, a symlink) is
// replaced as a directory entry, never opened, truncated or followed; an
// existing directory there fails WriteNew. On any failure, the end of ctx
// included, the temporary file is removed and name is left as it was.
func WriteNew(ctx context.Context, root *os.Root, name string, r io.Reader, perm fs.FileMode, uid, gid int) (int64, error) {
	clean := path.Clean(name)
	if clean == "." || clean == ".." || path.IsAbs(clean) {
		return 0, fmt.Errorf("write %s: not a file name below the target", name)
	}
	dir, base := path.Split(clean)
	var f *os.File
	var tmp string
	for range 5 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		tmp = path.Join(dir, "."+base+".aegis-"+hex.EncodeToString(rnd[:])+".tmp")
		var err error
		f, err = root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("write %s: %w", clean, err)
		}
	}
	if f == nil {
		return 0, fmt.Errorf("write %s: no free temporary name", clean)
	}
	n, err := writeNew(ctx, f, r, perm, uid, gid)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, clean)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return n, fmt.Errorf("write %s: %w", clean, err)
	}
	if d, err := root.Open(path.Clean(dir)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return n, fmt.Errorf("write %s: sync directory: %w", clean, err)
		}
	}
	return n, nil
}

func writeNew(ctx context.Context, f *os.File, r io.Reader, perm fs.FileMode, uid, gid int) (int64, error) {
	if os.Geteuid() == 0 {
		if err := f.Chown(uid, gid); err != nil {
			return 0, err
		}
	}
	if err := f.Chmod(perm); err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(ctxWriter{ctx: ctx, w: f}, ctxReader{ctx: ctx, r: r}, make([]byte, copyBufSize))
	if err != nil {
		return n, ctxOr(ctx, err)
	}
	return n, f.Sync()
}
