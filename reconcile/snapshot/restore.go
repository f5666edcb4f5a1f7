package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
)

// Snapshot is one snapshot manifest as read from a destination.
type Snapshot struct {
	Destination string               `json:"destination"`
	Manifest    *v1.SnapshotManifest `json:"manifest"`
	// Size is the snapshot's stored bytes: everything in its directory
	// (data objects, sealed manifest, manifest.json).
	Size int64 `json:"size"`
}

// ListSnapshots reads every snapshot manifest on dest, optionally only
// those of one policy. It fails rather than return a partial list.
func ListSnapshots(ctx context.Context, dest drivers.Destination, destName, policy string) ([]Snapshot, error) {
	snaps, bad, err := ListSnapshotsLenient(ctx, dest, destName, policy)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0]
	}
	return snaps, nil
}

// ListSnapshotsLenient is ListSnapshots for reading: a manifest that cannot
// be read is reported in bad instead of failing the whole listing, so one
// damaged snapshot does not keep the others from being restored. Only a
// failed listing is an error.
func ListSnapshotsLenient(ctx context.Context, dest drivers.Destination, destName, policy string) (snaps []Snapshot, bad []error, err error) {
	objs, err := dest.List(ctx, "")
	if err != nil {
		return nil, nil, fmt.Errorf("list destination %s: %w", destName, err)
	}
	var out []Snapshot
	sizes := dirSizes(objs)
	for _, o := range objs {
		_, pol, _, _, err := v1.ParseManifestKey(o.Key)
		if err != nil {
			continue
		}
		if policy != "" && pol != policy {
			continue
		}
		m, err := ReadManifest(ctx, dest, o.Key)
		if err != nil {
			bad = append(bad, fmt.Errorf("destination %s: %w", destName, err))
			continue
		}
		s := Snapshot{Destination: destName, Manifest: m, Size: sizes[path.Dir(o.Key)]}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Manifest, out[j].Manifest
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Source < b.Source
	})
	return out, bad, nil
}

// ReadManifest reads and checks the manifest under key: its format version,
// and that its host, policy, source and ID agree with its path.
func ReadManifest(ctx context.Context, dest drivers.Destination, key string) (*v1.SnapshotManifest, error) {
	rc, err := dest.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	defer rc.Close()
	var m v1.SnapshotManifest
	dec := json.NewDecoder(io.LimitReader(rc, 16<<20))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest %s is not valid: %w", key, err)
	}
	if m.FormatVersion > v1.SnapshotFormatVersion {
		return nil, fmt.Errorf("manifest %s has format version %d; this aegis-agent reads up to %d: upgrade it", key, m.FormatVersion, v1.SnapshotFormatVersion)
	}
	h, p, s, id, err := v1.ParseManifestKey(key)
	if err != nil {
		return nil, err
	}
	if !v1.IsDNS1123Label(m.Policy) || !v1.IsDNS1123Label(m.Source) {
		return nil, fmt.Errorf("manifest %s names policy %q, source %q: not valid names", key, m.Policy, m.Source)
	}
	if m.Host != h || m.Policy != p || m.Source != s || m.ID != id {
		return nil, fmt.Errorf("manifest %s names snapshot %s/%s/%s/%s: it was moved or edited", key, m.Host, m.Policy, m.Source, m.ID)
	}
	return &m, nil
}

