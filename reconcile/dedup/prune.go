package dedup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

// Prune defaults.
const (
	// DefaultGrace is how long a pack stays marked before deletion, and how
	// old an unreferenced pack must be to be marked. A backup run must
	// commit its manifest within Grace of Writer.Commit; a run that takes
	// longer than Grace in total fails at Commit instead (ErrConcurrentPrune)
	// and loses nothing.
	DefaultGrace = 48 * time.Hour
	// DefaultRepackBelow repacks a pack when less than this fraction of its
	// bytes belongs to chunks snapshots still reference.
	DefaultRepackBelow = 0.5
)

// PruneOptions configures PlanPrune and Prune.
type PruneOptions struct {
	Grace       time.Duration // 0 means DefaultGrace
	RepackBelow float64       // 0 means DefaultRepackBelow; negative disables repacking
	PackSize    int           // size of packs a repack writes; 0 means DefaultPackSize
}

func (o PruneOptions) withDefaults() PruneOptions {
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.RepackBelow == 0 {
		o.RepackBelow = DefaultRepackBelow
	}
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	return o
}

// PruneState is what a prune looks at: the packs listed, the index files and
// prune marks read, all taken after Now.
type PruneState struct {
	Now     time.Time
	Packs   map[string]drivers.ObjectInfo // pack ID → listing
	Indexes []IndexFile
	Marks   map[string]Mark // mark key → mark
}

// PrunePlan is what a prune does, in this order: repack Repack (copy their
// live chunks to new packs), then write one mark listing Mark and the
// repacked packs, delete Delete, rewrite the indexes without them and
// replace the old marks by ones that no longer list Delete or Unmark.
type PrunePlan struct {
	Mark   []string // unreferenced packs older than Grace, marked now
	Delete []string // packs marked at least Grace ago and still unreferenced
	Unmark []string // marked packs a snapshot references again
	Repack []string // packs mostly unreferenced, older than Grace
	// RepackChunks are the live chunks of Repack, in pack order.
	RepackChunks map[string][]ChunkEntry
	// FreedBytes is the size of Delete.
	FreedBytes int64
}

// ErrUnlocatedChunk is returned when a snapshot references a chunk no index
// places: the indexes must be rebuilt (RebuildIndex) before pruning, since an
// unindexed pack may hold it.
var ErrUnlocatedChunk = errors.New("referenced chunk in no index")

