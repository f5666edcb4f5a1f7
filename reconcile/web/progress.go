package web

import (
	"sort"
	"sync"

	"github.com/aegis-backup/aegis/reconcile/observe"
)

// Progress hears the progress of the backups the agent process runs, for
// the overview's live view. Give it to the agent in
// reconcile.ObserveOptions.Progress (with observe.MultiProgress when a
// terminal also shows bars).
type Progress struct {
	mu    sync.Mutex
	items map[string]*progressItem
}

type progressItem struct {
	total, done int64
}

// ProgressItemView is one item of a run in progress.
type ProgressItemView struct {
	Item    string `json:"item"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Text    string `json:"text"`
	Percent int    `json:"percent"`
}

// NewProgress returns an empty Progress.
func NewProgress() *Progress { return &Progress{items: map[string]*progressItem{}} }

// Begin starts an item.
func (p *Progress) Begin(item string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.items[item] = &progressItem{total: total}
}

// Add counts n more bytes of item.
func (p *Progress) Add(item string, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if it, ok := p.items[item]; ok {
		it.done += n
	}
}

// End ends item.
func (p *Progress) End(item string, _ error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.items, item)
}

// Snapshot lists the items in progress, sorted.
func (p *Progress) Snapshot() []ProgressItemView {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProgressItemView, 0, len(p.items))
	for name, it := range p.items {
		v := ProgressItemView{Item: name, Done: it.done, Total: it.total, Text: observe.FormatBytes(it.done)}
		if it.total > 0 {
			v.Percent = int(min(100, it.done*100/it.total))
			v.Text += " of ~" + observe.FormatBytes(it.total)
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Item < out[j].Item })
	return out
}

var _ observe.Progress = (*Progress)(nil)
