package v1

import (
	"testing"
	"time"
)

func TestParseBandwidth(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "500KiB/s", want: 500 << 10},
		{in: "5MiB/s", want: 5 << 20},
		{in: "1GB/s", want: 1e9},
		{in: "1.5MB/s", want: 1.5e6},
		{in: "2GiB/s", want: 2 << 30},
		{in: "1TB/s", want: 1e12},
		{in: "800kB/s", want: 800e3},
		{in: "800KB/s", want: 800e3},
		{in: "1024B/s", want: 1024},
		{in: "0", want: 0},
		{in: "unlimited", want: 0},
		{in: "5MiB", wantErr: `invalid rate "5MiB": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`},
		{in: "5 MiB/s", wantErr: `invalid rate "5 MiB/s": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`},
		{in: "5mib/s", wantErr: `invalid rate "5mib/s": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`},
		{in: "-5MiB/s", wantErr: `invalid rate "-5MiB/s": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`},
		{in: "5Mbit/s", wantErr: `invalid rate "5Mbit/s": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`},
		{in: "", wantErr: `invalid rate "": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`},
		{in: "Unlimited", wantErr: `invalid rate "Unlimited": use a number and a unit per second, such as 500KiB/s, 5MiB/s or 1GB/s (0 or unlimited for no limit)`},
		{in: "0MiB/s", wantErr: `rate "0MiB/s" is below the minimum of 1KiB/s (0 or unlimited for no limit)`},
		{in: "1000B/s", wantErr: `rate "1000B/s" is below the minimum of 1KiB/s (0 or unlimited for no limit)`},
		{in: "99999999TiB/s", wantErr: `invalid rate "99999999TiB/s": too large`},
	}
	for _, tt := range tests {
		got, err := ParseBandwidth(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.wantErr {
			t.Errorf("ParseBandwidth(%q) = %d, %q; want %d, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
		}
	}
}

func TestParseDays(t *testing.T) {
	const (
		sun = 1 << iota
		mon
		tue
		wed
		thu
		fri
		sat
	)
	tests := []struct {
		in   string
		want int // bits by time.Weekday
		err  bool
	}{
		{in: "Mon-Fri", want: mon | tue | wed | thu | fri},
		{in: "Sat,Sun", want: sat | sun},
		{in: "Mon,Wed-Fri", want: mon | wed | thu | fri},
		{in: "Sat, Sun", want: sat | sun},
		{in: "fri-mon", want: fri | sat | sun | mon},
		{in: "Sun", want: sun},
		{in: "", want: sun | mon | tue | wed | thu | fri | sat},
		{in: "Mon-Fry", err: true},
		{in: "Monday", err: true},
		{in: "Mon-", err: true},
		{in: "Mon,,Tue", err: true},
		{in: "1-5", err: true},
		{in: "Mon-Wed-Fri", err: true},
	}
	for _, tt := range tests {
		set, err := parseDays(tt.in)
		got := 0
		for d, on := range set {
			if on {
				got |= 1 << d
			}
		}
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("parseDays(%q) = %07b, %v; want %07b, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	if _, err := parseDays("Mon-Fry"); err == nil || err.Error() != `invalid days "Mon-Fry": use Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges such as Mon-Fri and lists such as Sat,Sun` {
		t.Errorf("parseDays(Mon-Fry) error = %v", err)
	}
}

func TestParseBetween(t *testing.T) {
	tests := []struct {
		in         string
		start, end int
		wantErr    string
	}{
		{in: "08:00-18:00", start: 8 * 60, end: 18 * 60},
		{in: "22:00-06:00", start: 22 * 60, end: 6 * 60},
		{in: "00:00-24:00", start: 0, end: 24 * 60},
		{in: "12:30-13:45", start: 12*60 + 30, end: 13*60 + 45},
		{in: "8:00-18:00", wantErr: `invalid time range "8:00-18:00": use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00`},
		{in: "08:00 - 18:00", wantErr: `invalid time range "08:00 - 18:00": use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00`},
		{in: "24:00-06:00", wantErr: `invalid time range "24:00-06:00": use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00`},
		{in: "08:60-18:00", wantErr: `invalid time range "08:60-18:00": use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00`},
		{in: "08:00-24:30", wantErr: `invalid time range "08:00-24:30": use HH:MM-HH:MM, such as 08:00-18:00 or 22:00-06:00`},
		{in: "08:00-08:00", wantErr: `time range "08:00-08:00" is empty (00:00-24:00 is the whole day)`},
	}
	for _, tt := range tests {
		start, end, err := parseBetween(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if start != tt.start || end != tt.end || gotErr != tt.wantErr {
			t.Errorf("parseBetween(%q) = %d, %d, %q; want %d, %d, %q", tt.in, start, end, gotErr, tt.start, tt.end, tt.wantErr)
		}
	}
}

func TestBandwidthLimitAt(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	// 2026-12-04 is a Friday.
	at := func(day, hour, min int) time.Time { return time.Date(2026, 12, day, hour, min, 0, 0, berlin) }
	sched, err := CompileBandwidth(&Bandwidth{
		Limit: "50MiB/s",
		Schedule: []BandwidthWindow{
			{Days: "Mon-Fri", Between: "08:00-18:00", Limit: "5MiB/s"},
			{Days: "Fri", Between: "22:00-06:00", Limit: "unlimited"},
			{Between: "12:00-13:00", Limit: "1MiB/s"}, // every day; shadowed on weekdays
		},
		TimeZone: "Europe/Berlin",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		t    time.Time
		want int64
	}{
		{"Friday before office hours", at(4, 7, 59), 50 << 20},
		{"Friday at 08:00", at(4, 8, 0), 5 << 20},
		{"Friday 17:59", at(4, 17, 59), 5 << 20},
		{"Friday at 18:00, the end is excluded", at(4, 18, 0), 50 << 20},
		{"the first window wins over the every-day one", at(4, 12, 30), 5 << 20},
		{"Saturday noon: the every-day window", at(5, 12, 30), 1 << 20},
		{"Friday 22:00, overnight window starts", at(4, 22, 0), 0},
		{"Saturday 05:59, the Friday night window goes on", at(5, 5, 59), 0},
		{"Saturday 06:00", at(5, 6, 0), 50 << 20},
		{"Thursday 23:00, not a listed night", at(3, 23, 0), 50 << 20},
		{"Friday 01:00, Thursday night is not listed", at(4, 1, 0), 50 << 20},
		{"in UTC the same instant", time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC), 5 << 20}, // 08:00 CET
		{"Saturday 10:00", at(5, 10, 0), 50 << 20},
	}
	for _, tt := range tests {
		if got := sched.LimitAt(tt.t); got != tt.want {
			t.Errorf("%s: LimitAt(%v) = %d, want %d", tt.name, tt.t, got, tt.want)
		}
	}
	if got, want := sched.Describe(at(4, 9, 0)), "5MiB/s (Mon-Fri 08:00-18:00 5MiB/s; Fri 22:00-06:00 unlimited; daily 12:00-13:00 1MiB/s; otherwise 50MiB/s; times in Europe/Berlin)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if got, want := sched.Describe(at(4, 23, 0)), "unlimited (Mon-Fri 08:00-18:00 5MiB/s; Fri 22:00-06:00 unlimited; daily 12:00-13:00 1MiB/s; otherwise 50MiB/s; times in Europe/Berlin)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}

func TestBandwidthDefaults(t *testing.T) {
	fixed, err := CompileBandwidth(&Bandwidth{Limit: "2MiB/s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fixed.LimitAt(time.Now()); got != 2<<20 {
		t.Errorf("LimitAt = %d, want %d", got, 2<<20)
	}
	if got, want := fixed.Describe(time.Now()), "2MiB/s (always 2MiB/s)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	// Without a time zone the windows are read in the host's local time.
	local, err := CompileBandwidth(&Bandwidth{Schedule: []BandwidthWindow{{Between: "08:00-18:00", Limit: "1MiB/s"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := local.LimitAt(time.Date(2026, 12, 4, 9, 0, 0, 0, time.Local)); got != 1<<20 {
		t.Errorf("LimitAt 09:00 local = %d, want %d", got, 1<<20)
	}
	if got := local.LimitAt(time.Date(2026, 12, 4, 19, 0, 0, 0, time.Local)); got != 0 {
		t.Errorf("LimitAt 19:00 local = %d, want 0 (no limit)", got)
	}
	if got, want := local.String(), "daily 08:00-18:00 1MiB/s; otherwise unlimited; times in Local"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for _, b := range []Bandwidth{
		{Limit: "fast"},
		{TimeZone: "Mars/Olympus"},
		{Schedule: []BandwidthWindow{{Days: "Mo", Between: "08:00-18:00", Limit: "1MiB/s"}}},
	} {
		if _, err := CompileBandwidth(&b); err == nil {
			t.Errorf("CompileBandwidth(%+v) succeeded, want an error", b)
		}
	}
}
