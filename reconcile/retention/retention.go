package retention

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// Rules, as they appear in the reasons a snapshot is kept. The first seven
// are the fields of spec.retention.
const (
	RuleKeepLast = "keepLast"
	RuleHourly   = "hourly"
	RuleDaily    = "daily"
	RuleWeekly   = "weekly"
	RuleMonthly  = "monthly"
	RuleYearly   = "yearly"
	RuleWithin   = "within"
	// RuleNewest keeps the newest snapshot of a group when no other rule
	// does. With valid rules another rule always does; it is a guard.
	RuleNewest = "newest"
	// RuleKeepAll keeps every snapshot of a policy whose retention sets no
	// rule (or that has no spec.retention).
	RuleKeepAll = "keepAll"
	// RuleTooNew keeps a snapshot whose time is after the start of the
	// retention pass: one a run in flight is making, or one stamped by a
	// clock ahead of this host's. It takes no part in the other rules.
	RuleTooNew = "tooNew"
	// RuleParent keeps a snapshot that a kept snapshot builds on.
	RuleParent = "parent"
	// RuleLocked keeps a snapshot the other rules let go while the
	// destination still locks it (S3 Object Lock): deleting it would be
	// refused. Its verdict carries the date the lock ends.
	RuleLocked = "locked"
)

// RetentionRules are a policy's spec.retention, parsed, with the time zone
// its calendar buckets use. The zero value (with a nil Location meaning
// UTC) keeps everything.
type RetentionRules struct {
	KeepLast, Hourly, Daily, Weekly, Monthly, Yearly int
	// Within keeps the snapshots less than this span older than the newest.
	Within   time.Duration
	Location *time.Location
}

// ParseRetentionRules resolves a policy's retention in its time zone. A nil
// retention keeps everything.
func ParseRetentionRules(r *v1.Retention, timeZone string) (RetentionRules, error) {
	loc, err := v1.LoadTimeZone(timeZone)
	if err != nil {
		return RetentionRules{}, err
	}
	rules := RetentionRules{Location: loc}
	if r == nil {
		return rules, nil
	}
	for _, n := range []int{r.KeepLast, r.Hourly, r.Daily, r.Weekly, r.Monthly, r.Yearly} {
		if n < 0 {
			return RetentionRules{}, fmt.Errorf("spec.retention: counts must not be negative")
		}
	}
	rules.KeepLast, rules.Hourly, rules.Daily = r.KeepLast, r.Hourly, r.Daily
	rules.Weekly, rules.Monthly, rules.Yearly = r.Weekly, r.Monthly, r.Yearly
	if r.Within != "" {
		d, err := v1.ParseRetentionDuration(r.Within)
		if err != nil {
			return RetentionRules{}, fmt.Errorf("spec.retention.within: %w", err)
		}
		rules.Within = d
	}
	return rules, nil
}

// KeepsAll reports whether the rules keep every snapshot: none is set.
func (r RetentionRules) KeepsAll() bool {
	return r.KeepLast == 0 && r.Hourly == 0 && r.Daily == 0 && r.Weekly == 0 &&
		r.Monthly == 0 && r.Yearly == 0 && r.Within <= 0
}

