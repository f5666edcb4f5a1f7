package v1

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Bandwidth caps the transfer rate of a destination, by time of day.
//
// Rates are written as a number and a unit per second: 500KiB/s, 5MiB/s,
// 1.5MB/s, 1GB/s (B, kB or KB, MB, GB, TB count in powers of 1000; KiB, MiB,
// GiB, TiB in powers of 1024). "0" or "unlimited" means no limit.
type Bandwidth struct {
	// Limit is the rate outside every window of Schedule; empty, "0" or
	// "unlimited" means none.
	Limit string `json:"limit,omitempty"`
	// Schedule lists windows with a rate of their own; the first window
	// that covers a moment sets the rate in force then.
	Schedule []BandwidthWindow `json:"schedule,omitempty" validate:"omitempty,dive"`
	// TimeZone is the IANA zone the windows are read in; empty means the
	// host's local time zone.
	TimeZone string `json:"timeZone,omitempty"`
}

// BandwidthWindow is a rate on some days between two times of day.
type BandwidthWindow struct {
	// Days such as "Mon-Fri", "Sat,Sun" or "Mon,Wed-Fri"; empty means
	// every day. An overnight window belongs to the day it starts on.
	Days string `json:"days,omitempty"`
	// Between is "HH:MM-HH:MM", such as "08:00-18:00"; a start after the
	// end ("22:00-06:00") runs overnight into the next day; the end may
	// be 24:00.
	Between string `json:"between" validate:"required"`
	Limit   string `json:"limit" validate:"required"`
}

// MinBandwidth is the lowest rate a limit may name (besides 0, no limit):
// below it an upload would seem to hang.
const MinBandwidth = 1024

