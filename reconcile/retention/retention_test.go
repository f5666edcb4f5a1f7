package retention

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// at is a snapshot named id taken at the RFC 3339 time ts.
func at(id, ts string) RetentionItem {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		panic(err)
	}
	return RetentionItem{ID: id, Time: t}
}

func mustRules(t testing.TB, r *v1.Retention, tz string) RetentionRules {
	t.Helper()
	rules, err := ParseRetentionRules(r, tz)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// TestDecideRetention holds hand-worked cases: the expected reasons were
// worked out on paper from the rules in docs/retention.md, not computed.
func TestDecideRetention(t *testing.T) {
	// Daily snapshots at 03:00 UTC, 1-20 January 2025; then nothing.
	var stopped []RetentionItem
	for d := 1; d <= 20; d++ {
		stopped = append(stopped, at(fmt.Sprintf("jan%02d", d), fmt.Sprintf("2025-01-%02dT03:00:00Z", d)))
	}
	keptStopped := map[string]string{}
	for d := 14; d <= 20; d++ {
		keptStopped[fmt.Sprintf("jan%02d", d)] = "within"
	}

	// 2026-12-27 is a Sunday of ISO week 2026-W52; 28-31 December and 1-3
	// January 2027 are in 2026-W53; 4 January 2027 starts 2027-W01.
	isoYearEnd := []RetentionItem{
		at("dec27", "2026-12-27T12:00:00Z"),
		at("dec28", "2026-12-28T12:00:00Z"),
		at("dec31", "2026-12-31T12:00:00Z"),
		at("jan01", "2027-01-01T12:00:00Z"),
		at("jan03", "2027-01-03T12:00:00Z"),
		at("jan04", "2027-01-04T12:00:00Z"),
	}

	// Berlin, 25 October 2026: at 03:00 CEST (01:00 UTC) clocks go back to
	// 02:00 CET, so 02:00-03:00 happens twice.
	fallBack := []RetentionItem{
		at("a-0100cest", "2026-10-24T23:00:00Z"),
		at("b-0130cest", "2026-10-24T23:30:00Z"),
		at("c-0200cest", "2026-10-25T00:00:00Z"),
		at("d-0230cest", "2026-10-25T00:30:00Z"),
		at("e-0200cet", "2026-10-25T01:00:00Z"),
		at("f-0230cet", "2026-10-25T01:30:00Z"),
		at("g-0300cet", "2026-10-25T02:00:00Z"),
	}

	// Berlin, 29 March 2026: at 02:00 CET (01:00 UTC) clocks jump to 03:00
	// CEST, a 23-hour day. The UTC date and the Berlin date differ for
	// snapshots taken late in the evening UTC.
	springForward := []RetentionItem{
		at("a", "2026-03-28T22:30:00Z"), // 23:30 CET, 28 March in Berlin
		at("b", "2026-03-28T23:30:00Z"), // 00:30 CET, 29 March in Berlin
		at("c", "2026-03-29T21:30:00Z"), // 23:30 CEST, 29 March in Berlin
	}

	tests := []struct {
		name  string
		items []RetentionItem
		ret   *v1.Retention
		tz    string
		// keep maps the kept IDs to their reasons, comma-separated; every
		// other item must be removed.
		keep map[string]string
	}{
		{
			name:  "empty group",
			items: nil,
			ret:   &v1.Retention{KeepLast: 3},
			keep:  map[string]string{},
		},
		{
			name: "keepLast alone keeps the newest N",
			items: []RetentionItem{
				at("a", "2026-11-01T10:00:00Z"), at("b", "2026-11-02T10:00:00Z"), at("c", "2026-11-03T10:00:00Z"),
				at("d", "2026-11-04T10:00:00Z"), at("e", "2026-11-05T10:00:00Z"),
			},
			ret:  &v1.Retention{KeepLast: 3},
			keep: map[string]string{"e": "keepLast", "d": "keepLast", "c": "keepLast"},
		},
		{
			name:  "keepLast beyond the count keeps all",
			items: []RetentionItem{at("a", "2026-11-01T10:00:00Z"), at("b", "2026-11-02T10:00:00Z")},
			ret:   &v1.Retention{KeepLast: 10},
			keep:  map[string]string{"a": "keepLast", "b": "keepLast"},
		},
		{
			name: "several snapshots in one hour: the newest of each hour",
			items: []RetentionItem{
				at("a", "2026-11-20T08:40:00Z"), at("b", "2026-11-20T09:10:00Z"), at("c", "2026-11-20T09:20:00Z"),
				at("d", "2026-11-20T09:55:00Z"), at("e", "2026-11-20T10:05:00Z"),
			},
			ret:  &v1.Retention{Hourly: 2},
			keep: map[string]string{"e": "hourly", "d": "hourly"},
		},
		{
			name: "several snapshots in one hour, one more hour",
			items: []RetentionItem{
				at("a", "2026-11-20T08:40:00Z"), at("b", "2026-11-20T09:10:00Z"), at("c", "2026-11-20T09:20:00Z"),
				at("d", "2026-11-20T09:55:00Z"), at("e", "2026-11-20T10:05:00Z"),
			},
			ret:  &v1.Retention{Hourly: 3},
			keep: map[string]string{"e": "hourly", "d": "hourly", "a": "hourly"},
		},
		{
			name: "gaps of days: only days with a snapshot count",
			items: []RetentionItem{
				at("a", "2026-11-01T10:00:00Z"), at("b", "2026-11-02T10:00:00Z"), at("c", "2026-11-05T10:00:00Z"),
				at("d", "2026-11-09T08:00:00Z"), at("e", "2026-11-09T20:00:00Z"),
			},
			ret:  &v1.Retention{Daily: 3},
			keep: map[string]string{"e": "daily", "c": "daily", "b": "daily"},
		},
		{
			name: "rules are a union and each counts on its own",
			items: []RetentionItem{
				at("a", "2026-11-01T10:00:00Z"), at("b", "2026-11-02T09:00:00Z"), at("c", "2026-11-02T10:00:00Z"),
			},
			ret:  &v1.Retention{KeepLast: 1, Daily: 2},
			keep: map[string]string{"c": "keepLast,daily", "a": "daily"},
		},
		{
			name:  "within when backups stopped long ago counts from the newest, not now",
			items: stopped,
			ret:   &v1.Retention{Within: "7d"},
			keep:  keptStopped,
		},
		{
			name:  "all rules at zero keep everything",
			items: []RetentionItem{at("a", "2026-11-01T10:00:00Z"), at("b", "2026-11-02T10:00:00Z")},
			ret:   &v1.Retention{},
			keep:  map[string]string{"a": "keepAll", "b": "keepAll"},
		},
		{
			name:  "no retention keeps everything",
			items: []RetentionItem{at("a", "2026-11-01T10:00:00Z"), at("b", "2026-11-02T10:00:00Z")},
			ret:   nil,
			keep:  map[string]string{"a": "keepAll", "b": "keepAll"},
		},
		{
			name:  "DST fall back in Berlin: the repeated 02:00 hour is two hours",
			items: fallBack,
			ret:   &v1.Retention{Hourly: 3},
			tz:    "Europe/Berlin",
			keep:  map[string]string{"g-0300cet": "hourly", "f-0230cet": "hourly", "d-0230cest": "hourly"},
		},
		{
			name:  "DST fall back in Berlin: one hour more reaches 01:00 CEST",
			items: fallBack,
			ret:   &v1.Retention{Hourly: 4},
			tz:    "Europe/Berlin",
			keep:  map[string]string{"g-0300cet": "hourly", "f-0230cet": "hourly", "d-0230cest": "hourly", "b-0130cest": "hourly"},
		},
		{
			name: "DST fall back in Berlin: the 25-hour day is one day",
			items: []RetentionItem{
				at("a", "2026-10-24T22:30:00Z"), // 00:30 CEST on 25 October
				at("b", "2026-10-25T22:30:00Z"), // 23:30 CET on 25 October, 25 hours later
				at("c", "2026-10-25T23:30:00Z"), // 00:30 CET on 26 October
			},
			ret:  &v1.Retention{Daily: 2},
			tz:   "Europe/Berlin",
			keep: map[string]string{"c": "daily", "b": "daily"},
		},
		{
			name:  "DST spring forward: days are Berlin days",
			items: springForward,
			ret:   &v1.Retention{Daily: 2},
			tz:    "Europe/Berlin",
			keep:  map[string]string{"c": "daily", "a": "daily"},
		},
		{
			name:  "DST spring forward: the same snapshots in UTC",
			items: springForward,
			ret:   &v1.Retention{Daily: 2},
			keep:  map[string]string{"c": "daily", "b": "daily"},
		},
		{
			name:  "year boundary: 1-3 January 2027 are in ISO week 2026-W53",
			items: isoYearEnd,
			ret:   &v1.Retention{Weekly: 2},
			keep:  map[string]string{"jan04": "weekly", "jan03": "weekly"},
		},
		{
			name:  "year boundary: a third week reaches 2026-W52",
			items: isoYearEnd,
			ret:   &v1.Retention{Weekly: 3},
			keep:  map[string]string{"jan04": "weekly", "jan03": "weekly", "dec27": "weekly"},
		},
		{
			name:  "year boundary: years are calendar years, weeks ISO weeks",
			items: isoYearEnd,
			ret:   &v1.Retention{Weekly: 2, Yearly: 2},
			keep:  map[string]string{"jan04": "weekly,yearly", "jan03": "weekly", "dec31": "yearly"},
		},
		{
			name:  "year boundary: months",
			items: isoYearEnd,
			ret:   &v1.Retention{Monthly: 2},
			keep:  map[string]string{"jan04": "monthly", "dec31": "monthly"},
		},
		{
			name: "monthly counts months with snapshots",
			items: []RetentionItem{
				at("jan", "2025-01-15T00:00:00Z"), at("mar1", "2025-03-01T00:00:00Z"), at("mar2", "2025-03-30T00:00:00Z"),
				at("jul", "2025-07-04T00:00:00Z"), at("old", "2024-12-31T23:00:00Z"),
			},
			ret:  &v1.Retention{Monthly: 3},
			keep: map[string]string{"jul": "monthly", "mar2": "monthly", "jan": "monthly"},
		},
		{
			name: "months in the policy's zone: 31 December 23:00 UTC is January in Berlin",
			items: []RetentionItem{
				at("jan", "2025-01-15T00:00:00Z"), at("old", "2024-12-31T23:00:00Z"), at("dec", "2024-12-20T00:00:00Z"),
			},
			ret:  &v1.Retention{Monthly: 2},
			tz:   "Europe/Berlin",
			keep: map[string]string{"jan": "monthly", "dec": "monthly"},
		},
		{
			name: "yearly",
			items: []RetentionItem{
				at("y19", "2019-06-01T00:00:00Z"), at("y21", "2021-06-01T00:00:00Z"),
				at("y24a", "2024-01-01T00:00:00Z"), at("y24b", "2024-12-31T00:00:00Z"),
			},
			ret:  &v1.Retention{Yearly: 5},
			keep: map[string]string{"y24b": "yearly", "y21": "yearly", "y19": "yearly"},
		},
		{
			name: "within is strict: exactly the span older is out",
			items: []RetentionItem{
				at("a", "2026-11-01T00:00:00Z"), at("b", "2026-11-01T00:00:01Z"), at("c", "2026-11-02T12:00:00Z"),
			},
			ret:  &v1.Retention{Within: "36h"},
			keep: map[string]string{"c": "within", "b": "within"},
		},
		{
			name:  "equal times are ordered by ID",
			items: []RetentionItem{at("x1", "2026-11-01T00:00:00Z"), at("x2", "2026-11-01T00:00:00Z")},
			ret:   &v1.Retention{KeepLast: 1},
			keep:  map[string]string{"x2": "keepLast"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecideRetention(tt.items, mustRules(t, tt.ret, tt.tz))
			gotKeep := map[string]string{}
			for _, k := range got.Keep {
				gotKeep[k.ID] = strings.Join(k.Reasons, ",")
			}
			for id, want := range tt.keep {
				if gotKeep[id] != want {
					t.Errorf("%s: kept for %q, want %q", id, gotKeep[id], want)
				}
			}
			for id, reasons := range gotKeep {
				if _, ok := tt.keep[id]; !ok {
					t.Errorf("%s: kept for %q, want removed", id, reasons)
				}
			}
			if len(got.Keep)+len(got.Remove) != len(tt.items) {
				t.Errorf("%d kept + %d removed, want %d in all", len(got.Keep), len(got.Remove), len(tt.items))
			}
			checkNewestFirst(t, got)
		})
	}
}

func checkNewestFirst(t *testing.T, d RetentionDecision) {
	t.Helper()
	for i := 1; i < len(d.Keep); i++ {
		if d.Keep[i].Time.After(d.Keep[i-1].Time) {
			t.Errorf("Keep is not newest first at %d", i)
		}
	}
	for i := 1; i < len(d.Remove); i++ {
		if d.Remove[i].Time.After(d.Remove[i-1].Time) {
			t.Errorf("Remove is not newest first at %d", i)
		}
	}
}

func TestParseRetentionRules(t *testing.T) {
	r, err := ParseRetentionRules(&v1.Retention{KeepLast: 2, Daily: 7, Within: "1d12h"}, "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if r.Within != 36*time.Hour || r.Location.String() != "Europe/Berlin" {
		t.Errorf("rules = %+v", r)
	}
	if got, want := r.String(), "keepLast 2, daily 7, within 36h0m0s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := ParseRetentionRules(&v1.Retention{Within: "7 days"}, ""); err == nil {
		t.Error("within 7 days: no error")
	}
	if _, err := ParseRetentionRules(&v1.Retention{Daily: -1}, ""); err == nil {
		t.Error("daily -1: no error")
	}
	if _, err := ParseRetentionRules(nil, "Mars/Olympus"); err == nil {
		t.Error("unknown zone: no error")
	}
	if r, _ := ParseRetentionRules(&v1.Retention{Within: "0s"}, ""); !r.KeepsAll() {
		t.Error("within 0s alone should keep everything")
	}
}

