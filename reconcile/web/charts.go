package web

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/aegis-backup/aegis/reconcile/observe"
)

// chart is one inline SVG chart of the run history.
type chart struct {
	Title string
	SVG   template.HTML
	// Summary says in words what the chart shows, for screen readers and
	// for readers without images.
	Summary string
}

// historyCharts draws duration, bytes read, bytes stored and the
// reduction ratio over the runs, oldest on the left.
func historyCharts(rows []historyRow) []chart {
	if len(rows) < 2 {
		return nil
	}
	n := len(rows)
	dur, read, stored, ratio := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i, r := range rows {
		j := n - 1 - i
		dur[j], read[j], stored[j], ratio[j] = r.Duration.Seconds(), float64(r.BytesRead), float64(r.Stored), r.Ratio
	}
	secs := func(v float64) string { return fmt.Sprintf("%.1fs", v) }
	size := func(v float64) string { return observe.FormatBytes(int64(v)) }
	times := func(v float64) string { return fmt.Sprintf("%.2f×", v) }
	return []chart{
		lineChart("Duration", dur, secs),
		lineChart("Bytes read", read, size),
		lineChart("Bytes stored", stored, size),
		lineChart("Size reduction (raw ÷ stored)", ratio, times),
	}
}

// lineChart draws values as a polyline with its range labelled. The SVG
// uses presentation attributes only (the CSP forbids inline styles).
func lineChart(title string, vals []float64, label func(float64) string) chart {
	const w, h, pad = 320.0, 100.0, 4.0
	lo, hi := vals[0], vals[0]
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
	}
	span := hi - lo
	if span == 0 {
		span = 1
	}
	var pts strings.Builder
	for i, v := range vals {
		x := pad + (w-2*pad)*float64(i)/float64(len(vals)-1)
		y := h - pad - (h-2*pad)*(v-lo)/span
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
	}
	summary := fmt.Sprintf("%s over %d runs: from %s (oldest) to %s (newest); lowest %s, highest %s.",
		title, len(vals), label(vals[0]), label(vals[len(vals)-1]), label(lo), label(hi))
	svg := fmt.Sprintf(`<svg viewBox="0 0 %.0f %.0f" width="320" height="100" role="img" aria-label="%s" class="chart">`+
		`<rect x="0" y="0" width="%.0f" height="%.0f" fill="none" stroke="#ccc"/>`+
		`<polyline points="%s" fill="none" stroke="#2563eb" stroke-width="2"/>`+
		`<text x="4" y="12" font-size="10" fill="#444">%s</text><text x="4" y="96" font-size="10" fill="#444">%s</text></svg>`,
		w, h, template.HTMLEscapeString(summary), w, h, strings.TrimSpace(pts.String()),
		template.HTMLEscapeString(label(hi)), template.HTMLEscapeString(label(lo)))
	return chart{Title: title, SVG: template.HTML(svg), Summary: summary}
}
