package snapshot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/dedup"
)

// VerifyOptions say how deep verify reads a deduplicated snapshot. An
// archive snapshot is always read in full.
type VerifyOptions struct {
	// ReadData reads, decrypts and checks every chunk of the snapshot and
	// the SHA-256 of each object's stream. Without it, verify checks the
	// manifest, the repository's indexes, and that every chunk the
	// snapshot references is in a pack of the recorded size.
	ReadData bool
	// Subset, in (0, 1], also reads that fraction of the repository's
	// packs (chosen at random), checking each chunk in them.
	Subset float64
	Rand   *rand.Rand
}

// ParseSubset reads a --read-data-subset value: "10%" or "0.1".
func ParseSubset(s string) (float64, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(v, 64)
	if pct {
		f /= 100
	}
	if err != nil || f <= 0 || f > 1 {
		return 0, fmt.Errorf("read-data subset %q: give a share such as 10%% or 0.1 (above 0, at most 100%%)", s)
	}
	return f, nil
}

// verifyDedup checks a deduplicated snapshot without reading every chunk.
func verifyDedup(ctx context.Context, dest drivers.Destination, snap Snapshot, keys *KeyRing, opts VerifyOptions) VerifyResult {
	res := VerifyResult{Snapshot: snap}
	m := snap.Manifest
	dec := &decoder{keys: keys}
	if err := dec.authenticate(m, sealedReader(ctx, dest, m)); err != nil {
		res.Err = err
		return res
	}
	var referenced []dedup.ID
	for _, ob := range m.Objects {
		refs, err := chunkRefs(m, ob)
		if err != nil {
			res.Err = err
			return res
		}
		for _, r := range refs {
			referenced = append(referenced, r.ID)
		}
		res.Objects++
		res.Bytes += ob.RawSize
	}
	vo := dedup.VerifyOptions{ReadData: opts.Subset > 0, Subset: opts.Subset, Rand: opts.Rand}
	if vo.ReadData {
		key, err := readDedupKey(ctx, dest, m, dec)
		if err != nil {
			res.Err = err
			return res
		}
		vo.Key, vo.Opener = key, chunkOpener{dec: dec, m: m}
	}
	repo := dedup.RepoPrefix(m.Host, m.Policy)
	rep, err := dedup.Verify(ctx, dest, repo, referenced, vo)
	switch {
	case err != nil:
		res.Err = fmt.Errorf("snapshot %s: verify repository %s: %w", m.ID, repo, err)
	case len(rep.Problems) > 0:
		res.Err = fmt.Errorf("snapshot %s: repository %s: %s", m.ID, repo, strings.Join(rep.Problems, "; "))
	}
	return res
}