// SelectSnapshot picks the snapshots of one run: id is a full ID, a unique
// prefix of one, or "latest" (the newest run, of this host when it has
// any). host, when set, limits the choice to that host's snapshots.
func SelectSnapshot(snaps []Snapshot, id, host, source string) ([]Snapshot, error) {
	var cands []Snapshot
	for _, s := range snaps {
		if (host == "" || s.Manifest.Host == host) && (source == "" || s.Manifest.Source == source) {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		if source != "" {
			return nil, fmt.Errorf("no snapshot of source %q found", source)
		}
		return nil, errors.New("no snapshot found")
	}
	hosts := map[string]bool{}
	for _, s := range cands {
		hosts[s.Manifest.Host] = true
	}
	if len(hosts) > 1 {
		var hs []string
		for h := range hosts {
			hs = append(hs, h)
		}
		sort.Strings(hs)
		return nil, fmt.Errorf("snapshots of several hosts match (%s): choose one with --host", strings.Join(hs, ", "))
	}
	if id == "" || id == "latest" {
		// The newest snapshot of each source: a run of one source (run
		// --source) or a failed source must not hide the others.
		newest := map[string]string{}
		for _, s := range cands {
			if s.Manifest.ID > newest[s.Manifest.Source] {
				newest[s.Manifest.Source] = s.Manifest.ID
			}
		}
		var out []Snapshot
		for _, s := range cands {
			if newest[s.Manifest.Source] == s.Manifest.ID {
				out = append(out, s)
			}
		}
		return out, nil
	}
	ids := map[string]bool{}
	for _, s := range cands {
		if strings.HasPrefix(s.Manifest.ID, id) {
			ids[s.Manifest.ID] = true
		}
	}
	switch len(ids) {
	case 0:
		return nil, fmt.Errorf("snapshot %q not found", id)
	case 1:
	default:
		return nil, fmt.Errorf("snapshot %q is ambiguous: it matches %d snapshots", id, len(ids))
	}
	var out []Snapshot
	for _, s := range cands {
		if ids[s.Manifest.ID] {
			out = append(out, s)
		}
	}
	return out, nil
}

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	// Target is the directory each source is restored under, as
	// TARGET/SOURCE/...
	Target string
	// Keys holds the age identities and openssl keys to decrypt with.
	Keys   *KeyRing
	Logger *slog.Logger
	// Unpack, when set, receives each data object's decoded stream instead
	// of the unpacking under Target/SOURCE, which is then not created (a
	// restore straight into a Docker volume). It may leave the stream
	// unread: the object's size and SHA-256 are checked after it returns,
	// whatever it read.
	Unpack func(ctx context.Context, ob v1.SnapshotObject, r io.Reader) (files.ExtractStats, error)
}

// incompleteMarker is left in a source's restore directory until the
// restore of that source has been fully verified.
const incompleteMarker = ".aegis-restore-incomplete"

// Restore fetches, verifies, decrypts and unpacks one snapshot (of one
// source) from dest into opts.Target/SOURCE.
func Restore(ctx context.Context, dest drivers.Destination, snap Snapshot, opts RestoreOptions) (files.ExtractStats, error) {
	m := snap.Manifest
	var total files.ExtractStats
	dir := filepath.Join(opts.Target, m.Source)
	marker := filepath.Join(dir, incompleteMarker)
	if opts.Unpack == nil {
		if err := os.MkdirAll(opts.Target, 0o700); err != nil {
			return total, err
		}
		// TARGET/SOURCE must be a real directory: a symlink there would
		// carry the restore elsewhere.
		if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return total, fmt.Errorf("%s is a symbolic link: refusing to restore through it", dir)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
			return total, err
		}
		note := fmt.Sprintf("restore of snapshot %s (policy %s, source %s, host %s) did not finish: do not trust this directory\n", m.ID, m.Policy, m.Source, m.Host)
		if err := os.WriteFile(marker, []byte(note), 0o600); err != nil {
			return total, err
		}
	}
	dec := &decoder{keys: opts.Keys}
	if err := dec.authenticate(m, sealedReader(ctx, dest, m)); err != nil {
		return total, err
	}
	if m.Encryption.Algorithm == "openssl" && !m.Deduplicated() {
		// CBC does not authenticate as it decrypts: check every object's
		// SHA-256 before a byte of it is unpacked.
		for _, ob := range m.Objects {
			if err := checkObjectHash(ctx, dest, m, ob); err != nil {
				return total, err
			}
		}
	}
	// An object restored in part (entries it could not put in place) does
	// not stop the others; the restore then ends with every entry not
	// restored named, and the directory stays marked incomplete.
	var partial []*files.IncompleteError
	for _, ob := range m.Objects {
		st, err := restoreObject(ctx, dest, m, ob, dec, dir, opts.Unpack, opts.Logger)
		addStats(&total, st)
		if inc, ok := err.(*files.IncompleteError); ok {
			partial = append(partial, inc)
			continue
		}
		if err != nil {
			return total, err
		}
	}
	if len(partial) > 0 {
		return total, joinIncomplete(dir, partial)
	}
	if opts.Unpack != nil {
		return total, nil
	}
	return total, os.Remove(marker)
}