// propertyZones are zones with DST, without, with a half-hour offset, and
// with a half-hour DST shift (Lord Howe).
var propertyZones = []string{"", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "America/Santiago"}

// genCase builds random snapshot times and rules from r: times cluster at
// one of several scales, so buckets often hold several snapshots, and some
// times repeat.
func genCase(r *rand.Rand) ([]RetentionItem, RetentionRules) {
	scales := []time.Duration{time.Minute, 17 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}
	n := r.IntN(80)
	base := time.Date(2000+r.IntN(30), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), 0, 0, time.UTC)
	scale := scales[r.IntN(len(scales))]
	items := make([]RetentionItem, n)
	for i := range items {
		off := time.Duration(r.Int64N(int64(n+1))) * scale
		if r.IntN(4) == 0 {
			off += time.Duration(r.Int64N(int64(scale)))
		}
		items[i] = RetentionItem{ID: fmt.Sprintf("s%03d", i), Time: base.Add(off)}
	}
	loc, _ := v1.LoadTimeZone(propertyZones[r.IntN(len(propertyZones))])
	count := func() int {
		if r.IntN(2) == 0 {
			return 0
		}
		return r.IntN(6)
	}
	rules := RetentionRules{KeepLast: count(), Hourly: count(), Daily: count(), Weekly: count(), Monthly: count(), Yearly: count(), Location: loc}
	if r.IntN(3) == 0 {
		rules.Within = []time.Duration{time.Hour, 36 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}[r.IntN(4)]
	}
	return items, rules
}

