package v1

import (
	"fmt"
	"strings"
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
	return &Schedule{expr: e, loc: loc, spec: spec}, nil
}

// LoadTimeZone resolves an IANA zone name; "" is UTC.
func LoadTimeZone(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", tz)
	}
	return loc, nil
}

// Next returns the first scheduled time strictly after t.
func (s *Schedule) Next(t time.Time) time.Time {
	return s.spec.Next(t.In(s.loc))
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