// PlanPrune decides what a prune does; it does no I/O. referenced holds
// every chunk ID the repository's snapshot manifests list, read after
// st.Now. Each referenced chunk is kept in one chosen copy (in an unmarked
// pack when there is one, the smallest pack ID first); a pack that is the
// chosen copy of nothing is unreferenced.
//
// Safety against concurrent backups (two-phase): a pack is deleted only if
// it was marked at least Grace before st.Now and is still unreferenced by
// the manifests read after st.Now. Backups do not reuse chunks of marked
// packs and refuse to commit when a pack they reused was marked meanwhile;
// a manifest that reuses a pack is written within Grace of that check, so it
// is among the manifests a deleting prune reads.
func PlanPrune(st PruneState, referenced map[ID]bool, opts PruneOptions) (PrunePlan, error) {
	opts = opts.withDefaults()
	marked := map[string]time.Time{}
	for _, m := range st.Marks {
		for _, p := range m.Packs {
			if t, ok := marked[p]; !ok || m.Time.Before(t) {
				marked[p] = m.Time
			}
		}
	}
	copies, entries := chunkCopies(st)
	liveBytes := map[string]int64{}
	live := map[string]map[ID]bool{}
	ids := make([]ID, 0, len(referenced))
	for id := range referenced {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	for _, id := range ids {
		ps := copies[id]
		if len(ps) == 0 {
			return PrunePlan{}, fmt.Errorf("chunk %s: %w", id, ErrUnlocatedChunk)
		}
		sort.Strings(ps)
		keep := ps[0]
		for _, p := range ps {
			if _, m := marked[p]; !m {
				keep = p
				break
			}
		}
		if live[keep] == nil {
			live[keep] = map[ID]bool{}
		}
		live[keep][id] = true
	}
	var plan PrunePlan
	plan.RepackChunks = map[string][]ChunkEntry{}
	packIDs := make([]string, 0, len(st.Packs))
	for id := range st.Packs {
		packIDs = append(packIDs, id)
	}
	sort.Strings(packIDs)
	for _, id := range packIDs {
		info := st.Packs[id]
		old := st.Now.Sub(info.ModTime) >= opts.Grace
		markTime, isMarked := marked[id]
		e := entries[id]
		for _, c := range e.Chunks {
			if live[id][c.ID] {
				liveBytes[id] += c.Length + 512 // the tar header
			}
		}
		switch {
		case isMarked && len(live[id]) > 0:
			plan.Unmark = append(plan.Unmark, id)
		case isMarked:
			if st.Now.Sub(markTime) >= opts.Grace {
				plan.Delete = append(plan.Delete, id)
				plan.FreedBytes += info.Size
			}
		case !old:
			// Too young: a backup may be about to reference it.
		case len(live[id]) == 0:
			plan.Mark = append(plan.Mark, id)
		case opts.RepackBelow > 0 && float64(liveBytes[id]) < opts.RepackBelow*float64(info.Size):
			plan.Repack = append(plan.Repack, id)
			for _, c := range e.Chunks {
				if live[id][c.ID] {
					plan.RepackChunks[id] = append(plan.RepackChunks[id], c)
				}
			}
		}
	}
	return plan, nil
}

// chunkCopies returns, for each chunk, the existing packs holding it, and
// each existing pack's index entry.
func chunkCopies(st PruneState) (map[ID][]string, map[string]PackEntry) {
	copies := map[ID][]string{}
	entries := map[string]PackEntry{}
	for _, f := range st.Indexes {
		for _, p := range f.Packs {
			if _, ok := st.Packs[p.ID]; !ok {
				continue
			}
			if _, dup := entries[p.ID]; dup {
				continue
			}
			entries[p.ID] = p
			for _, c := range p.Chunks {
				copies[c.ID] = append(copies[c.ID], p.ID)
			}
		}
	}
	return copies, entries
}

// LoadPruneState lists and reads what PlanPrune needs from repo on dest.
// now must be taken before the caller lists the snapshot manifests. Index
// files that cannot be read fail the load: prune only runs on a repository
// whose indexes are sound (RebuildIndex first).
func LoadPruneState(ctx context.Context, dest drivers.Destination, repo string, now time.Time) (PruneState, []string, error) {
	st := PruneState{Now: now}
	var err error
	if st.Packs, err = listPacks(ctx, dest, repo); err != nil {
		return st, nil, err
	}
	files, bad, err := loadIndexFiles(ctx, dest, repo)
	if err != nil {
		return st, nil, err
	}
	if len(bad) > 0 {
		return st, nil, fmt.Errorf("load indexes: %s", bad[0])
	}
	var keys []string
	for _, f := range files {
		st.Indexes = append(st.Indexes, *f.file)
		keys = append(keys, f.key)
	}
	ms, err := loadMarks(ctx, dest, repo)
	if err != nil {
		return st, nil, err
	}
	st.Marks = ms.marks
	return st, keys, nil
}

// Prune carries out plan on repo of dest. st and indexKeys come from
// LoadPruneState. Repacked chunks are copied sealed, as they are (no key is
// needed); each source pack is checked against its SHA-256 first.
func Prune(ctx context.Context, dest drivers.Destination, repo string, st PruneState, indexKeys []string, plan PrunePlan, opts PruneOptions) error {
	opts = opts.withDefaults()
	// 1. Repack: new packs and their index first, so the live chunks have
	// a second home before the old pack is marked.
	if err := repack(ctx, dest, repo, st, plan, opts); err != nil {
		return err
	}
	// 2. Mark what is unreferenced now, and what was repacked.
	if toMark := append(append([]string{}, plan.Mark...), plan.Repack...); len(toMark) > 0 {
		if _, err := writeMark(ctx, dest, repo, Mark{Version: 1, Time: st.Now, Packs: toMark}); err != nil {
			return err
		}
	}
	if len(plan.Delete) == 0 && len(plan.Unmark) == 0 {
		return nil
	}
	// 3. Delete, then rewrite the indexes read without the deleted packs,
	// then the marks without deleted and unmarked packs.
	gone := map[string]bool{}
	for _, id := range plan.Delete {
		key := PackKey(repo, id)
		if err := dest.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete pack %s: %w", key, err)
		}
		gone[id] = true
	}
	if err := rewriteIndexes(ctx, dest, repo, st, indexKeys, gone); err != nil {
		return err
	}
	return rewriteMarks(ctx, dest, repo, st, plan, gone)
}

