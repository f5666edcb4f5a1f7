package web

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// FleetHost is one host of the fleet view.
type FleetHost struct {
	Host        string                       `json:"host"`
	Destination string                       `json:"destination"`
	Seen        time.Time                    `json:"seen"`
	Overdue     bool                         `json:"overdue"`
	Why         string                       `json:"why,omitempty"`
	Policies    []reconcile.HostPolicyStatus `json:"policies"`
	Ages        map[string]string            `json:"-"` // POLICY/SOURCE → age of its last snapshot
}

// fleetData is the fleet page.
type fleetData struct {
	Hosts   []FleetHost
	Errors  []string
	Overdue int
}

// fleetDestinations names the destinations the fleet view reads.
func (s *Server) fleetDestinations(cfg *reconcile.Config) []string {
	if len(s.opts.Fleet) > 0 {
		return s.opts.Fleet
	}
	var names []string
	for n := range cfg.AllDestinations() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// fleet reads the host status objects of the destinations.
func (s *Server) fleet(ctx context.Context) (*fleetData, error) {
	cfg, err := reconcile.LoadConfigWithState(s.opts.ConfigDir, s.opts.StateDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d := &fleetData{}
	now := s.opts.Now()
	for _, dn := range s.fleetDestinations(cfg) {
		dest, err := s.openDestination(cfg, dn)
		if err != nil {
			d.Errors = append(d.Errors, redact(err.Error()))
			continue
		}
		hosts, bad, err := reconcile.ListHostStatuses(ctx, dest)
		if err != nil {
			d.Errors = append(d.Errors, redact("destination "+dn+": "+err.Error()))
			continue
		}
		for _, e := range bad {
			d.Errors = append(d.Errors, redact("destination "+dn+": "+e.Error()))
		}
		for _, h := range hosts {
			d.Hosts = append(d.Hosts, fleetHostOf(h, dn, now))
		}
	}
	sortFleet(d)
	return d, nil
}

// sortFleet puts overdue hosts first, then by name.
func sortFleet(d *fleetData) {
	d.Overdue = 0
	for _, h := range d.Hosts {
		if h.Overdue {
			d.Overdue++
		}
	}
	sort.SliceStable(d.Hosts, func(i, j int) bool {
		a, b := d.Hosts[i], d.Hosts[j]
		if a.Overdue != b.Overdue {
			return a.Overdue
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Destination < b.Destination
	})
}

// fleetHostOf sums up one host: it is overdue when a policy's last success
// is older than twice its interval, or the host has not written its status
// for a day.
func fleetHostOf(h *reconcile.HostStatus, dest string, now time.Time) FleetHost {
	fh := FleetHost{Host: h.Host, Destination: dest, Seen: h.Time, Policies: h.Policies, Ages: map[string]string{}}
	if now.Sub(h.Time) > 24*time.Hour {
		fh.Overdue, fh.Why = true, "no status from this host for "+observe.ShortAge(now.Sub(h.Time))
	}
	for _, p := range h.Policies {
		for _, src := range p.Sources {
			if !src.Time.IsZero() {
				fh.Ages[p.Name+"/"+src.Name] = observe.ShortAge(now.Sub(src.Time))
			}
		}
		iv, err := time.ParseDuration(p.Interval)
		if p.Suspended || err != nil || iv <= 0 {
			continue
		}
		if t := p.LastSuccessfulTime; t == nil || now.Sub(*t) > 2*iv {
			if !fh.Overdue {
				fh.Overdue, fh.Why = true, "policy "+p.Name+": no success within twice its interval ("+observe.ShortAge(iv)+")"
			}
		}
	}
	return fh
}

func (s *Server) fleetPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.fleet(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	s.render(w, r, http.StatusOK, "fleet", page{Title: "Fleet", Nav: "fleet", Data: d})
}

func (s *Server) fleetJSON(w http.ResponseWriter, r *http.Request) {
	d, err := s.fleet(r.Context())
	if err != nil {
		http.Error(w, redact(err.Error()), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(d.Hosts)
}
