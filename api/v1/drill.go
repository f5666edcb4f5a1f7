package v1

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Drills says how the agent proves that a policy's snapshots restore: on
// its own schedule, one drill at a time, it restores the newest snapshot of
// each source into scratch space (files) or a temporary database
// (PostgreSQL, MySQL), checks what came back and reports it. A drill reads
// from the destinations and never writes to them.
type Drills struct {
	// Schedule is a cron expression or @hourly ... @every <duration>, as
	// the policy's schedule.
	Schedule string `json:"schedule" validate:"required"`
	Suspend  bool   `json:"suspend,omitempty"`
	// Sample is the share of files written to scratch space and compared,
	// such as "10%"; every file is still read and hashed. Default "100%".
	Sample string `json:"sample,omitempty"`
	// Timeout bounds one drill, such as "2h" (the default).
	Timeout string `json:"timeout,omitempty"`
	// Sources limits the drill to these sources; empty means all.
	Sources []string `json:"sources,omitempty" validate:"omitempty,dive,required"`
	// Checks are queries run in each temporary database after the load.
	Checks []DrillCheck `json:"checks,omitempty" validate:"omitempty,dive"`
	// DrillTargets load a database source's dumps into another server
	// than the one it was backed up from.
	DrillTargets []DrillTarget `json:"drillTargets,omitempty" validate:"omitempty,dive"`
}

// DrillCheck is a query whose single numeric answer must lie within
// [Min, Max] (each bound optional).
type DrillCheck struct {
	// Source and Database restrict the check; empty means every database
	// of every database source.
	Source   string `json:"source,omitempty"`
	Database string `json:"database,omitempty"`
	SQL      string `json:"sql" validate:"required"`
	Min      *int64 `json:"min,omitempty"`
	Max      *int64 `json:"max,omitempty"`
}

// DrillTarget is the server a database source's drills load into.
type DrillTarget struct {
	Source       string `json:"source" validate:"required"`
	Host         string `json:"host,omitempty"`
	Port         int    `json:"port,omitempty" validate:"omitempty,min=1,max=65535"`
	Socket       string `json:"socket,omitempty" validate:"omitempty,abspath"`
	User         string `json:"user,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty" validate:"omitempty,abspath"`
}

// Objectives are a policy's recovery objectives.
type Objectives struct {
	// RPO is the largest acceptable age of the newest good snapshot of
	// each source, such as "1h" or "1d".
	RPO string `json:"rpo,omitempty"`
	// RTO is the longest acceptable restore, measured by the drills.
	RTO string `json:"rto,omitempty"`
}

// DefaultDrillTimeout bounds a drill that names no timeout.
const DefaultDrillTimeout = 2 * time.Hour

// DrillTimeout returns the drill's timeout, or the default.
func (d *Drills) DrillTimeout() time.Duration {
	if t, err := ParseRetentionDuration(d.Timeout); err == nil && t > 0 {
		return t
	}
	return DefaultDrillTimeout
}

// SampleFraction returns the sample as a fraction in (0, 1]; 1 when unset.
func (d *Drills) SampleFraction() float64 {
	f, err := ParseSample(d.Sample)
	if err != nil || d.Sample == "" {
		return 1
	}
	return f
}

// ParseSample parses a share such as "10%" or "0.5%" into (0, 1].
func ParseSample(s string) (float64, error) {
	num, ok := strings.CutSuffix(s, "%")
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f <= 0 || f > 100 {
		return 0, fmt.Errorf("invalid sample %q: use a percentage above 0 and at most 100, such as 10%%", s)
	}
	return f / 100, nil
}

// Parse returns the RPO and RTO; zero means not set.
func (o *Objectives) Parse() (rpo, rto time.Duration) {
	if o == nil {
		return 0, 0
	}
	rpo, _ = ParseRetentionDuration(o.RPO)
	rto, _ = ParseRetentionDuration(o.RTO)
	return rpo, rto
}

// drills checks spec.drills and spec.objectives.
func (v *validation) drills(o *Object, s *BackupPolicySpec) {
	if ob := s.Objectives; ob != nil {
		v.positiveSpan(o, "spec.objectives.rpo", ob.RPO)
		v.positiveSpan(o, "spec.objectives.rto", ob.RTO)
	}
	d := s.Drills
	if d == nil {
		return
	}
	if d.Schedule != "" {
		tz := s.TimeZone
		if _, err := LoadTimeZone(tz); err != nil {
			tz = ""
		}
		if _, err := ParseSchedule(d.Schedule, tz); err != nil {
			v.add(o, "spec.drills.schedule", "%v", err)
		}
	}
	if d.Sample != "" {
		if _, err := ParseSample(d.Sample); err != nil {
			v.add(o, "spec.drills.sample", "%v", err)
		}
	}
	v.positiveSpan(o, "spec.drills.timeout", d.Timeout)
	kinds := map[string]string{}
	for _, src := range s.Sources {
		kinds[src.Name] = src.Driver()
	}
	for i, name := range d.Sources {
		if _, ok := kinds[name]; name != "" && !ok {
			v.add(o, fmt.Sprintf("spec.drills.sources[%d]", i), "names no source of this policy")
		}
	}
	for i, c := range d.Checks {
		at := fmt.Sprintf("spec.drills.checks[%d]", i)
		v.databaseSource(o, at+".source", c.Source, kinds, true)
		if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
			v.add(o, at+".max", "must not be below min")
		}
	}
	seen := map[string]bool{}
	for i, t := range d.DrillTargets {
		at := fmt.Sprintf("spec.drills.drillTargets[%d]", i)
		v.databaseSource(o, at+".source", t.Source, kinds, false)
		if t.Source != "" && seen[t.Source] {
			v.add(o, at+".source", "source %q has a drill target already", t.Source)
		}
		seen[t.Source] = true
		v.secretFile(o, at+".passwordFile", t.PasswordFile)
	}
}

// databaseSource reports unless name is a postgres or mysql source of the
// policy (or empty, where allowed).
func (v *validation) databaseSource(o *Object, at, name string, kinds map[string]string, emptyOK bool) {
	if name == "" && emptyOK {
		return
	}
	kind, ok := kinds[name]
	switch {
	case name == "":
	case !ok:
		v.add(o, at, "names no source of this policy")
	case kind != "postgres" && kind != "mysql":
		v.add(o, at, "source %q is a %s source: only postgres and mysql sources load into databases", name, kind)
	}
}

// positiveSpan checks an optional span such as "30m" or "1d".
func (v *validation) positiveSpan(o *Object, at, s string) {
	if s == "" {
		return
	}
	if d, err := ParseRetentionDuration(s); err != nil {
		v.add(o, at, "%v", err)
	} else if d <= 0 {
		v.add(o, at, "must be above zero")
	}
}