// repack copies the live chunks of plan.Repack into new packs, then writes
// their index.
func repack(ctx context.Context, dest drivers.Destination, repo string, st PruneState, plan PrunePlan, opts PruneOptions) error {
	var written []PackEntry
	var pb *packBuilder
	flush := func() error {
		if pb == nil {
			return nil
		}
		id, data, err := pb.finish()
		if err != nil {
			return fmt.Errorf("finish pack: %w", err)
		}
		key := PackKey(repo, id)
		if _, err := dest.Put(ctx, key, bytes.NewReader(data)); err != nil {
			return fmt.Errorf("upload pack %s: %w", key, err)
		}
		written = append(written, PackEntry{ID: id, Size: int64(len(data)), Chunks: pb.chunks})
		pb = nil
		return nil
	}
	for _, id := range plan.Repack {
		data, err := readPackChecked(ctx, dest, repo, id)
		if err != nil {
			return err
		}
		for _, c := range plan.RepackChunks[id] {
			if pb == nil {
				pb = newPackBuilder(st.Now, opts.PackSize)
			}
			if err := pb.add(c.ID, data[c.Offset:c.Offset+c.Length], c.RawLength); err != nil {
				return fmt.Errorf("repack chunk %s: %w", c.ID, err)
			}
			if pb.buf.Len() >= opts.PackSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if len(written) > 0 {
		if _, err := writeIndexFile(ctx, dest, repo, written); err != nil {
			return err
		}
	}
	return nil
}

// readPackChecked reads a whole pack and checks it against its name.
func readPackChecked(ctx context.Context, dest drivers.Destination, repo, id string) ([]byte, error) {
	key := PackKey(repo, id)
	rc, err := dest.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read pack %s: %w", key, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read pack %s: %w", key, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != id {
		return nil, fmt.Errorf("repack %s: content does not match its name", key)
	}
	return data, nil
}

// rewriteIndexes replaces the index files read (indexKeys) by one listing
// their packs that still exist and are not gone.
func rewriteIndexes(ctx context.Context, dest drivers.Destination, repo string, st PruneState, indexKeys []string, gone map[string]bool) error {
	var keep []PackEntry
	seen := map[string]bool{}
	for _, f := range st.Indexes {
		for _, p := range f.Packs {
			if gone[p.ID] || seen[p.ID] {
				continue
			}
			if _, ok := st.Packs[p.ID]; !ok {
				continue
			}
			seen[p.ID] = true
			keep = append(keep, p)
		}
	}
	newIndex := ""
	if len(keep) > 0 {
		var err error
		if newIndex, err = writeIndexFile(ctx, dest, repo, keep); err != nil {
			return err
		}
	}
	for _, k := range indexKeys {
		if k == newIndex {
			continue
		}
		if err := dest.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete index %s: %w", k, err)
		}
	}
	return nil
}

// rewriteMarks drops deleted and unmarked packs from the prune marks.
func rewriteMarks(ctx context.Context, dest drivers.Destination, repo string, st PruneState, plan PrunePlan, gone map[string]bool) error {
	drop := map[string]bool{}
	for _, id := range plan.Unmark {
		drop[id] = true
	}
	for k, m := range st.Marks {
		var rest []string
		for _, p := range m.Packs {
			if !gone[p] && !drop[p] {
				rest = append(rest, p)
			}
		}
		if len(rest) == len(m.Packs) {
			continue
		}
		if len(rest) > 0 {
			nk, err := writeMark(ctx, dest, repo, Mark{Version: 1, Time: m.Time, Packs: rest})
			if err != nil {
				return err
			}
			if nk == k {
				continue
			}
		}
		if err := dest.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete prune mark %s: %w", k, err)
		}
	}
	return nil
}

func writeMark(ctx context.Context, dest drivers.Destination, repo string, m Mark) (string, error) {
	sort.Strings(m.Packs)
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	key := markKey(repo, hex.EncodeToString(sum[:]))
	if _, err := dest.Put(ctx, key, bytes.NewReader(b)); err != nil {
		return "", fmt.Errorf("upload prune mark %s: %w", key, err)
	}
	return key, nil
}
