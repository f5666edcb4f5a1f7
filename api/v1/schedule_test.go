package v1

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, tz string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatalf("load %s: %v", tz, err)
	}
	return loc
}

func TestScheduleNext(t *testing.T) {
	utc := time.UTC
	berlin := mustLoad(t, "Europe/Berlin")
	newYork := mustLoad(t, "America/New_York")
	tests := []struct {
		name string
		expr string
		tz   string
		from time.Time
		// want are the next times, each after the one before.
		want []time.Time
	}{
		{
			name: "5-field hourly",
			expr: "0 * * * *",
			from: time.Date(2025, 1, 1, 10, 15, 0, 0, utc),
			want: []time.Time{time.Date(2025, 1, 1, 11, 0, 0, 0, utc), time.Date(2025, 1, 1, 12, 0, 0, 0, utc)},
		},
		{
			name: "5-field ranges, steps and weekday names",
			expr: "*/20 9-17 * * MON-FRI",
			from: time.Date(2025, 1, 3, 17, 50, 0, 0, utc), // a Friday
			want: []time.Time{time.Date(2025, 1, 6, 9, 0, 0, 0, utc), time.Date(2025, 1, 6, 9, 20, 0, 0, utc)},
		},
		{
			name: "an exact time is strictly after",
			expr: "30 4 * * *",
			from: time.Date(2025, 1, 1, 4, 30, 0, 0, utc),
			want: []time.Time{time.Date(2025, 1, 2, 4, 30, 0, 0, utc)},
		},
		{
			name: "@hourly",
			expr: "@hourly",
			from: time.Date(2025, 1, 1, 10, 0, 0, 0, utc),
			want: []time.Time{time.Date(2025, 1, 1, 11, 0, 0, 0, utc)},
		},
		{
			name: "@daily",
			expr: "@daily",
			from: time.Date(2025, 1, 1, 10, 0, 0, 0, utc),
			want: []time.Time{time.Date(2025, 1, 2, 0, 0, 0, 0, utc)},
		},
		{
			name: "@weekly is Sunday midnight",
			expr: "@weekly",
			from: time.Date(2025, 1, 1, 10, 0, 0, 0, utc), // a Wednesday
			want: []time.Time{time.Date(2025, 1, 5, 0, 0, 0, 0, utc)},
		},
		{
			name: "@monthly",
			expr: "@monthly",
			from: time.Date(2025, 1, 31, 10, 0, 0, 0, utc),
			want: []time.Time{time.Date(2025, 2, 1, 0, 0, 0, 0, utc), time.Date(2025, 3, 1, 0, 0, 0, 0, utc)},
		},
		{
			name: "@yearly",
			expr: "@yearly",
			from: time.Date(2025, 6, 1, 0, 0, 0, 0, utc),
			want: []time.Time{time.Date(2026, 1, 1, 0, 0, 0, 0, utc)},
		},
		{
			name: "@every counts from the given time",
			expr: "@every 90m",
			from: time.Date(2025, 1, 1, 10, 7, 0, 0, utc),
			want: []time.Time{time.Date(2025, 1, 1, 11, 37, 0, 0, utc), time.Date(2025, 1, 1, 13, 7, 0, 0, utc)},
		},
		{
			name: "Europe/Berlin, winter and summer",
			expr: "0 2 * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2025, 3, 28, 12, 0, 0, 0, utc),
			want: []time.Time{
				time.Date(2025, 3, 29, 1, 0, 0, 0, utc), // 02:00 CET
				// 2025-03-30 02:00 does not exist in Berlin: it runs when
				// the clock jumps to 03:00 CEST (see the DST test).
				time.Date(2025, 3, 30, 1, 0, 0, 0, utc), // 03:00 CEST
				time.Date(2025, 3, 31, 0, 0, 0, 0, utc), // 02:00 CEST
			},
		},
		{
			name: "America/New_York",
			expr: "0 9 * * *",
			tz:   "America/New_York",
			from: time.Date(2025, 11, 1, 0, 0, 0, 0, newYork),
			want: []time.Time{
				time.Date(2025, 11, 1, 13, 0, 0, 0, utc), // 09:00 EDT
				time.Date(2025, 11, 2, 14, 0, 0, 0, utc), // 09:00 EST
			},
		},
		{
			// On the spring-forward day (02:00 -> 03:00) 02:30 does not
			// exist: a daily 02:30 runs when the clock jumps, as cron does,
			// instead of being skipped that day.
			name: "DST spring forward: daily 02:30 in Berlin",
			expr: "30 2 * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2025, 3, 29, 3, 0, 0, 0, berlin),
			want: []time.Time{
				time.Date(2025, 3, 30, 1, 0, 0, 0, utc), // 03:00 CEST
				time.Date(2025, 3, 31, 2, 30, 0, 0, berlin),
				time.Date(2025, 4, 1, 2, 30, 0, 0, berlin),
			},
		},
		{
			// On fall-back (02:00 EDT -> 01:00 EST) the wall clock shows
			// 01:00 twice; a schedule whose hour is "*" runs in every
			// real hour, as cron runs its wildcard jobs.
			name: "DST fall back: hourly in New York",
			expr: "0 * * * *",
			tz:   "America/New_York",
			from: time.Date(2025, 11, 2, 0, 30, 0, 0, newYork),
			want: []time.Time{
				time.Date(2025, 11, 2, 5, 0, 0, 0, utc), // 01:00 EDT
				time.Date(2025, 11, 2, 6, 0, 0, 0, utc), // 01:00 EST
				time.Date(2025, 11, 2, 7, 0, 0, 0, utc), // 02:00 EST
				time.Date(2025, 11, 2, 8, 0, 0, 0, utc), // 03:00 EST
			},
		},
		{
			// 2026-10-25 in Berlin: 03:00 CEST becomes 02:00 CET at
			// 01:00 UTC, so 02:00-02:59 is shown twice.
			name: "DST fall back: hourly in Berlin runs every real hour",
			expr: "0 * * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 10, 24, 23, 30, 0, 0, utc),
			want: []time.Time{
				time.Date(2026, 10, 25, 0, 0, 0, 0, utc), // 02:00 CEST
				time.Date(2026, 10, 25, 1, 0, 0, 0, utc), // 02:00 CET
				time.Date(2026, 10, 25, 2, 0, 0, 0, utc), // 03:00 CET
				time.Date(2026, 10, 25, 3, 0, 0, 0, utc), // 04:00 CET
			},
		},
		{
			name: "DST fall back: @hourly is a wildcard hour too",
			expr: "@hourly",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 10, 25, 0, 0, 0, 0, utc), // 02:00 CEST
			want: []time.Time{
				time.Date(2026, 10, 25, 1, 0, 0, 0, utc), // 02:00 CET
				time.Date(2026, 10, 25, 2, 0, 0, 0, utc), // 03:00 CET
			},
		},
		{
			name: "DST fall back: from inside the first occurrence",
			expr: "0 * * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 10, 25, 0, 30, 0, 0, utc), // 02:30 CEST
			want: []time.Time{
				time.Date(2026, 10, 25, 1, 0, 0, 0, utc), // 02:00 CET
				time.Date(2026, 10, 25, 2, 0, 0, 0, utc), // 03:00 CET
			},
		},
		{
			name: "DST fall back: every 30 minutes",
			expr: "*/30 * * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 10, 24, 23, 50, 0, 0, utc),
			want: []time.Time{
				time.Date(2026, 10, 25, 0, 0, 0, 0, utc),  // 02:00 CEST
				time.Date(2026, 10, 25, 0, 30, 0, 0, utc), // 02:30 CEST
				time.Date(2026, 10, 25, 1, 0, 0, 0, utc),  // 02:00 CET
				time.Date(2026, 10, 25, 1, 30, 0, 0, utc), // 02:30 CET
				time.Date(2026, 10, 25, 2, 0, 0, 0, utc),  // 03:00 CET
			},
		},
		{
			// A wildcard minute makes a job wild for cron, even with a
			// fixed hour: it runs in both 02:00 hours.
			name: "DST fall back: a wildcard minute in a fixed hour",
			expr: "*/20 2 * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 10, 25, 0, 30, 0, 0, utc), // 02:30 CEST
			want: []time.Time{
				time.Date(2026, 10, 25, 0, 40, 0, 0, utc), // 02:40 CEST
				time.Date(2026, 10, 25, 1, 0, 0, 0, utc),  // 02:00 CET
				time.Date(2026, 10, 25, 1, 20, 0, 0, utc), // 02:20 CET
				time.Date(2026, 10, 25, 1, 40, 0, 0, utc), // 02:40 CET
				time.Date(2026, 10, 26, 1, 0, 0, 0, utc),  // 02:00 CET, the next day
			},
		},
		{
			name: "DST fall back: daily 02:30 in Berlin runs once",
			expr: "30 2 * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 10, 24, 12, 0, 0, 0, utc),
			want: []time.Time{
				time.Date(2026, 10, 25, 0, 30, 0, 0, utc), // 02:30 CEST
				time.Date(2026, 10, 26, 1, 30, 0, 0, utc), // 02:30 CET, the next day
			},
		},
		{
			name: "DST fall back: a fixed hour list runs once",
			expr: "0 1-3 * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 10, 24, 22, 30, 0, 0, utc),
			want: []time.Time{
				time.Date(2026, 10, 24, 23, 0, 0, 0, utc), // 01:00 CEST
				time.Date(2026, 10, 25, 0, 0, 0, 0, utc),  // 02:00 CEST
				time.Date(2026, 10, 25, 2, 0, 0, 0, utc),  // 03:00 CET
				time.Date(2026, 10, 26, 0, 0, 0, 0, utc),  // 01:00 CET, the next day
			},
		},
		{
			// Unchanged by the fall-back rule: the skipped 02:00 runs when
			// the clock jumps, at the same instant as 03:00 CEST.
			name: "DST spring forward: hourly in Berlin",
			expr: "0 * * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 3, 28, 23, 30, 0, 0, utc),
			want: []time.Time{
				time.Date(2026, 3, 29, 0, 0, 0, 0, utc), // 01:00 CET
				time.Date(2026, 3, 29, 1, 0, 0, 0, utc), // 03:00 CEST
				time.Date(2026, 3, 29, 2, 0, 0, 0, utc), // 04:00 CEST
			},
		},
		{
			name: "DST spring forward: half past every hour in Berlin",
			expr: "30 * * * *",
			tz:   "Europe/Berlin",
			from: time.Date(2026, 3, 29, 0, 0, 0, 0, utc),
			want: []time.Time{
				time.Date(2026, 3, 29, 0, 30, 0, 0, utc), // 01:30 CET
				time.Date(2026, 3, 29, 1, 0, 0, 0, utc),  // 02:30 does not exist: 03:00 CEST
				time.Date(2026, 3, 29, 1, 30, 0, 0, utc), // 03:30 CEST
			},
		},
		{
			name: "DST fall back: daily 01:30 in New York runs once",
			expr: "30 1 * * *",
			tz:   "America/New_York",
			from: time.Date(2025, 11, 1, 12, 0, 0, 0, utc),
			want: []time.Time{
				time.Date(2025, 11, 2, 5, 30, 0, 0, utc), // 01:30 EDT
				time.Date(2025, 11, 3, 6, 30, 0, 0, utc), // 01:30 EST, the next day
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.expr, tt.tz)
			if err != nil {
				t.Fatalf("ParseSchedule(%q, %q): %v", tt.expr, tt.tz, err)
			}
			at := tt.from
			for i, want := range tt.want {
				got := s.Next(at)
				if !got.Equal(want) {
					t.Fatalf("Next #%d after %v = %v, want %v", i+1, at, got, want.In(s.Location()))
				}
				at = got
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct {
		expr, tz, want string
	}{
		{"", "", `invalid schedule "": empty spec string`},
		{"* * * *", "", `invalid schedule "* * * *": expected exactly 5 fields, found 4: [* * * *]`},
		{"0 0 * * * *", "", `invalid schedule "0 0 * * * *": expected exactly 5 fields, found 6: [0 0 * * * *]`},
		{"60 * * * *", "", `invalid schedule "60 * * * *": end of range (60) above maximum (59): 60`},
		{"0 0 * * funday", "", `invalid schedule "0 0 * * funday": failed to parse int from funday: strconv.Atoi: parsing "funday": invalid syntax`},
		{"@reboot", "", `invalid schedule "@reboot": unrecognized descriptor: @reboot`},
		{"@every 30s", "", `@every duration 30s is shorter than one minute`},
		{"@every soon", "", `invalid @every duration in "@every soon": time: invalid duration "soon"`},
		{"TZ=Europe/Berlin 0 * * * *", "", `put the time zone in spec.timeZone, not in the schedule`},
		{"CRON_TZ=UTC 0 * * * *", "", `put the time zone in spec.timeZone, not in the schedule`},
		{"0 * * * *", "Europe/Atlantis", `unknown time zone "Europe/Atlantis"`},
	}
	for _, tt := range tests {
		_, err := ParseSchedule(tt.expr, tt.tz)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseSchedule(%q, %q) error = %v, want %q", tt.expr, tt.tz, err, tt.want)
		}
	}
}

func TestScheduleAccessors(t *testing.T) {
	s, err := ParseSchedule("  0 * * * * ", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "0 * * * *"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := s.Location().String(), "Europe/Berlin"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	if s, _ := ParseSchedule("@daily", ""); s.Location() != time.UTC {
		t.Errorf("Location() of no time zone = %v, want UTC", s.Location())
	}
}

func TestScheduleMostRecent(t *testing.T) {
	utc := time.UTC
	hourly, err := ParseSchedule("0 * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	daily, err := ParseSchedule("30 2 * * *", "America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		s          *Schedule
		after, now time.Time
		want       time.Time
	}{
		{
			name:  "after three days down, one catch-up at the latest slot",
			s:     hourly,
			after: time.Date(2025, 1, 1, 10, 0, 0, 0, utc),
			now:   time.Date(2025, 1, 4, 15, 42, 0, 0, utc),
			want:  time.Date(2025, 1, 4, 15, 0, 0, 0, utc),
		},
		{
			name:  "after years down, still one",
			s:     daily,
			after: time.Date(2019, 5, 1, 0, 0, 0, 0, utc),
			now:   time.Date(2025, 7, 10, 12, 0, 0, 0, utc),
			want:  time.Date(2025, 7, 10, 6, 30, 0, 0, utc), // 02:30 EDT
		},
		{
			name:  "never ran",
			s:     hourly,
			now:   time.Date(2025, 1, 4, 15, 42, 0, 0, utc),
			want:  time.Date(2025, 1, 4, 15, 0, 0, 0, utc),
			after: time.Time{},
		},
		{
			name:  "a slot exactly at now counts",
			s:     hourly,
			after: time.Date(2025, 1, 4, 14, 0, 0, 0, utc),
			now:   time.Date(2025, 1, 4, 15, 0, 0, 0, utc),
			want:  time.Date(2025, 1, 4, 15, 0, 0, 0, utc),
		},
		{
			name:  "nothing due since the last run",
			s:     hourly,
			after: time.Date(2025, 1, 4, 15, 0, 0, 0, utc),
			now:   time.Date(2025, 1, 4, 15, 59, 59, 0, utc),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.MostRecent(tt.after, tt.now)
			if !got.Equal(tt.want) {
				t.Errorf("MostRecent(%v, %v) = %v, want %v", tt.after, tt.now, got, tt.want)
			}
		})
	}
}
