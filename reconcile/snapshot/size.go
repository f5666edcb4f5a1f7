package snapshot

import (
	"path"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// Sizes: a snapshot's size, wherever Aegis shows one (status, snapshots,
// verify, prune), is its stored bytes: everything in its directory on the
// destination (the data objects as stored, compressed and encrypted, its
// sealed manifest and manifest.json), what deleting it frees.

// dirSizes sums the stored sizes of the objects listed, by directory.
func dirSizes(objs []drivers.ObjectInfo) map[string]int64 {
	sizes := map[string]int64{}
	for _, o := range objs {
		sizes[path.Dir(o.Key)] += o.Size
	}
	return sizes
}

// dataSize is the stored size of a snapshot's data objects: what a restore
// or a verify reads.
func dataSize(m *v1.SnapshotManifest) int64 {
	var n int64
	for _, ob := range m.Objects {
		n += ob.Size
	}
	return n
}
