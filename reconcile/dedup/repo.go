package dedup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

// RepoPrefix returns the repository area of HOST/POLICY on a destination.
// One repository per host and policy: its snapshots share chunks across
// sources and runs, while nothing another host or policy writes or prunes
// can touch it (docs/dedup.md says why).
func RepoPrefix(host, policy string) string { return host + "/" + policy + "/_dedup/" }

// PackKey returns the key of the pack whose ID (the SHA-256 of its bytes,
// hex) is packID, under the repository prefix repo.
func PackKey(repo, packID string) string {
	return repo + "packs/" + packID[:2] + "/" + packID + ".tar"
}

func indexKey(repo, indexID string) string { return repo + "index/" + indexID + ".json" }
func markKey(repo, markID string) string   { return repo + "prune/" + markID + ".json" }

// packIDFromKey returns the pack ID of a pack key, or "" for any other key
// (a temporary upload, a stray file).
func packIDFromKey(key string) string {
	base := path.Base(key)
	id, ok := strings.CutSuffix(base, ".tar")
	if !ok || len(id) != 64 || path.Base(path.Dir(key)) != id[:2] {
		return ""
	}
	if _, err := hex.DecodeString(id); err != nil {
		return ""
	}
	return id
}

// Location says where a sealed chunk lies: in pack Pack, Length bytes from
// byte Offset (the tar member's data, after its header). RawLength is the
// chunk's plaintext size.
type Location struct {
	Pack      string `json:"-"`
	Offset    int64  `json:"offset"`
	Length    int64  `json:"length"`
	RawLength int64  `json:"rawLength"`
}

// IndexFile is the JSON stored under _dedup/index/: the chunks of each pack
// it lists. A pack may appear in several index files (after a rebuild or a
// repack); a chunk may appear in several packs; any listed copy is valid.
type IndexFile struct {
	Version int         `json:"version"`
	Packs   []PackEntry `json:"packs"`
}

// PackEntry lists one pack's chunks in the order they lie in it.
type PackEntry struct {
	ID     string       `json:"id"`
	Size   int64        `json:"size"`
	Chunks []ChunkEntry `json:"chunks"`
}

// ChunkEntry is one chunk of a pack.
type ChunkEntry struct {
	ID ID `json:"id"`
	Location
}

// packBuilder assembles one pack in memory: a tar whose members are sealed
// chunks named by their ID.
type packBuilder struct {
	buf    bytes.Buffer
	tw     *tar.Writer
	chunks []ChunkEntry
	mtime  time.Time
}

func newPackBuilder(mtime time.Time, size int) *packBuilder {
	p := &packBuilder{mtime: mtime}
	// One allocation for the whole pack: growing by doubling would copy it
	// several times and briefly hold twice its size.
	p.buf.Grow(size + MaxChunk + 64<<10)
	p.tw = tar.NewWriter(&p.buf)
	return p
}

// add appends a sealed chunk.
func (p *packBuilder) add(id ID, sealed []byte, rawLength int64) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     id.String(),
		Size:     int64(len(sealed)),
		Mode:     0o600,
		ModTime:  p.mtime,
		Format:   tar.FormatPAX,
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return err
	}
	// tar.Writer writes the header at once, so the data starts here.
	off := int64(p.buf.Len())
	if _, err := p.tw.Write(sealed); err != nil {
		return err
	}
	p.chunks = append(p.chunks, ChunkEntry{ID: id, Location: Location{Offset: off, Length: int64(len(sealed)), RawLength: rawLength}})
	return nil
}

// finish closes the tar and returns the pack's ID and bytes.
func (p *packBuilder) finish() (string, []byte, error) {
	if err := p.tw.Close(); err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(p.buf.Bytes())
	return hex.EncodeToString(sum[:]), p.buf.Bytes(), nil
}

// Index maps chunk IDs to one location each, built from a repository's index
// files (LoadIndex) or its packs (RebuildIndex). It is not safe for
// concurrent mutation. It costs about 120 bytes of memory per chunk
// (BenchmarkIndexMemory): a compact entry per chunk, the pack named by a
// number.
type Index struct {
	chunks   map[ID]compactLoc
	packs    map[string]int64 // pack ID → size
	packNums map[string]uint32
	packIDs  []string
}

