package drill

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/files"
)

// FileEvidence is what a drill found of one restored file.
type FileEvidence struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Live is "same" when the live file, unchanged since the snapshot,
	// has the same content; "changed" when it changed or is gone; empty
	// when not compared (Docker volumes).
	Live string `json:"live,omitempty"`
}

// tarCheck reads the tar objects of a snapshot: it hashes every regular
// file, checks its length against its header, and writes the sampled ones
// under root, reads them back and compares them with the live files.
type tarCheck struct {
	root     *os.Root
	seed     []byte
	sample   float64
	live     bool // compare with live files ("/" + entry name)
	snapTime time.Time
	res      *v1.DrillSourceResult
	evidence []FileEvidence
	// writeTime is the time spent writing sampled files, which a full
	// restore would spend on every file (see measuredRTO).
	writeTime time.Duration
	tarBytes  int64
}

// unpack is a snapshot.RestoreOptions.Unpack function.
func (t *tarCheck) unpack(ctx context.Context, ob v1.SnapshotObject, r io.Reader) (files.ExtractStats, error) {
	var st files.ExtractStats
	if ob.Format != "tar" {
		return st, fmt.Errorf("object %s has format %s, not tar", ob.Name, ob.Format)
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("object %s: %w", ob.Name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := t.file(ob.Name, hdr, tr); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += hdr.Size
	}
}

// sampled decides, the same way for a name within one drill, whether a
// file is written to scratch space.
func (t *tarCheck) sampled(name string) bool {
	if t.sample >= 1 {
		return true
	}
	h := sha256.Sum256(append(append([]byte{}, t.seed...), name...))
	return float64(binary.BigEndian.Uint64(h[:8]))/float64(^uint64(0)) < t.sample
}

// file checks one regular file of the tar.
func (t *tarCheck) file(object string, hdr *tar.Header, r io.Reader) error {
	name := path.Clean(hdr.Name)
	t.res.Files++
	t.tarBytes += hdr.Size
	h := sha256.New()
	if !t.sampled(name) {
		n, err := io.Copy(h, r)
		if err != nil {
			return fmt.Errorf("file %s: %w", name, err)
		}
		return sizeCheck(name, n, hdr.Size)
	}
	rel := path.Join(object, name)
	start := time.Now()
	n, err := t.write(rel, io.TeeReader(r, h))
	t.writeTime += time.Since(start)
	if err != nil {
		return err
	}
	if err := sizeCheck(name, n, hdr.Size); err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	back, size, err := hashFile(t.root.Open(rel))
	if err != nil {
		return fmt.Errorf("read back restored file %s: %w", name, err)
	}
	if back != sum || size != n {
		return fmt.Errorf("file %s: the restored copy on disk (%d bytes, SHA-256 %s) differs from the restored stream (%d bytes, SHA-256 %s)", name, size, back, n, sum)
	}
	ev := FileEvidence{Path: "/" + name, Size: n, SHA256: sum}
	t.res.FilesRestored++
	t.res.BytesRestored += n
	if t.live {
		if ev.Live, err = t.compareLive(name, hdr, sum); err != nil {
			return err
		}
	}
	t.evidence = append(t.evidence, ev)
	return nil
}

func sizeCheck(name string, got, want int64) error {
	if got != want {
		return fmt.Errorf("file %s: restored %d bytes, its tar header says %d", name, got, want)
	}
	return nil
}

// write stores r as rel under the scratch root.
func (t *tarCheck) write(rel string, r io.Reader) (int64, error) {
	if err := t.root.MkdirAll(path.Dir(rel), 0o700); err != nil {
		return 0, fmt.Errorf("scratch directory for %s: %w", rel, err)
	}
	f, err := t.root.OpenFile(rel, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("scratch file for %s: %w", rel, err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("restore %s into scratch space: %w", rel, err)
	}
	return n, nil
}

// compareLive compares a restored file with the live one when the live
// file has not changed since the snapshot: same size, same modification
// time, older than the snapshot. A live file that differs then is an
// error: the snapshot does not hold what was there.
func (t *tarCheck) compareLive(name string, hdr *tar.Header, sum string) (string, error) {
	live := "/" + name
	fi, err := os.Lstat(live)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != hdr.Size ||
		fi.ModTime().Sub(hdr.ModTime).Abs() >= time.Second || !fi.ModTime().Before(t.snapTime) {
		t.res.LiveChanged++
		return "changed", nil
	}
	got, _, err := hashFile(os.Open(live))
	if err != nil {
		return "", fmt.Errorf("read live file %s: %w", live, err)
	}
	t.res.LiveCompared++
	if got != sum {
		return "", fmt.Errorf("file %s: the restored content (SHA-256 %s) differs from the live file (SHA-256 %s), which has not changed since the snapshot", live, sum, got)
	}
	return "same", nil
}

func hashFile(f *os.File, err error) (string, int64, error) {
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