// addStats adds what one object's restore did to the run's totals.
func addStats(total *files.ExtractStats, st files.ExtractStats) {
	total.Files += st.Files
	total.Dirs += st.Dirs
	total.Links += st.Links
	total.Bytes += st.Bytes
	total.Skipped = append(total.Skipped, st.Skipped...)
	total.Special = append(total.Special, st.Special...)
	total.Warnings = append(total.Warnings, st.Warnings...)
}

// joinIncomplete makes one IncompleteError of the objects restored in part.
func joinIncomplete(dir string, parts []*files.IncompleteError) error {
	if len(parts) == 1 {
		return parts[0]
	}
	all := &files.IncompleteError{Target: dir}
	for _, p := range parts {
		all.Refused = append(all.Refused, p.Refused...)
		all.Skipped = append(all.Skipped, p.Skipped...)
	}
	return all
}

// sealedReader returns a function that reads a snapshot's sealed manifest.
func sealedReader(ctx context.Context, dest drivers.Destination, m *v1.SnapshotManifest) func() ([]byte, error) {
	return func() ([]byte, error) {
		key := path.Join(path.Dir(m.ManifestKey()), v1.SealedManifestName)
		rc, err := dest.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, 16<<20))
	}
}

// checkObjectHash reads a stored object and compares its size and SHA-256
// with the manifest, without decoding it.
func checkObjectHash(ctx context.Context, dest drivers.Destination, m *v1.SnapshotManifest, ob v1.SnapshotObject) error {
	where := fmt.Sprintf("snapshot %s, object %s", m.ID, ob.Key)
	rc, err := dest.Get(ctx, m.ObjectKey(ob))
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return fmt.Errorf("%s: read: %w", where, err)
	}
	if n != ob.Size {
		return fmt.Errorf("%s: stored size %d differs from the manifest's %d: the object is damaged", where, n, ob.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ob.SHA256 {
		return fmt.Errorf("%s: SHA-256 %s differs from the manifest's %s: the object is damaged or was replaced", where, got, ob.SHA256)
	}
	return nil
}

// openObject opens a data object, checks its size, and returns the decoded
// raw stream plus a check to call after reading it to the end, which
// compares the SHA-256 of the stored bytes with the manifest.
func openObject(ctx context.Context, dest drivers.Destination, m *v1.SnapshotManifest, ob v1.SnapshotObject, dec *decoder) (io.Reader, func() error, func(), error) {
	if m.Deduplicated() {
		// A chunk is checked against its keyed ID before a byte of it is
		// passed on, in every encryption mode.
		return openDedupObject(ctx, dest, m, ob, dec)
	}
	key := m.ObjectKey(ob)
	where := fmt.Sprintf("snapshot %s, object %s", m.ID, ob.Key)
	info, err := dest.Stat(ctx, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	if info.Size != ob.Size {
		return nil, nil, nil, fmt.Errorf("%s: stored size %d differs from the manifest's %d: the object is damaged", where, info.Size, ob.Size)
	}
	rc, err := dest.Get(ctx, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	hr := &hashReader{r: rc, h: sha256.New()}
	dr, err := dec.decode(m, hr)
	if err != nil {
		rc.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	// The decoded stream may never outgrow the manifest's rawSize: a
	// damaged or crafted object is stopped there, not written out in full.
	raw := &countReader{ReadCloser: limitedReadCloser{Reader: files.LimitRaw(ctx, dr, ob.RawSize), Closer: dr}}
	check := func() error {
		// Read what the consumer did not need (tar padding, trailers), so
		// the counts and the hash cover every byte. A damaged object is
		// reported by its hash first: that says more than a decoder error.
		_, derr := io.Copy(io.Discard, raw)
		if _, err := io.Copy(io.Discard, hr); err != nil {
			return fmt.Errorf("%s: read: %w", where, err)
		}
		if hr.n != ob.Size {
			return fmt.Errorf("%s: read %d bytes, the manifest says %d: the object is damaged", where, hr.n, ob.Size)
		}
		if got := hex.EncodeToString(hr.h.Sum(nil)); got != ob.SHA256 {
			return fmt.Errorf("%s: SHA-256 %s differs from the manifest's %s: the object is damaged or was replaced", where, got, ob.SHA256)
		}
		if derr != nil {
			return fmt.Errorf("%s: %w", where, derr)
		}
		if raw.n != ob.RawSize {
			return fmt.Errorf("%s: decodes to %d bytes, the manifest says %d: the object is damaged", where, raw.n, ob.RawSize)
		}
		return nil
	}
	closeFn := func() { raw.Close(); rc.Close() }
	return &errPrefixReader{r: raw, where: where}, check, closeFn, nil
}

func restoreObject(ctx context.Context, dest drivers.Destination, m *v1.SnapshotManifest, ob v1.SnapshotObject, dec *decoder, dir string,
	unpack func(context.Context, v1.SnapshotObject, io.Reader) (files.ExtractStats, error), log *slog.Logger) (files.ExtractStats, error) {
	raw, check, closeFn, err := openObject(ctx, dest, m, ob, dec)
	if err != nil {
		return files.ExtractStats{}, err
	}
	defer closeFn()
	var st files.ExtractStats
	switch {
	case unpack != nil:
		st, err = unpack(ctx, ob, raw)
	case ob.Format == "tar":
		st, err = files.Extract(ctx, raw, dir, files.ExtractOptions{Logger: log})
		if _, partial := err.(*files.IncompleteError); err == nil || partial {
			// Read the tar's end padding, so the hash covers every byte,
			// keeping the entries not restored.
			if _, cerr := io.Copy(io.Discard, raw); cerr != nil {
				err = cerr
			}
		}
	default:
		st, err = writeRaw(ctx, raw, dir, ob.Name)
	}
	if cerr := check(); cerr != nil {
		return st, cerr
	}
	return st, err
}

// writeRaw stores a non-tar object (a database dump) as a new file, owned
// by root with mode 0600, never through what is already there.
func writeRaw(ctx context.Context, r io.Reader, dir, name string) (files.ExtractStats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return files.ExtractStats{}, err
	}
	defer root.Close()
	n, err := files.WriteNew(ctx, root, name, r, 0o600, 0, 0)
	return files.ExtractStats{Files: 1, Bytes: n}, err
}

// VerifyResult is what verify found of one snapshot.
type VerifyResult struct {
	Snapshot Snapshot
	Objects  int
	Bytes    int64
	Err      error
}

// Verify reads every object of a snapshot back from dest, checks size and
// SHA-256, decrypts, decompresses and parses it to the end, writing nothing.
func Verify(ctx context.Context, dest drivers.Destination, snap Snapshot, keys *KeyRing) VerifyResult {
	res := VerifyResult{Snapshot: snap}
	dec := &decoder{keys: keys}
	m := snap.Manifest
	if err := dec.authenticate(m, sealedReader(ctx, dest, m)); err != nil {
		res.Err = err
		return res
	}
	for _, ob := range m.Objects {
		raw, check, closeFn, err := openObject(ctx, dest, m, ob, dec)
		if err != nil {
			res.Err = err
			return res
		}
		var n int64
		if ob.Format == "tar" {
			// Parse to the end without expanding sparse holes: the work is
			// bounded by what is stored, and ctx stops it.
			n, err = files.ScanTar(ctx, raw)
			if err == nil {
				_, err = io.Copy(io.Discard, raw)
			}
		} else {
			n, err = io.Copy(io.Discard, raw)
		}
		if cerr := check(); cerr != nil {
			err = cerr
		}
		closeFn()
		if err != nil {
			res.Err = err // already names the snapshot and object
			return res
		}
		res.Objects++
		res.Bytes += n
	}
	return res
}

type limitedReadCloser struct {
	io.Reader
	io.Closer
}

type countReader struct {
	io.ReadCloser
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// errPrefixReader names the snapshot and object in decoding errors.
type errPrefixReader struct {
	r     io.Reader
	where string
}

func (e *errPrefixReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", e.where, err)
	}
	return n, err
}