// compactLoc is a Location in 16 bytes: packs are far below 4 GiB.
type compactLoc struct {
	pack, offset, length, raw uint32
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{chunks: make(map[ID]compactLoc), packs: make(map[string]int64), packNums: make(map[string]uint32)}
}

// Has reports whether the index knows chunk id.
func (x *Index) Has(id ID) bool { _, ok := x.chunks[id]; return ok }

// Lookup returns where chunk id lies.
func (x *Index) Lookup(id ID) (Location, bool) {
	l, ok := x.chunks[id]
	if !ok {
		return Location{}, false
	}
	return Location{Pack: x.packIDs[l.pack], Offset: int64(l.offset), Length: int64(l.length), RawLength: int64(l.raw)}, true
}

// Len returns the number of chunks known.
func (x *Index) Len() int { return len(x.chunks) }

// Packs returns the IDs of the packs the index lists, sorted.
func (x *Index) Packs() []string {
	out := make([]string, 0, len(x.packs))
	for p := range x.packs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// AddPack records the chunks of one pack. A chunk already known keeps its
// first location. Entries that do not fit a pack (offsets or sizes of 4 GiB
// or more) are ignored: Aegis never writes such packs.
func (x *Index) AddPack(e PackEntry) {
	x.packs[e.ID] = e.Size
	n, ok := x.packNums[e.ID]
	if !ok {
		n = uint32(len(x.packIDs))
		x.packNums[e.ID] = n
		x.packIDs = append(x.packIDs, e.ID)
	}
	for _, c := range e.Chunks {
		if _, ok := x.chunks[c.ID]; ok {
			continue
		}
		if c.Offset < 0 || c.Offset+c.Length >= 1<<32 || c.Length < 0 || c.RawLength < 0 || c.RawLength >= 1<<32 {
			continue
		}
		x.chunks[c.ID] = compactLoc{pack: n, offset: uint32(c.Offset), length: uint32(c.Length), raw: uint32(c.RawLength)}
	}
}

// LoadIndex reads every index file of the repository repo on dest. Packs an
// index lists but that dest does not hold, and packs that a pending prune
// marked (see Prune), are left out: a backup must not reuse their chunks.
// Index files that cannot be read or do not match their name are skipped and
// named in problems; their chunks then count as absent (a backup uploads them
// again) until RebuildIndex indexes their packs.
func LoadIndex(ctx context.Context, dest drivers.Destination, repo string) (x *Index, problems []string, err error) {
	packs, err := listPacks(ctx, dest, repo)
	if err != nil {
		return nil, nil, err
	}
	marks, err := loadMarks(ctx, dest, repo)
	if err != nil {
		return nil, nil, err
	}
	files, problems, err := loadIndexFiles(ctx, dest, repo)
	if err != nil {
		return nil, nil, err
	}
	x = NewIndex()
	for _, f := range files {
		for _, p := range f.file.Packs {
			if _, ok := packs[p.ID]; !ok || marks.packs[p.ID] {
				continue
			}
			x.AddPack(p)
		}
	}
	return x, problems, nil
}

func readIndexFile(ctx context.Context, dest drivers.Destination, key string) (*IndexFile, error) {
	rc, err := dest.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", key, err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", key, err)
	}
	// Index files are named by the SHA-256 of their content: an edited or
	// truncated index is caught before it is believed.
	sum := sha256.Sum256(b)
	if name := strings.TrimSuffix(path.Base(key), ".json"); name != hex.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("read index %s: content does not match its name", key)
	}
	var f IndexFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("read index %s: %w", key, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("read index %s: unknown version %d", key, f.Version)
	}
	for _, p := range f.Packs {
		if len(p.ID) != 64 {
			return nil, fmt.Errorf("read index %s: bad pack id %q", key, p.ID)
		}
	}
	return &f, nil
}

