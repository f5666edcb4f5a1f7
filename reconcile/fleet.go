package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// HostStatusName is the name of the per-host status object every agent
// writes to each of its destinations after a pass, under HOST/. It starts
// with a dot and is not a snapshot manifest key, so listings of snapshots
// and retention never take it for one (docs/format.md).
const HostStatusName = ".aegis-host.json"

// HostStatusFormatVersion is the version of the HostStatus JSON.
const HostStatusFormatVersion = 1

// HostStatus is what one host tells the fleet view of itself: its policies
// that use the destination, their state, and the last snapshot of each
// source. It holds no secret: names, times, IDs and sizes only.
type HostStatus struct {
	FormatVersion int                `json:"formatVersion"`
	Host          string             `json:"host"`
	Time          time.Time          `json:"time"`
	Agent         string             `json:"agent"`
	Policies      []HostPolicyStatus `json:"policies"`
}

// HostPolicyStatus is one policy in a HostStatus.
type HostPolicyStatus struct {
	Name               string     `json:"name"`
	Schedule           string     `json:"schedule"`
	Suspended          bool       `json:"suspended,omitempty"`
	LastResult         string     `json:"lastResult,omitempty"`
	LastAttemptTime    *time.Time `json:"lastAttemptTime,omitempty"`
	LastSuccessfulTime *time.Time `json:"lastSuccessfulTime,omitempty"`
	NextScheduleTime   *time.Time `json:"nextScheduleTime,omitempty"`
	// Interval is the schedule's usual gap, so a reader can tell an
	// overdue host without parsing the schedule.
	Interval string             `json:"interval,omitempty"`
	Sources  []HostSourceStatus `json:"sources,omitempty"`
}