var (
	rateRe  = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)/s$`)
	rateMul = map[string]float64{
		"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}
)

// ParseBandwidth parses a rate such as "5MiB/s" into bytes per second; "0"
// and "unlimited" give 0, no limit.
func ParseBandwidth(s string) (int64, error) {
	if s == "0" || s == "unlimited" {
		return 0, nil
	}
	m := rateRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid rate %q: use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)", s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	bps := n * rateMul[m[2]]
	if err != nil || bps >= math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid rate %q: too large", s)
	}
	if bps < MinBandwidth {
		return 0, fmt.Errorf("rate %q is below the minimum of 1KiB/s (0 or unlimited for no limit)", s)
	}
	return int64(bps), nil
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// parseDays parses "Mon-Fri", "Sat,Sun", "Mon,Wed-Fri" (names in any case;
// a range may wrap, "Fri-Mon") into a set indexed by time.Weekday; empty
// means every day.
func parseDays(s string) ([7]bool, error) {
	var set [7]bool
	if s == "" {
		return [7]bool{true, true, true, true, true, true, true}, nil
	}
	bad := fmt.Errorf("invalid days %q: use Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges such as Mon-Fri and lists such as Sat,Sun", s)
	day := func(name string) (int, bool) {
		for i, d := range dayNames {
			if strings.EqualFold(strings.TrimSpace(name), d) {
				return i, true
			}
		}
		return 0, false
	}
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok := day(from)
		if !ok {
			return set, bad
		}
		b := a
		if isRange {
			if b, ok = day(to); !ok {
				return set, bad
			}
		}
		for i := a; ; i = (i + 1) % 7 {
			set[i] = true
			if i == b {
				break
			}
		}
	}
	return set, nil
}

var betweenRe = regexp.MustCompile(`^([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})$`)

// parseBetween parses "HH:MM-HH:MM" into minutes after midnight; the end
// may be 24:00 and may come before the start (overnight).
func parseBetween(s string) (start, end int, err error) {
	bad := fmt.Errorf("invalid time range %q: use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00", s)
	m := betweenRe.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, bad
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	if n[0] > 23 || n[1] > 59 || n[2] > 24 || n[3] > 59 || (n[2] == 24 && n[3] != 0) {
		return 0, 0, bad
	}
	start, end = n[0]*60+n[1], n[2]*60+n[3]
	if start == end {
		return 0, 0, fmt.Errorf("time range %q is empty (00:00-24:00 is the whole day)", s)
	}
	return start, end, nil
}

// BandwidthSchedule is a validated Bandwidth: the rate in force at any
// moment.
type BandwidthSchedule struct {
	def     int64
	defText string
	windows []bandwidthWindow
	loc     *time.Location
}

type bandwidthWindow struct {
	days       [7]bool
	start, end int // minutes after midnight
	limit      int64
	limitText  string // the limit as written, or "unlimited"
	text       string // the whole window, for messages
}

// CompileBandwidth checks b and returns its schedule; Validate reports the
// same problems, each on its field.
func CompileBandwidth(b *Bandwidth) (*BandwidthSchedule, error) {
	s := &BandwidthSchedule{loc: time.Local, defText: "unlimited"}
	if b.TimeZone != "" {
		loc, err := LoadTimeZone(b.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("bandwidth.timeZone: %w", err)
		}
		s.loc = loc
	}
	if b.Limit != "" {
		def, err := ParseBandwidth(b.Limit)
		if err != nil {
			return nil, fmt.Errorf("bandwidth.limit: %w", err)
		}
		s.def = def
		if def > 0 {
			s.defText = b.Limit
		}
	}
	for i, w := range b.Schedule {
		at := fmt.Sprintf("bandwidth.schedule[%d]", i)
		days, err := parseDays(w.Days)
		if err != nil {
			return nil, fmt.Errorf("%s.days: %w", at, err)
		}
		start, end, err := parseBetween(w.Between)
		if err != nil {
			return nil, fmt.Errorf("%s.between: %w", at, err)
		}
		limit, err := ParseBandwidth(w.Limit)
		if err != nil {
			return nil, fmt.Errorf("%s.limit: %w", at, err)
		}
		text := w.Limit
		if limit == 0 {
			text = "unlimited"
		}
		days0 := w.Days
		if days0 == "" {
			days0 = "daily"
		}
		s.windows = append(s.windows, bandwidthWindow{
			days: days, start: start, end: end, limit: limit, limitText: text,
			text: fmt.Sprintf("%s %s %s", days0, w.Between, text),
		})
	}
	return s, nil
}

// LimitAt returns the rate in force at t in bytes per second; 0 means no
// limit.
func (s *BandwidthSchedule) LimitAt(t time.Time) int64 {
	if w := s.window(t); w != nil {
		return w.limit
	}
	return s.def
}

// window returns the first window covering t, or nil.
func (s *BandwidthSchedule) window(t time.Time) *bandwidthWindow {
	lt := t.In(s.loc)
	day := int(lt.Weekday())
	yesterday := (day + 6) % 7
	m := lt.Hour()*60 + lt.Minute()
	for i := range s.windows {
		w := &s.windows[i]
		if w.start < w.end {
			if w.days[day] && m >= w.start && m < w.end {
				return w
			}
			continue
		}
		// Overnight: from start on a listed day to end on the next.
		if (w.days[day] && m >= w.start) || (w.days[yesterday] && m < w.end) {
			return w
		}
	}
	return nil
}

// Describe says which rate is in force at t and why, for the run's log:
// "5MiB/s (Mon-Fri 08:00-18:00 5MiB/s; otherwise 50MiB/s; times in
// Europe/Berlin)".
func (s *BandwidthSchedule) Describe(t time.Time) string {
	now := s.defText
	if w := s.window(t); w != nil {
		now = w.limitText
	}
	return now + " (" + s.String() + ")"
}

// String describes the whole schedule: "Mon-Fri 08:00-18:00 5MiB/s;
// otherwise 50MiB/s; times in Europe/Berlin".
func (s *BandwidthSchedule) String() string {
	if len(s.windows) == 0 {
		return "always " + s.defText
	}
	var parts []string
	for _, w := range s.windows {
		parts = append(parts, w.text)
	}
	parts = append(parts, "otherwise "+s.defText, "times in "+s.loc.String())
	return strings.Join(parts, "; ")
}
