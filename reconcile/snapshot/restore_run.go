package snapshot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// RestoreAllOptions say where RestoreAll restores to and what it reports.
type RestoreAllOptions struct {
	// Target is the directory each source is restored under, as
	// TARGET/SOURCE/...
	Target string
	Keys   *KeyRing
	// Progress, when set, gets one item per source, counting the bytes
	// read from the destination.
	Progress observe.Progress
	// Restored, when set, is called after each source is restored, before
	// the next starts.
	Restored func(Restored)
	// Now is the clock of the audit event; nil is time.Now.
	Now func() time.Time
}

// Restored is one source restored by RestoreAll.
type Restored struct {
	Snapshot Snapshot
	Stats    files.ExtractStats
}

// RestoreAll restores the snapshots of one run from d, one source after the
// other, stopping at the first failure; a source restored in part (a
// *files.IncompleteError) is counted as restored, with its Stats.Skipped,
// and the others are still restored. It returns the sources restored,
// the error, and the audit event of it all (with "restore.run" as action:
// outcome success, partial when some sources were restored before the
// failure, else failure).
func RestoreAll(ctx context.Context, d drivers.Destination, snaps []Snapshot, opts RestoreAllOptions) ([]Restored, observe.AuditEvent, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	var done []Restored
	var err error
	var partial []error
	var last Snapshot
	for _, s := range snaps {
		last = s
		st, rerr := restoreOne(ctx, d, s, opts)
		m := s.Manifest
		// A source restored in part counts as done (its stats name what
		// is missing) and the others are still restored.
		_, inc := rerr.(*files.IncompleteError)
		if rerr != nil {
			rerr = fmt.Errorf("restore %s/%s from %s: %w", m.Policy, m.Source, s.Destination, rerr)
			if !inc {
				err = rerr
				break
			}
			partial = append(partial, rerr)
		}
		r := Restored{Snapshot: s, Stats: st}
		done = append(done, r)
		if opts.Restored != nil {
			opts.Restored(r)
		}
	}
	err = errors.Join(append(partial, err)...)
	ev := RestoreAuditEvent(last, done, opts.Target, err)
	ev.Time = now()
	return done, ev, err
}

// restoreOne restores one snapshot, with a progress item when asked.
func restoreOne(ctx context.Context, d drivers.Destination, s Snapshot, opts RestoreAllOptions) (files.ExtractStats, error) {
	ropts := RestoreOptions{Target: opts.Target, Keys: opts.Keys}
	if opts.Progress == nil {
		return Restore(ctx, d, s, ropts)
	}
	item := fmt.Sprintf("restore %s ← %s", s.Manifest.Source, s.Destination)
	opts.Progress.Begin(item, ReadTotal(s))
	st, err := Restore(ctx, observe.ProgressDestination(d, opts.Progress, item), s, ropts)
	opts.Progress.End(item, err)
	return st, err
}

// RestoreAuditEvent is the audit event of a restore into file (a directory,
// or what else received the data) whose last snapshot tried was last and
// that restored done before err. Its Time is left for the audit log to set.
func RestoreAuditEvent(last Snapshot, done []Restored, file string, err error) observe.AuditEvent {
	ev := observe.AuditEvent{Action: observe.AuditRestoreRun, File: file, Outcome: observe.OutcomeSuccess}
	if m := last.Manifest; m != nil {
		ev.Object = "Snapshot/" + m.Host + "/" + m.Policy + "/" + m.ID
		ev.Policy, ev.Snapshot, ev.Destination = m.Policy, m.ID, last.Destination
	}
	for _, r := range done {
		ev.Sources = append(ev.Sources, r.Snapshot.Manifest.Source)
		ev.Bytes += r.Stats.Bytes
	}
	if err != nil {
		ev.Outcome, ev.Message = observe.OutcomeFailure, err.Error()
		if len(done) > 0 {
			ev.Outcome = observe.OutcomePartial
		}
	}
	return ev
}

// ReadTotal is how many bytes restoring or verifying s reads: every object
// once (twice in openssl mode, which checks each object before decrypting
// it).
func ReadTotal(s Snapshot) int64 {
	if s.Manifest.Encryption.Algorithm == "openssl" {
		return 2 * dataSize(s.Manifest)
	}
	return dataSize(s.Manifest)
}

// VerifyWithProgress verifies one snapshot as Verify does, reporting the
// bytes read as one progress item when p is not nil.
//
// A deduplicated snapshot is read in full only with opts.ReadData; opts
// may be left out (the checks without reading every chunk).
func VerifyWithProgress(ctx context.Context, d drivers.Destination, s Snapshot, keys *KeyRing, p observe.Progress, opts ...VerifyOptions) VerifyResult {
	var o VerifyOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	verify := func(d drivers.Destination) VerifyResult {
		if s.Manifest.Deduplicated() && !o.ReadData {
			return verifyDedup(ctx, d, s, keys, o)
		}
		return Verify(ctx, d, s, keys)
	}
	if p == nil {
		return verify(d)
	}
	item := fmt.Sprintf("verify %s/%s @ %s", s.Manifest.Policy, s.Manifest.Source, s.Destination)
	p.Begin(item, dataSize(s.Manifest))
	r := verify(observe.ProgressDestination(d, p, item))
	p.End(item, r.Err)
	return r
}