func writeIndexFile(ctx context.Context, dest drivers.Destination, repo string, packs []PackEntry) (string, error) {
	b, err := json.Marshal(IndexFile{Version: 1, Packs: packs})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	key := indexKey(repo, hex.EncodeToString(sum[:]))
	if _, err := dest.Put(ctx, key, bytes.NewReader(b)); err != nil {
		return "", fmt.Errorf("upload index %s: %w", key, err)
	}
	return key, nil
}

// listPacks returns the packs of the repository: pack ID → object info.
func listPacks(ctx context.Context, dest drivers.Destination, repo string) (map[string]drivers.ObjectInfo, error) {
	objs, err := dest.List(ctx, repo+"packs/")
	if err != nil {
		return nil, fmt.Errorf("list packs under %s: %w", repo, err)
	}
	out := make(map[string]drivers.ObjectInfo, len(objs))
	for _, o := range objs {
		if id := packIDFromKey(o.Key); id != "" {
			out[id] = o
		}
	}
	return out, nil
}

// RebuildIndex reads the tar headers of every pack of repo on dest that no
// readable index lists (or of every pack when all is true), writes one index
// file for them, then deletes the index files that could not be read. It
// returns how many packs it indexed. A pack whose tar cannot be read is
// skipped and named in the returned error after the others were indexed.
// Rebuilt entries have RawLength 0: tar headers give only sealed sizes.
func RebuildIndex(ctx context.Context, dest drivers.Destination, repo string, all bool) (int, error) {
	packs, err := listPacks(ctx, dest, repo)
	if err != nil {
		return 0, err
	}
	files, _, err := loadIndexFiles(ctx, dest, repo)
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	readable := map[string]bool{}
	for _, f := range files {
		readable[f.key] = true
		if all {
			continue
		}
		for _, p := range f.file.Packs {
			known[p.ID] = true
		}
	}
	ids := make([]string, 0, len(packs))
	for id := range packs {
		if !known[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var entries []PackEntry
	var bad []string
	for _, id := range ids {
		e, err := scanPack(ctx, dest, PackKey(repo, id))
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		e.ID = id
		entries = append(entries, e)
	}
	if len(entries) > 0 {
		if _, err := writeIndexFile(ctx, dest, repo, entries); err != nil {
			return 0, err
		}
	}
	objs, err := dest.List(ctx, repo+"index/")
	if err != nil {
		return len(entries), fmt.Errorf("list indexes under %s: %w", repo, err)
	}
	for _, o := range objs {
		if readable[o.Key] || !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		if _, err := readIndexFile(ctx, dest, o.Key); err == nil {
			continue // written meanwhile by another agent
		}
		if err := dest.Delete(ctx, o.Key); err != nil {
			return len(entries), fmt.Errorf("delete unreadable index %s: %w", o.Key, err)
		}
	}
	if len(bad) > 0 {
		return len(entries), fmt.Errorf("rebuild index: %s", strings.Join(bad, "; "))
	}
	return len(entries), nil
}

// countingReader counts bytes read, to learn tar member offsets.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scanPack lists a pack's members from its tar headers. RawLength is unknown
// (0) from headers alone.
func scanPack(ctx context.Context, dest drivers.Destination, key string) (PackEntry, error) {
	rc, err := dest.Get(ctx, key)
	if err != nil {
		return PackEntry{}, fmt.Errorf("read pack %s: %w", key, err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	tr := tar.NewReader(cr)
	var e PackEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return PackEntry{}, fmt.Errorf("read pack %s: %w", key, err)
		}
		id, err := ParseID(hdr.Name)
		if err != nil {
			return PackEntry{}, fmt.Errorf("read pack %s: member %q: %w", key, hdr.Name, err)
		}
		// The reader has consumed exactly the header blocks: the data starts here.
		e.Chunks = append(e.Chunks, ChunkEntry{ID: id, Location: Location{Offset: cr.n, Length: hdr.Size}})
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return PackEntry{}, fmt.Errorf("read pack %s: %w", key, err)
	}
	e.Size = cr.n
	return e, nil
}
