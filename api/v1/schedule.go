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
	return &Schedule{expr: e, loc: loc, spec: spec}, nil
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
// clocks spring forward) runs at the moment the clock jumps; a time that
// occurs twice (the hour repeated when clocks fall back) runs once, at its
// first occurrence. @every durations count real time.
func (s *Schedule) Next(t time.Time) time.Time {
	spec, ok := s.spec.(*cron.SpecSchedule)
	if !ok {
		return s.spec.Next(t)
	}
	lt := t.In(s.loc)
	wall := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), lt.Second(), lt.Nanosecond(), time.UTC)
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
