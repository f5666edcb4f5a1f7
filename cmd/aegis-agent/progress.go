package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// termProgress draws one progress bar per item in flight (a source read, a
// destination written, a snapshot restored) at the bottom of a terminal,
// each with bytes, rate and, when the total is known or estimated from the
// last run, ETA. Log lines and output written through Wrap appear above the
// bars. A finished item leaves one line saying how it went.
type termProgress struct {
	out   io.Writer
	width func() int

	mu    sync.Mutex
	items []*termItem
	drawn int
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

type termItem struct {
	name  string
	bar   *progressbar.ProgressBar
	total int64
	n     int64
	start time.Time
}

func newTermProgress(f *os.File) *termProgress {
	return newTermProgressTo(f, func() int {
		w, _, err := term.GetSize(int(f.Fd()))
		if err != nil || w <= 0 {
			return 80
		}
		return w
	})
}

func newTermProgressTo(out io.Writer, width func() int) *termProgress {
	p := &termProgress{out: out, width: width, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *termProgress) loop() {
	defer close(p.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.clear()
			p.draw()
			p.mu.Unlock()
		}
	}
}

func (p *termProgress) newBar(name string, total int64) *progressbar.ProgressBar {
	max := total
	if max <= 0 {
		max = -1 // unknown: a spinner with bytes and rate
	}
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(io.Discard),
		progressbar.OptionSetDescription(fmt.Sprintf("%-24s", name)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSpinnerType(14),
		// No ticker goroutine of the bar's own: it would render while
		// draw reads the bar (a data race); draw redraws often enough.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetRenderBlankState(true),
	)
}

// Begin starts a bar.
func (p *termProgress) Begin(item string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.items = append(p.items, &termItem{name: item, bar: p.newBar(item, total), total: total, start: time.Now()})
}

func (p *termProgress) find(item string) *termItem {
	for _, it := range p.items {
		if it.name == item {
			return it
		}
	}
	return nil
}

// Add advances a bar. An estimate that turns out short grows, rather than
// showing a bar that is full while work goes on.
func (p *termProgress) Add(item string, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	it := p.find(item)
	if it == nil {
		return
	}
	it.n += n
	if it.total > 0 && it.n >= it.total {
		it.total = it.n + it.n/10 + 1
		it.bar.ChangeMax64(it.total)
	}
	_ = it.bar.Add64(n)
}

// End replaces a bar with a line saying how the item went.
func (p *termProgress) End(item string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	it := p.find(item)
	if it == nil {
		return
	}
	for i := range p.items {
		if p.items[i] == it {
			p.items = append(p.items[:i], p.items[i+1:]...)
			break
		}
	}
	took := time.Since(it.start)
	line := fmt.Sprintf("✓ %s  %s in %s", it.name, observe.FormatBytes(it.n), took.Round(100*time.Millisecond))
	if s := took.Seconds(); s > 0.5 {
		line += fmt.Sprintf(" (%s/s)", observe.FormatBytes(int64(float64(it.n)/s)))
	}
	if err != nil {
		line = fmt.Sprintf("✗ %s  failed after %s: %v", it.name, observe.FormatBytes(it.n), err)
	}
	p.clear()
	fmt.Fprintln(p.out, p.fit(line))
	p.draw()
}

// clear erases the bars drawn; the caller holds mu.
func (p *termProgress) clear() {
	if p.drawn == 0 {
		return
	}
	// Up to the first bar's line, then erase to the end of the screen.
	fmt.Fprintf(p.out, "\r\x1b[%dA\x1b[J", p.drawn)
	p.drawn = 0
}

// draw writes one line per bar, each ending with a newline so that the
// cursor rests below them; the caller holds mu.
func (p *termProgress) draw() {
	var b strings.Builder
	for _, it := range p.items {
		line := strings.TrimLeft(it.bar.String(), "\r")
		if line == "" {
			line = it.name
		}
		b.WriteString(p.fit(line))
		b.WriteString("\n")
	}
	io.WriteString(p.out, b.String())
	p.drawn = len(p.items)
}

// fit cuts a line to the terminal's width, so that it never wraps (a
// wrapped line would throw the redraw off).
func (p *termProgress) fit(line string) string {
	line = strings.TrimRight(strings.ReplaceAll(line, "\x1b[0K", ""), " ")
	w := p.width() - 1
	r := []rune(line)
	if len(r) > w && w > 0 {
		return string(r[:w])
	}
	return line
}

// Write lets a log line through above the bars.
func (p *termProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	n, err := p.out.Write(b)
	p.draw()
	return n, err
}

// Wrap returns a writer to w (the terminal's stdout) that keeps the bars
// below what it writes.
func (p *termProgress) Wrap(w io.Writer) io.Writer { return wrapped{p, w} }

type wrapped struct {
	p *termProgress
	w io.Writer
}

func (w wrapped) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.clear()
	n, err := w.w.Write(b)
	w.p.draw()
	return n, err
}

// Close stops drawing and erases the bars left.
func (p *termProgress) Close() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		p.mu.Lock()
		p.clear()
		p.items = nil
		p.mu.Unlock()
	})
}

// Interface guard.
var _ observe.Progress = (*termProgress)(nil)
