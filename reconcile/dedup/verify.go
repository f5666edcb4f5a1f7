package dedup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"

	"github.com/aegis-backup/aegis/drivers"
)

// VerifyOptions chooses how deep Verify looks.
type VerifyOptions struct {
	// ReadData reads packs: each pack's SHA-256 against its name, its tar
	// headers against the indexes, and each chunk decrypted and checked
	// against its keyed ID. Key and Opener are then required.
	ReadData bool
	// Subset, in (0, 1), reads only that fraction of the packs (at least
	// one), chosen with Rand; 0 or 1 reads them all.
	Subset float64
	Rand   *rand.Rand
	Key    Key
	Opener Opener
}

// VerifyReport lists what Verify found wrong, one sentence per problem,
// naming the index, pack or chunk. No problems means the repository passed.
type VerifyReport struct {
	Problems   []string
	Packs      int // packs listed
	PacksRead  int // packs read with ReadData
	ChunksOpen int // chunks decrypted and checked
	IndexFiles int
	Referenced int
}

// Verify checks repo on dest. Without ReadData it checks that every index
// parses, that every referenced chunk (from the snapshot manifests) is in an
// index, and that its pack exists with the size the index records. The error
// is for failures to list or read the repository, not for problems found.
func Verify(ctx context.Context, dest drivers.Destination, repo string, referenced []ID, opts VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	if opts.ReadData && opts.Opener == nil {
		return rep, errors.New("verify read-data: no opener")
	}
	problem := func(f string, a ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(f, a...)) }
	packs, err := listPacks(ctx, dest, repo)
	if err != nil {
		return rep, err
	}
	rep.Packs = len(packs)
	files, bad, err := loadIndexFiles(ctx, dest, repo)
	if err != nil {
		return rep, err
	}
	rep.IndexFiles = len(files) + len(bad)
	rep.Problems = append(rep.Problems, bad...)
	x := NewIndex()
	byPack := map[string]PackEntry{}
	for _, f := range files {
		for _, p := range f.file.Packs {
			x.AddPack(p)
			byPack[p.ID] = p
		}
	}
	indexed := make([]string, 0, len(byPack))
	for id := range byPack {
		indexed = append(indexed, id)
	}
	sort.Strings(indexed)
	for _, id := range indexed {
		e := byPack[id]
		o, ok := packs[id]
		switch {
		case !ok:
			problem("pack %s: listed in an index but missing", id)
		case o.Size != e.Size:
			problem("pack %s: size %d, index says %d", id, o.Size, e.Size)
		}
	}
	seen := map[ID]bool{}
	for _, id := range referenced {
		if seen[id] {
			continue
		}
		seen[id] = true
		loc, ok := x.Lookup(id)
		if !ok {
			problem("chunk %s: referenced but in no index", id)
			continue
		}
		if o, ok := packs[loc.Pack]; ok && loc.Offset+loc.Length > o.Size {
			problem("chunk %s: pack %s ends at %d, before the chunk's end %d", id, loc.Pack, o.Size, loc.Offset+loc.Length)
		}
	}
	rep.Referenced = len(seen)
	if !opts.ReadData {
		return rep, nil
	}
	for _, id := range packsToRead(packs, opts) {
		probs, opened, err := verifyPack(ctx, dest, repo, id, byPack[id], opts)
		if err != nil {
			return rep, err
		}
		rep.PacksRead++
		rep.ChunksOpen += opened
		rep.Problems = append(rep.Problems, probs...)
	}
	return rep, nil
}

// packsToRead returns the packs ReadData reads: all of them, or a random
// share (at least one) with Subset.
func packsToRead(packs map[string]drivers.ObjectInfo, opts VerifyOptions) []string {
	ids := make([]string, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if opts.Subset > 0 && opts.Subset < 1 {
		n := int(float64(len(ids))*opts.Subset + 0.999999)
		r := opts.Rand
		if r == nil {
			r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		ids = ids[:n]
		sort.Strings(ids)
	}
	return ids
}

// verifyPack reads one pack and compares it with its name, its index entry
// and its chunks' IDs.
func verifyPack(ctx context.Context, dest drivers.Destination, repo, id string, e PackEntry, opts VerifyOptions) ([]string, int, error) {
	key := PackKey(repo, id)
	rc, err := dest.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read pack %s: %w", key, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("read pack %s: %w", key, err)
	}
	var probs []string
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != id {
		probs = append(probs, fmt.Sprintf("pack %s: content does not match its name (sha256 %s)", id, got))
	}
	if e.ID == "" {
		probs = append(probs, fmt.Sprintf("pack %s: in no index", id))
	}
	want := map[ID]Location{}
	for _, c := range e.Chunks {
		want[c.ID] = c.Location
	}
	cr := &countingReader{r: bytes.NewReader(data)}
	tr := tar.NewReader(cr)
	opened := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			probs = append(probs, fmt.Sprintf("pack %s: not a readable tar: %v", id, err))
			break
		}
		cid, err := ParseID(hdr.Name)
		if err != nil {
			probs = append(probs, fmt.Sprintf("pack %s: member %q is not a chunk", id, hdr.Name))
			continue
		}
		off := cr.n
		if l, ok := want[cid]; e.ID != "" && (!ok || l.Offset != off || l.Length != hdr.Size) {
			probs = append(probs, fmt.Sprintf("pack %s: chunk %s at offset %d length %d disagrees with the index", id, cid, off, hdr.Size))
		}
		delete(want, cid)
		sealed := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, sealed); err != nil {
			probs = append(probs, fmt.Sprintf("pack %s: chunk %s: %v", id, cid, err))
			break
		}
		if _, err := openChunk(opts.Key, opts.Opener, cid, id, sealed); err != nil {
			probs = append(probs, err.Error())
		}
		opened++
	}
	var missing []string
	for cid := range want {
		missing = append(missing, fmt.Sprintf("pack %s: index lists chunk %s that the pack does not hold", id, cid))
	}
	sort.Strings(missing)
	return append(probs, missing...), opened, nil
}

type keyedIndex struct {
	key  string
	file *IndexFile
}

// loadIndexFiles reads every index file; unreadable ones are returned as
// problems rather than errors, so that they can be rebuilt.
func loadIndexFiles(ctx context.Context, dest drivers.Destination, repo string) ([]keyedIndex, []string, error) {
	objs, err := dest.List(ctx, repo+"index/")
	if err != nil {
		return nil, nil, fmt.Errorf("list indexes under %s: %w", repo, err)
	}
	var out []keyedIndex
	var bad []string
	for _, o := range objs {
		f, err := readIndexFile(ctx, dest, o.Key)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		out = append(out, keyedIndex{key: o.Key, file: f})
	}
	return out, bad, nil
}
