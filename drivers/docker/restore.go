package docker

import (
	"archive/tar"
	"context"
	"fmt"
	cerrdefs "github.com/containerd/errdefs"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/volume"

	"github.com/aegis-backup/aegis/drivers/files"
)

// PrepareVolume makes the Docker volume name ready to be restored into and
// returns its mount point: it is created when missing (local driver,
// labelled io.aegis.restored-from=FROM); an existing one is refused while a
// running container uses it, and when it is not empty unless overwrite is
// set. created tells whether it was made here.
func PrepareVolume(ctx context.Context, name, from string, overwrite bool) (mountpoint string, created bool, err error) {
	if !volumeName.MatchString(name) {
		return "", false, fmt.Errorf("%q is not a valid volume name", name)
	}
	cli, err := NewClient()
	if err != nil {
		return "", false, err
	}
	defer cli.Close()
	v, err := cli.VolumeInspect(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
		v, err = cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: map[string]string{"io.aegis.restored-from": from}})
		if err != nil {
			return "", false, fmt.Errorf("create volume %s: %w", name, err)
		}
		created = true
	case err != nil:
		return "", false, fmt.Errorf("volume %s: %w", name, err)
	default:
		users, err := containersUsing(ctx, cli, []string{name})
		if err != nil {
			return "", false, err
		}
		var running []string
		for _, c := range users {
			if c.state == "running" || c.state == "paused" || c.state == "restarting" {
				running = append(running, c.name)
			}
		}
		if len(running) > 0 {
			return "", false, fmt.Errorf("volume %s is in use by running container(s) %s: stop them before restoring into it", name, strings.Join(running, ", "))
		}
	}
	mp, err := filepath.EvalSymlinks(v.Mountpoint)
	if err != nil {
		return "", created, fmt.Errorf("volume %s: its mount point %s cannot be reached on this host: %w", name, v.Mountpoint, err)
	}
	if !created && !overwrite {
		entries, err := os.ReadDir(mp)
		if err != nil {
			return "", false, fmt.Errorf("volume %s: %w", name, err)
		}
		if len(entries) > 0 {
			return "", false, fmt.Errorf("volume %s is not empty (%d entries): refusing to overwrite it (restore into a new volume, or overwrite it with --overwrite)", name, len(entries))
		}
	}
	return mp, created, nil
}

// ExtractVolume unpacks the tar stream of the volume from (entries below
// from/, as Backup writes them) into dir, the mount point of the volume to
// restore into, with files.Extract's safety: nothing lands outside dir. The
// volume root's own mode, owner and mtime are given to dir.
func ExtractVolume(ctx context.Context, r io.Reader, from, dir string, log *slog.Logger) (files.ExtractStats, error) {
	pr, pw := io.Pipe()
	var root *tar.Header
	done := make(chan error, 1)
	go func() {
		err := unbaseTar(r, pw, from, &root)
		pw.CloseWithError(err)
		done <- err
	}()
	st, err := files.Extract(ctx, pr, dir, files.ExtractOptions{Logger: log})
	pr.CloseWithError(io.ErrClosedPipe) // stops the copy if Extract gave up early
	if uerr := <-done; uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		return st, err
	}
	if root != nil {
		mode := os.FileMode(root.Mode & 0o777)
		if root.Mode&0o4000 != 0 {
			mode |= os.ModeSetuid
		}
		if root.Mode&0o2000 != 0 {
			mode |= os.ModeSetgid
		}
		if root.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		if err := os.Lchown(dir, root.Uid, root.Gid); err != nil && os.Geteuid() == 0 {
			return st, fmt.Errorf("volume root: %w", err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			return st, fmt.Errorf("volume root: %w", err)
		}
		if err := os.Chtimes(dir, root.ModTime, root.ModTime); err != nil {
			return st, fmt.Errorf("volume root: %w", err)
		}
	}
	return st, nil
}

// unbaseTar copies the entries below from/ of r to w with that prefix
// removed; the entry of from/ itself is kept in *root. An entry elsewhere
// means the object is not the volume's.
func unbaseTar(r io.Reader, w io.Writer, from string, root **tar.Header) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	buf := make([]byte, 1<<20)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if files.IsSparse(hdr) {
			// Copying it would expand its holes, however large.
			return fmt.Errorf("entry %q is a sparse file, which Aegis never writes: not an archive of volume %s", hdr.Name, from)
		}
		name, ok := rebase(hdr.Name, from, ".")
		if !ok {
			return fmt.Errorf("entry %q is not below %s/: not an archive of volume %s", hdr.Name, from, from)
		}
		if name == "./" {
			h := *hdr
			*root = &h
			continue
		}
		hdr.Name = strings.TrimPrefix(name, "./")
		if hdr.Typeflag == tar.TypeLink {
			if hdr.Linkname, ok = rebase(hdr.Linkname, from, "."); !ok {
				return fmt.Errorf("hard link %q points outside volume %s", hdr.Name, from)
			}
			hdr.Linkname = strings.TrimPrefix(hdr.Linkname, "./")
		}
		delete(hdr.PAXRecords, "path")
		delete(hdr.PAXRecords, "linkpath")
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
			return err
		}
	}
	// Read the tar's end padding, so the caller's hash covers every byte.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return tw.Close()
}