// String lists the rules that are set, as "keepLast 3, daily 7, within 168h0m0s".
func (r RetentionRules) String() string {
	if r.KeepsAll() {
		return "no rule: keep everything"
	}
	var parts []string
	for _, c := range []struct {
		name string
		n    int
	}{{RuleKeepLast, r.KeepLast}, {RuleHourly, r.Hourly}, {RuleDaily, r.Daily}, {RuleWeekly, r.Weekly}, {RuleMonthly, r.Monthly}, {RuleYearly, r.Yearly}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	if r.Within > 0 {
		parts = append(parts, "within "+r.Within.String())
	}
	return strings.Join(parts, ", ")
}

// RetentionItem is one snapshot as retention sees it.
type RetentionItem struct {
	ID   string
	Time time.Time
}

// KeptItem is a snapshot retention keeps, and every rule that keeps it.
type KeptItem struct {
	RetentionItem
	Reasons []string
}

// RetentionDecision splits a group of snapshots. Both lists are newest
// first.
type RetentionDecision struct {
	Keep   []KeptItem
	Remove []RetentionItem
}

// ruleBit indexes the rules in the order reasons are listed.
const (
	bitKeepLast = 1 << iota
	bitHourly
	bitDaily
	bitWeekly
	bitMonthly
	bitYearly
	bitWithin
	bitNewest
)

var bitNames = []string{RuleKeepLast, RuleHourly, RuleDaily, RuleWeekly, RuleMonthly, RuleYearly, RuleWithin, RuleNewest}

// DecideRetention decides which snapshots of one group (one host, policy
// and source) the rules keep. It is pure: the result depends only on the
// set of items (not their order) and the rules, never on the clock.
//
// The semantics are restic's `forget` (docs/retention.md states them):
//   - snapshots are ordered newest first (by time, then by ID);
//   - keepLast N keeps the N newest;
//   - hourly, daily, weekly, monthly, yearly N each keep the newest
//     snapshot of each of the N most recent hours (days, ISO weeks, months,
//     years) that hold at least one snapshot, counting back from the newest
//     snapshot, not from the calendar; buckets are read in rules.Location,
//     and an hour is a wall-clock hour at one UTC offset, so the hour that
//     repeats when clocks go back counts as two;
//   - within D keeps every snapshot less than D older than the newest;
//   - the rules are a union: a snapshot any rule keeps is kept;
//   - the newest snapshot is always kept; rules that set nothing keep all.
//
// Consequences the tests check: the newest is kept; the decision does not
// depend on input order; applying it to its own result keeps everything
// (it is idempotent); and a snapshot kept from a set is kept from every
// subset holding it, so a listing that missed snapshots can only make
// retention keep more, never delete what the full list keeps.
func DecideRetention(items []RetentionItem, rules RetentionRules) RetentionDecision {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b RetentionItem) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.ID, a.ID))
	})
	var d RetentionDecision
	if len(sorted) == 0 {
		return d
	}
	if rules.KeepsAll() {
		d.Keep = make([]KeptItem, len(sorted))
		for i, it := range sorted {
			d.Keep[i] = KeptItem{RetentionItem: it, Reasons: []string{RuleKeepAll}}
		}
		return d
	}
	loc := rules.Location
	if loc == nil {
		loc = time.UTC
	}

	bits := make([]uint8, len(sorted))
	for i := 0; i < rules.KeepLast && i < len(sorted); i++ {
		bits[i] |= bitKeepLast
	}

	markBuckets(sorted, rules, loc, bits)
	if rules.Within > 0 {
		from := sorted[0].Time.Add(-rules.Within)
		for i, it := range sorted {
			if !it.Time.After(from) {
				break
			}
			bits[i] |= bitWithin
		}
	}
	if bits[0] == 0 {
		bits[0] |= bitNewest
	}

	for i, it := range sorted {
		if bits[i] == 0 {
			d.Remove = append(d.Remove, it)
			continue
		}
		d.Keep = append(d.Keep, KeptItem{RetentionItem: it, Reasons: reasonNames(bits[i])})
	}
	return d
}

// markBuckets sets the bit of each hourly, daily, weekly, monthly and
// yearly rule on the newest snapshot of each of its buckets (newest first),
// until the rule has kept as many as it may.
func markBuckets(sorted []RetentionItem, rules RetentionRules, loc *time.Location, bits []uint8) {
	type bucketRule struct {
		bit  uint8
		left int
		key  func(lt time.Time) int64
		seen map[int64]struct{}
	}
	var buckets []*bucketRule
	add := func(bit uint8, n int, key func(time.Time) int64) {
		if n > 0 {
			buckets = append(buckets, &bucketRule{bit: bit, left: n, key: key, seen: map[int64]struct{}{}})
		}
	}
	add(bitHourly, rules.Hourly, hourKey)
	add(bitDaily, rules.Daily, dayKey)
	add(bitWeekly, rules.Weekly, weekKey)
	add(bitMonthly, rules.Monthly, monthKey)
	add(bitYearly, rules.Yearly, yearKey)
	if len(buckets) == 0 {
		return
	}
	for i, it := range sorted {
		lt := it.Time.In(loc)
		active := false
		for _, b := range buckets {
			if b.left == 0 {
				continue
			}
			active = true
			k := b.key(lt)
			if _, ok := b.seen[k]; ok {
				continue
			}
			// The first snapshot met in a bucket is its newest.
			b.seen[k] = struct{}{}
			b.left--
			bits[i] |= b.bit
		}
		if !active {
			return
		}
	}
}

// reasonNames caches the reason lists, which many snapshots share.
var reasonLists = func() [256][]string {
	var out [256][]string
	for b := 1; b < 256; b++ {
		for i, name := range bitNames {
			if b&(1<<i) != 0 {
				out[b] = append(out[b], name)
			}
		}
		// Full capacity: an append by a caller copies instead of writing
		// into the shared array.
		out[b] = slices.Clip(out[b])
	}
	return out
}()

// reasonNames returns the rule names of bits. The slice is shared: callers
// must not modify it.
func reasonNames(bits uint8) []string { return reasonLists[bits] }

// Bucket keys. Each identifies one calendar bucket of a local time; keys
// of different buckets differ.

// hourKey is the wall-clock hour together with the UTC offset, so that
// the two hours 02:00-03:00 of a night when clocks go back are two buckets,
// as they are two hours.
func hourKey(lt time.Time) int64 {
	_, off := lt.Zone()
	return (dayKey(lt)*100+int64(lt.Hour()))*200_000 + int64(off) + 100_000
}

func dayKey(lt time.Time) int64 {
	y, m, d := lt.Date()
	return (int64(y)*100+int64(m))*100 + int64(d)
}

// weekKey is the ISO 8601 week: weeks start on Monday, and the week of
// 1 January may belong to the year before (2027-01-01 is in 2026-W53).
func weekKey(lt time.Time) int64 {
	y, w := lt.ISOWeek()
	return int64(y)*100 + int64(w)
}

func monthKey(lt time.Time) int64 {
	y, m, _ := lt.Date()
	return int64(y)*100 + int64(m)
}

func yearKey(lt time.Time) int64 { return int64(lt.Year()) }
