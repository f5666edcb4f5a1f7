package v1

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser accepts the 5-field form and the descriptors of the contract.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule is a parsed policy schedule bound to its time zone.
type Schedule struct {
	expr string
	loc  *time.Location
	spec cron.Schedule
	// wild is set when the minute or the hour field starts with "*" (as
	// "0 * * * *", "*/15 2 * * *" or @hourly): cron runs such a job in
	// every real hour, the repeated one included.
	wild bool
}

// ParseSchedule parses a 5-field cron expression or a descriptor (@hourly,
// @daily, @weekly, @monthly, @yearly, @every <duration>) in the IANA time
// zone tz ("" means UTC).
func ParseSchedule(expr, tz string) (*Schedule, error) {
	loc, err := LoadTimeZone(tz)
	if err != nil {
		return nil, err
	}
	e := strings.TrimSpace(expr)
	if strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ=") {
		return nil, fmt.Errorf("put the time zone in spec.timeZone, not in the schedule")
	}
	if strings.HasPrefix(e, "@every") {
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(e, "@every")))
		if err != nil {
			return nil, fmt.Errorf("invalid @every duration in %q: %v", expr, err)
		}
		if d < time.Minute {
			return nil, fmt.Errorf("@every duration %s is shorter than one minute", d)
		}
	}
	spec, err := cronParser.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %v", expr, err)
	}
	if ss, ok := spec.(*cron.SpecSchedule); ok {
		// Next works on wall-clock times carried in UTC fields.
		ss.Location = time.UTC
	}
	return &Schedule{expr: e, loc: loc, spec: spec, wild: isWild(e)}, nil
}

// isWild reports whether a parsed expression's minute or hour field starts
// with "*", the test cron applies when the clock falls back.
func isWild(expr string) bool {
	if expr == "@hourly" {
		return true
	}
	if strings.HasPrefix(expr, "@") {
		return false
	}
	f := strings.Fields(expr)
	return len(f) >= 2 && (strings.HasPrefix(f[0], "*") || strings.HasPrefix(f[1], "*"))
}

// LoadTimeZone resolves an IANA zone name; "" is UTC.
func LoadTimeZone(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	if loc, ok := zones.Load(tz); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", tz)
	}
	zones.Store(tz, loc)
	return loc, nil
}

// zones caches loaded time zones: the planner parses every policy's
// schedule on every pass, and loading a zone reads the zone database.
var zones sync.Map

// Next returns the first scheduled time strictly after t.
//
// Cron expressions follow the wall clock of the schedule's time zone, as
// cron does: a time that does not exist that day (the hour skipped when
// clocks spring forward) runs at the moment the clock jumps. A time that
// occurs twice (the hour repeated when clocks fall back) runs at both
// occurrences when the minute or hour field starts with "*" ("0 * * * *",
// "*/10 2 * * *", @hourly), so such a schedule keeps running every real
// hour; any other schedule ("30 2 * * *", @daily) runs once, at the first
// occurrence. @every durations count real time.
func (s *Schedule) Next(t time.Time) time.Time {
	spec, ok := s.spec.(*cron.SpecSchedule)
	if !ok {
		return s.spec.Next(t)
	}
	next := s.firstOccurrence(spec, t)
	if !s.wild || next.IsZero() || !s.fallsBackNear(t) {
		return next
	}
	if again := s.secondOccurrence(spec, t, next); !again.IsZero() {
		return again
	}
	return next
}

// firstOccurrence is the first scheduled time after t when every
// wall-clock time counts once, at its first occurrence.
func (s *Schedule) firstOccurrence(spec *cron.SpecSchedule, t time.Time) time.Time {
	wall := wallClock(t.In(s.loc))
	for {
		wall = spec.Next(wall)
		if wall.IsZero() {
			return wall
		}
		if abs := s.instant(wall); abs.After(t) {
			return abs
		}
	}
}

// fallsBackNear reports whether the clock of the schedule's zone turns
// back within a few hours of t. A second occurrence can come before the
// next first occurrence only then: its first occurrence must lie at or
// before t, and a repeated span lasts as long as the clock turns back (an
// hour, at most two).
func (s *Schedule) fallsBackNear(t time.Time) bool {
	_, before := t.Add(-3 * time.Hour).In(s.loc).Zone()
	_, after := t.Add(3 * time.Hour).In(s.loc).Zone()
	return before > after
}

