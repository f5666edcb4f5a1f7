package dedup

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aegis-backup/aegis/drivers"
)

// Mark is the JSON stored under _dedup/prune/: packs a prune found
// unreferenced at Time. A later prune deletes them once the grace period has
// passed since Time, if they are still unreferenced then. While a mark
// exists, backups do not reuse chunks of the packs it lists.
type Mark struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Packs   []string  `json:"packs"`
}

type markSet struct {
	packs map[string]bool
	marks map[string]Mark // key → mark
}

func loadMarks(ctx context.Context, dest drivers.Destination, repo string) (markSet, error) {
	ms := markSet{packs: map[string]bool{}, marks: map[string]Mark{}}
	objs, err := dest.List(ctx, repo+"prune/")
	if err != nil {
		return ms, fmt.Errorf("list prune marks under %s: %w", repo, err)
	}
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		rc, err := dest.Get(ctx, o.Key)
		if err != nil {
			return ms, fmt.Errorf("read prune mark %s: %w", o.Key, err)
		}
		var m Mark
		err = json.NewDecoder(rc).Decode(&m)
		rc.Close()
		if err != nil {
			return ms, fmt.Errorf("read prune mark %s: %w", o.Key, err)
		}
		ms.marks[o.Key] = m
		for _, p := range m.Packs {
			ms.packs[p] = true
		}
	}
	return ms, nil
}
