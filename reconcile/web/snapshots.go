package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// destinationsOf names the destinations to read: the policy's, or every
// valid one of the config.
func destinationsOf(cfg *reconcile.Config, policy, only string) []string {
	_, dests := cfg.Valid()
	var names []string
	if p := cfg.Policy(policy); p != nil {
		names = append(names, p.Spec.Destinations...)
	} else {
		for n := range dests {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if only != "" {
		if slices.Contains(names, only) {
			return []string{only}
		}
		return nil
	}
	return names
}

// openDestination opens a destination of the config by name.
func (s *Server) openDestination(cfg *reconcile.Config, name string) (drivers.Destination, error) {
	d, ok := cfg.AllDestinations()[name]
	if !ok {
		return nil, fmt.Errorf("destination %q not found", name)
	}
	return registry.Destination(d, registry.Options{Logger: s.log})
}

// listSnapshots reads the snapshots of a policy (or every one) on its
// destinations. A destination that cannot be listed is reported in errs.
func (s *Server) listSnapshots(ctx context.Context, cfg *reconcile.Config, policy, only string) ([]snapshot.Snapshot, []error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []snapshot.Snapshot
	var errs []error
	for _, dn := range destinationsOf(cfg, policy, only) {
		d, err := s.openDestination(cfg, dn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		snaps, bad, err := snapshot.ListSnapshotsLenient(ctx, d, dn, policy)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, bad...)
		out = append(out, snaps...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Manifest.ID > out[j].Manifest.ID })
	return out, errs
}

// historyRow is one run of a policy, summed over its sources, as the
// snapshots on the destinations tell it.
type historyRow struct {
	ID          string
	Time        time.Time
	Sources     int
	Duration    time.Duration
	BytesRead   int64
	RawSize     int64
	Stored      int64
	Ratio       float64
	Destination string
}

// history sums the snapshots of host by run (snapshot ID), newest first,
// counting each run once (from its first destination).
func history(snaps []snapshot.Snapshot, host string) []historyRow {
	byID := map[string]*historyRow{}
	seen := map[string]bool{}
	var rows []*historyRow
	for _, sn := range snaps {
		m := sn.Manifest
		if m.Host != host || seen[m.ID+"/"+m.Source] {
			continue
		}
		seen[m.ID+"/"+m.Source] = true
		r, ok := byID[m.ID]
		if !ok {
			r = &historyRow{ID: m.ID, Time: m.Time, Destination: sn.Destination}
			byID[m.ID] = r
			rows = append(rows, r)
		}
		r.Sources++
		if d, err := time.ParseDuration(m.Duration); err == nil && d > r.Duration {
			r.Duration = d // sources run in parallel: the run lasts as its longest
		}
		r.BytesRead += m.BytesRead
		r.Stored += sn.Size
		for _, o := range m.Objects {
			r.RawSize += o.RawSize
		}
	}
	out := make([]historyRow, 0, len(rows))
	for _, r := range rows {
		if r.Stored > 0 {
			r.Ratio = float64(r.RawSize) / float64(r.Stored)
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out
}

// snapshotsData is the snapshots page.
type snapshotsData struct {
	Policy    string
	Policies  []string
	Snapshots []snapshot.Snapshot
	Errors    []string
}

func (s *Server) snapshotsPage(w http.ResponseWriter, r *http.Request) {
	policy := r.URL.Query().Get("policy")
	cfg, err := reconcile.LoadConfigWithState(s.opts.ConfigDir, s.opts.StateDir)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	d := &snapshotsData{Policy: policy}
	for _, o := range cfg.Objects {
		if o.Policy != nil {
			d.Policies = append(d.Policies, o.Name)
		}
	}
	sort.Strings(d.Policies)
	snaps, errs := s.listSnapshots(r.Context(), cfg, policy, r.URL.Query().Get("destination"))
	d.Snapshots = snaps
	for _, e := range errs {
		d.Errors = append(d.Errors, redact(e.Error()))
	}
	s.render(w, r, http.StatusOK, "snapshots", page{Title: "Snapshots", Nav: "snapshots", Data: d})
}

// snapshotRef is a snapshot named in a URL.
type snapshotRef struct {
	Dest, Host, Policy, Source, ID string
}

func refOf(r *http.Request) snapshotRef {
	return snapshotRef{r.PathValue("dest"), r.PathValue("host"), r.PathValue("policy"), r.PathValue("source"), r.PathValue("id")}
}

// URL is the snapshot's page.
func (ref snapshotRef) URL() string {
	return "/snapshots/" + ref.Dest + "/" + ref.Host + "/" + ref.Policy + "/" + ref.Source + "/" + ref.ID
}

// refOfSnapshot names a listed snapshot.
func refOfSnapshot(sn snapshot.Snapshot) snapshotRef {
	m := sn.Manifest
	return snapshotRef{sn.Destination, m.Host, m.Policy, m.Source, m.ID}
}

// openSnapshot reads the manifest a URL names, the destination, and the
// keys that may decrypt it.
func (s *Server) openSnapshot(ctx context.Context, ref snapshotRef, ss *session) (drivers.Destination, snapshot.Snapshot, *snapshot.KeyRing, error) {
	var sn snapshot.Snapshot
	cfg, err := reconcile.LoadConfigWithState(s.opts.ConfigDir, s.opts.StateDir)
	if err != nil {
		return nil, sn, nil, err
	}
	d, err := s.openDestination(cfg, ref.Dest)
	if err != nil {
		return nil, sn, nil, err
	}
	for _, part := range []string{ref.Host, ref.Policy, ref.Source} {
		if part == "" || part == "." || part == ".." || slices.Contains([]rune(part), '/') {
			return nil, sn, nil, fmt.Errorf("snapshot %s: not a valid name", ref.URL())
		}
	}
	if !v1.ValidSnapshotID(ref.ID) {
		return nil, sn, nil, fmt.Errorf("snapshot %q: not a snapshot ID", ref.ID)
	}
	key := ref.Host + "/" + ref.Policy + "/" + ref.Source + "/" + ref.ID + "/" + v1.ManifestName
	m, err := snapshot.ReadManifest(ctx, d, key)
	if err != nil {
		return nil, sn, nil, err
	}
	sn = snapshot.Snapshot{Destination: ref.Dest, Manifest: m}
	for _, o := range m.Objects {
		sn.Size += o.Size
	}
	kr, err := s.keyRing(cfg, ref.Policy, ss)
	return d, sn, kr, err
}

// keyRing loads the keys the console may decrypt with: the identities the
// user uploaded, the policy's openssl key file and the keys directory (as
// restore does).
func (s *Server) keyRing(cfg *reconcile.Config, policy string, ss *session) (*snapshot.KeyRing, error) {
	var files []string
	if ss != nil {
		files = ss.identityFiles(s.sessions)
	}
	mode := ""
	if p := cfg.Policy(policy); p != nil && p.Spec.Encryption != nil {
		mode = p.Spec.Encryption.Mode()
		if o := p.Spec.Encryption.OpenSSL; o != nil {
			files = append(files, o.KeyFile)
		}
	}
	kr, err := snapshot.LoadKeyRing(files, s.opts.KeysDir, nil)
	if err != nil {
		return nil, err
	}
	kr.AcceptMode(mode, false)
	return kr, nil
}

// browseCache keeps the entry lists of the last snapshots browsed, so that
// walking a tree does not decode the snapshot again at every click.
type browseCache struct {
	mu    sync.Mutex
	max   int
	order []string
	lists map[string][]entry
}

func newBrowseCache(n int) *browseCache {
	return &browseCache{max: n, lists: map[string][]entry{}}
}

func (c *browseCache) get(key string) ([]entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.lists[key]
	return l, ok
}

func (c *browseCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lists, c.order = map[string][]entry{}, nil
}

func (c *browseCache) put(key string, l []entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.lists[key]; !ok {
		c.order = append(c.order, key)
	}
	c.lists[key] = l
	for len(c.order) > c.max {
		delete(c.lists, c.order[0])
		c.order = c.order[1:]
	}
}