// HostSourceStatus is the last snapshot of one source.
type HostSourceStatus struct {
	Name     string    `json:"name"`
	Snapshot string    `json:"snapshot,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	Bytes    int64     `json:"bytes,omitempty"`
}

// HostStatusKey is the key of host's status object on a destination.
func HostStatusKey(host string) string { return host + "/" + HostStatusName }

// ReadHostStatus reads the status object under key.
func ReadHostStatus(ctx context.Context, dest drivers.Destination, key string) (*HostStatus, error) {
	rc, err := dest.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read host status %s: %w", key, err)
	}
	defer rc.Close()
	var hs HostStatus
	if err := json.NewDecoder(io.LimitReader(rc, 4<<20)).Decode(&hs); err != nil {
		return nil, fmt.Errorf("host status %s is not valid: %w", key, err)
	}
	if hs.FormatVersion > HostStatusFormatVersion {
		return nil, fmt.Errorf("host status %s has format version %d; this aegis-agent reads up to %d", key, hs.FormatVersion, HostStatusFormatVersion)
	}
	if HostStatusKey(hs.Host) != key && !strings.HasSuffix(key, "/"+HostStatusKey(hs.Host)) {
		return nil, fmt.Errorf("host status %s names host %q: it was moved or edited", key, hs.Host)
	}
	return &hs, nil
}

// ListHostStatuses reads every host status object on dest, sorted by host.
// Objects that cannot be read are returned in bad.
func ListHostStatuses(ctx context.Context, dest drivers.Destination) (hosts []*HostStatus, bad []error, err error) {
	objs, err := dest.List(ctx, "")
	if err != nil {
		return nil, nil, fmt.Errorf("list destination: %w", err)
	}
	for _, o := range objs {
		parts := strings.Split(o.Key, "/")
		if len(parts) != 2 || parts[1] != HostStatusName {
			continue
		}
		hs, err := ReadHostStatus(ctx, dest, o.Key)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		hosts = append(hosts, hs)
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Host < hosts[j].Host })
	return hosts, bad, nil
}

// hostStatusFor builds what this host writes to destination dest: the
// policies that back up to it. prev is what it wrote there before (nil
// when nothing): a source whose last run failed keeps its last snapshot.
func hostStatusFor(host string, now time.Time, dest string, pols map[string]*v1.BackupPolicy, plan Plan, records map[string]ObjectRecord, prev *HostStatus) *HostStatus {
	hs := &HostStatus{FormatVersion: HostStatusFormatVersion, Host: host, Time: now.UTC(), Agent: observe.Version, Policies: []HostPolicyStatus{}}
	prevSources := map[string]HostSourceStatus{}
	if prev != nil {
		for _, p := range prev.Policies {
			for _, s := range p.Sources {
				prevSources[p.Name+"/"+s.Name] = s
			}
		}
	}
	for name, p := range pols {
		if !slices.Contains(p.Spec.Destinations, dest) {
			continue
		}
		rec := records[v1.KindBackupPolicy+"/"+name]
		ps := HostPolicyStatus{Name: name, Schedule: p.Spec.Schedule, Suspended: p.Spec.Suspend, LastResult: rec.Policy.LastResult,
			LastAttemptTime: timePtr(rec.Policy.LastAttemptTime), LastSuccessfulTime: timePtr(rec.Policy.LastSuccessfulTime),
			NextScheduleTime: timePtr(plan.Policies[name].NextScheduleTime)}
		if iv := observe.ScheduleInterval(p, now); iv > 0 {
			ps.Interval = iv.String()
		}
		for _, src := range p.Spec.Sources {
			s := prevSources[name+"/"+src.Name]
			s.Name = src.Name
			if r := rec.LastRun; r != nil && r.SnapshotID != "" {
				for _, sr := range r.Sources {
					if sr.Name == src.Name && sr.Result == v1.ResultSucceeded {
						s = HostSourceStatus{Name: src.Name, Snapshot: r.SnapshotID, Time: r.StartTime.UTC(), Bytes: sr.Bytes}
					}
				}
			}
			ps.Sources = append(ps.Sources, s)
		}
		hs.Policies = append(hs.Policies, ps)
	}
	sort.Slice(hs.Policies, func(i, j int) bool { return hs.Policies[i].Name < hs.Policies[j].Name })
	return hs
}

// writeHostStatuses writes this host's status object to every destination
// its valid policies use. Failures are logged: the fleet view is a report,
// never a reason to fail a pass.
func (a *Agent) writeHostStatuses(ctx context.Context, plan Plan, pols map[string]*v1.BackupPolicy, dests map[string]*v1.Destination, mode passMode) {
	if ctx.Err() != nil || mode == passStatusOnly || len(pols) == 0 {
		return
	}
	records, err := a.store.Records()
	if err != nil {
		a.log.Warn("host status: read the state", "err", err)
		return
	}
	now := a.opts.Now()
	write := func(ctx context.Context) {
		for dn, spec := range dests {
			if err := a.writeHostStatus(ctx, dn, spec, now, plan, pols, records); err != nil {
				a.log.Warn("cannot write the host status object", "destination", dn, "err", err)
			}
		}
	}
	if mode == passOnce {
		write(ctx)
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		write(ctx)
	}()
}

func (a *Agent) writeHostStatus(ctx context.Context, dn string, spec *v1.Destination, now time.Time, plan Plan, pols map[string]*v1.BackupPolicy, records map[string]ObjectRecord) error {
	// A host appears on a destination once it has a snapshot there: a
	// pass before the first backup (or one abandoned) leaves nothing.
	stored := false
	for name, p := range pols {
		rec := records[v1.KindBackupPolicy+"/"+name]
		stored = stored || slices.Contains(p.Spec.Destinations, dn) && !rec.Policy.LastSuccessfulTime.IsZero()
	}
	if !stored {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d, err := registry.Destination(spec, registry.Options{Logger: a.log})
	if err != nil {
		return err
	}
	key := HostStatusKey(a.opts.Host)
	prev, err := ReadHostStatus(ctx, d, key)
	if err != nil && !errors.Is(err, drivers.ErrNotFound) {
		prev = nil // unreadable: rewritten from what this host knows
	}
	body, err := json.MarshalIndent(hostStatusFor(a.opts.Host, now, dn, pols, plan, records, prev), "", "  ")
	if err != nil {
		return err
	}
	if _, err := d.Put(ctx, key, bytes.NewReader(append(body, '\n'))); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