// secondOccurrence returns the earliest second occurrence of a scheduled
// wall-clock time that lies after t and before limit (zero: no limit), or
// the zero time. Second occurrences exist only in the repeated span after
// a transition that turns the clock back: the one that started the zone
// period of t, and those up to limit.
func (s *Schedule) secondOccurrence(spec *cron.SpecSchedule, t, limit time.Time) time.Time {
	start, end := t.In(s.loc).ZoneBounds()
	var best time.Time
	for transition := start; ; {
		if again := s.repeatedAfter(spec, transition, t); !again.IsZero() && (best.IsZero() || again.Before(best)) {
			best = again
		}
		if end.IsZero() || (!limit.IsZero() && end.After(limit)) || (!best.IsZero() && end.After(best)) {
			return best
		}
		transition = end
		_, end = end.In(s.loc).ZoneBounds()
	}
}

// repeatedAfter returns the earliest second occurrence after t of a
// scheduled wall-clock time repeated by the transition at instant tr, or
// the zero time when tr turns the clock forward or there is none.
func (s *Schedule) repeatedAfter(spec *cron.SpecSchedule, tr, t time.Time) time.Time {
	if tr.IsZero() {
		return time.Time{}
	}
	_, before := tr.Add(-time.Nanosecond).In(s.loc).Zone()
	_, after := tr.In(s.loc).Zone()
	if before <= after {
		return time.Time{}
	}
	// The wall clock shows [from, to) again from tr on: first in the old
	// offset, now in the new one.
	from := wallClock(tr.In(s.loc))
	to := from.Add(time.Duration(before-after) * time.Second)
	search := from.Add(-time.Second) // Next is strictly after, to the second
	if tw := wallClock(t.In(s.loc)); !t.Before(tr) && tw.After(search) {
		search = tw
	}
	wall := spec.Next(search)
	if wall.IsZero() || !wall.Before(to) {
		return time.Time{}
	}
	// In the new offset: the wall time minus the offset after tr.
	abs := wall.Add(-time.Duration(after) * time.Second)
	if !abs.After(t) {
		return time.Time{}
	}
	return abs.In(s.loc)
}

// wallClock carries the wall-clock reading of t in UTC fields, the form
// cron's Next works on.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant maps a wall-clock time (carried in UTC fields) to the real
// instant in the schedule's zone: the first occurrence of a repeated time,
// the end of the gap for a skipped one.
func (s *Schedule) instant(wall time.Time) time.Time {
	abs := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, s.loc)
	if got := abs.In(s.loc); got.Hour() != wall.Hour() || got.Minute() != wall.Minute() || got.Day() != wall.Day() {
		// In the gap: run when the new offset starts.
		start, _ := abs.ZoneBounds()
		if !start.IsZero() && start.Before(abs) {
			return start
		}
		return abs
	}
	// A repeated time: prefer its earlier occurrence.
	for _, back := range []time.Duration{time.Hour, 30 * time.Minute, 2 * time.Hour} {
		e := abs.Add(-back).In(s.loc)
		if e.Hour() == wall.Hour() && e.Minute() == wall.Minute() && e.Day() == wall.Day() {
			return abs.Add(-back)
		}
	}
	return abs
}

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// String returns the expression as written.
func (s *Schedule) String() string { return s.expr }

// MostRecent returns the latest scheduled time in (after, now], or the zero
// time if there is none. A long downtime thus yields one catch-up time, not
// one per missed slot.
func (s *Schedule) MostRecent(after, now time.Time) time.Time {
	var last time.Time
	// Walk forward from the later of after and a bounded look-back, so a
	// frequent schedule after years of downtime stays cheap.
	start := after
	if lb := now.Add(-366 * 24 * time.Hour); start.Before(lb) {
		start = lb
	}
	for t := s.Next(start); !t.IsZero() && !t.After(now); t = s.Next(t) {
		last = t
	}
	return last
}