// checkRetentionProperties checks what must hold for any input.
func checkRetentionProperties(t *testing.T, r *rand.Rand, items []RetentionItem, rules RetentionRules) {
	t.Helper()
	d := DecideRetention(items, rules)
	desc := func() string { return fmt.Sprintf("rules %s in %s, %d items", rules, rules.Location, len(items)) }

	// The kept and removed snapshots partition the input; every kept one
	// says why.
	if len(d.Keep)+len(d.Remove) != len(items) {
		t.Fatalf("%s: %d kept + %d removed", desc(), len(d.Keep), len(d.Remove))
	}
	seen := map[string]bool{}
	for _, k := range d.Keep {
		if len(k.Reasons) == 0 {
			t.Fatalf("%s: %s kept without a reason", desc(), k.ID)
		}
		seen[k.ID] = true
	}
	for _, rm := range d.Remove {
		if seen[rm.ID] {
			t.Fatalf("%s: %s both kept and removed", desc(), rm.ID)
		}
		seen[rm.ID] = true
	}
	if len(seen) != len(items) {
		t.Fatalf("%s: the decision names %d snapshots, want %d", desc(), len(seen), len(items))
	}
	if len(items) == 0 {
		return
	}

	// The newest is kept.
	newest := slices.MaxFunc(items, func(a, b RetentionItem) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if d.Keep[0].ID != newest.ID {
		t.Fatalf("%s: newest %s not kept first (kept %+v)", desc(), newest.ID, d.Keep[0])
	}

	// The input order does not matter.
	shuffled := slices.Clone(items)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if d2 := DecideRetention(shuffled, rules); !sameDecision(d, d2) {
		t.Fatalf("%s: shuffled input gives another decision", desc())
	}

	// Applying the rules to what they kept keeps it all, for the same
	// reasons.
	var kept []RetentionItem
	for _, k := range d.Keep {
		kept = append(kept, k.RetentionItem)
	}
	again := DecideRetention(kept, rules)
	if len(again.Remove) != 0 || !sameDecision(RetentionDecision{Keep: d.Keep}, again) {
		t.Fatalf("%s: not idempotent: the second pass removes %v", desc(), again.Remove)
	}

	// A snapshot kept from the whole set is kept from any subset holding
	// it: a listing that misses snapshots never deletes more.
	var subset []RetentionItem
	for _, it := range items {
		if r.IntN(3) != 0 {
			subset = append(subset, it)
		}
	}
	keptSub := map[string]bool{}
	for _, k := range DecideRetention(subset, rules).Keep {
		keptSub[k.ID] = true
	}
	inSub := map[string]bool{}
	for _, it := range subset {
		inSub[it.ID] = true
	}
	for _, k := range d.Keep {
		if inSub[k.ID] && !keptSub[k.ID] && !rules.KeepsAll() {
			t.Fatalf("%s: %s is kept from the full set but removed from a subset", desc(), k.ID)
		}
	}

	// Pruning after each new snapshot ends where pruning once does.
	ordered := slices.Clone(items)
	slices.SortFunc(ordered, func(a, b RetentionItem) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var cur []RetentionItem
	for _, it := range ordered {
		next := DecideRetention(append(cur, it), rules)
		cur = cur[:0:0]
		for _, k := range next.Keep {
			cur = append(cur, k.RetentionItem)
		}
	}
	incremental := DecideRetention(cur, rules)
	if !sameDecision(RetentionDecision{Keep: d.Keep}, RetentionDecision{Keep: incremental.Keep}) {
		t.Fatalf("%s: pruning after each snapshot keeps %d, pruning once keeps %d", desc(), len(incremental.Keep), len(d.Keep))
	}

	// Raising a count, or the span, never removes a kept snapshot.
	if !rules.KeepsAll() {
		more := rules
		switch r.IntN(7) {
		case 0:
			more.KeepLast++
		case 1:
			more.Hourly++
		case 2:
			more.Daily++
		case 3:
			more.Weekly++
		case 4:
			more.Monthly++
		case 5:
			more.Yearly++
		case 6:
			more.Within += time.Hour
		}
		keptMore := map[string]bool{}
		for _, k := range DecideRetention(items, more).Keep {
			keptMore[k.ID] = true
		}
		for _, k := range d.Keep {
			if !keptMore[k.ID] {
				t.Fatalf("%s: raising a rule to %s removes %s", desc(), more, k.ID)
			}
		}
	}

	// No more are kept than the rules can name.
	if !rules.KeepsAll() {
		limit := rules.KeepLast + rules.Hourly + rules.Daily + rules.Weekly + rules.Monthly + rules.Yearly + 1
		for _, k := range d.Keep {
			if slices.Contains(k.Reasons, RuleWithin) {
				limit++
			}
		}
		if len(d.Keep) > limit {
			t.Fatalf("%s: %d kept, more than the rules allow (%d)", desc(), len(d.Keep), limit)
		}
	}
}

func sameDecision(a, b RetentionDecision) bool {
	if len(a.Keep) != len(b.Keep) || len(a.Remove) != len(b.Remove) {
		return false
	}
	for i := range a.Keep {
		if a.Keep[i].ID != b.Keep[i].ID || !slices.Equal(a.Keep[i].Reasons, b.Keep[i].Reasons) {
			return false
		}
	}
	for i := range a.Remove {
		if a.Remove[i].ID != b.Remove[i].ID {
			return false
		}
	}
	return true
}

// TestRetentionProperties checks the properties on random inputs; the seed
// is fixed so a failure reproduces.
func TestRetentionProperties(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	r := rand.New(rand.NewPCG(6, 2026))
	for range n {
		items, rules := genCase(r)
		checkRetentionProperties(t, r, items, rules)
	}
}

// FuzzRetention drives the same properties from fuzzed input: every four
// bytes of data are a snapshot's offset in minutes from a base time.
func FuzzRetention(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 5, 0}, uint8(1), uint8(0), uint8(2), uint8(0), uint8(0), uint8(0), uint16(0), uint8(0))
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0, 9, 0, 0}, uint8(0), uint8(3), uint8(0), uint8(2), uint8(1), uint8(1), uint16(36), uint8(1))
	f.Add([]byte("retention never loses the wrong backup"), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint16(168), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, keepLast, hourly, daily, weekly, monthly, yearly uint8, withinHours uint16, zone uint8) {
		base := time.Date(2024, time.March, 30, 0, 0, 0, 0, time.UTC)
		var items []RetentionItem
		for i := 0; i+4 <= len(data) && len(items) < 200; i += 4 {
			off := binary.BigEndian.Uint32(data[i:]) % (5 * 366 * 24 * 60)
			items = append(items, RetentionItem{ID: fmt.Sprintf("s%03d", len(items)), Time: base.Add(time.Duration(off) * time.Minute)})
		}
		loc, err := v1.LoadTimeZone(propertyZones[int(zone)%len(propertyZones)])
		if err != nil {
			t.Fatal(err)
		}
		rules := RetentionRules{
			KeepLast: int(keepLast % 16), Hourly: int(hourly % 16), Daily: int(daily % 16), Weekly: int(weekly % 16),
			Monthly: int(monthly % 16), Yearly: int(yearly % 16), Within: time.Duration(withinHours%2000) * time.Hour, Location: loc,
		}
		checkRetentionProperties(t, rand.New(rand.NewPCG(uint64(len(data)), uint64(zone))), items, rules)
	})
}

// BenchmarkDecideRetention100k is the planning step of a group of 100,000
// snapshots (hourly for about eleven years) under a typical policy.
func BenchmarkDecideRetention100k(b *testing.B) {
	items := make([]RetentionItem, 100_000)
	start := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range items {
		// Shuffled IDs and jitter, so the sort has real work to do.
		items[i] = RetentionItem{ID: v1.NewSnapshotID(start), Time: start.Add(time.Duration(i)*time.Hour + time.Duration(i%7)*time.Second)}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	rules := mustRules(b, &v1.Retention{KeepLast: 5, Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 5, Within: "2d"}, "Europe/Berlin")
	b.ReportAllocs()
	for b.Loop() {
		d := DecideRetention(items, rules)
		if len(d.Keep) == 0 {
			b.Fatal("nothing kept")
		}
	}
}
