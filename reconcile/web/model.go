package web

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// Policy states, in the order the overview lists them.
const (
	StateFailing   = "Failing"
	StateOverdue   = "Overdue"
	StateInvalid   = "Invalid"
	StateRunning   = "Running"
	StatePending   = "Pending"
	StateSuspended = "Suspended"
	StateReady     = "Ready"
)

var stateOrder = map[string]int{StateFailing: 0, StateOverdue: 1, StateInvalid: 2, StateRunning: 3, StatePending: 4, StateSuspended: 5, StateReady: 6}

// PolicyView is one policy as the console shows it.
type PolicyView struct {
	Name         string             `json:"name"`
	State        string             `json:"state"`
	Message      string             `json:"message,omitempty"`
	LastSuccess  *time.Time         `json:"lastSuccess,omitempty"`
	Age          string             `json:"age,omitempty"`
	Next         *time.Time         `json:"next,omitempty"`
	Size         int64              `json:"size"`
	SizeText     string             `json:"sizeText"`
	Destinations []string           `json:"destinations"`
	File         string             `json:"-"`
	Policy       *v1.BackupPolicy   `json:"-"`
	Status       v1.ObjectStatus    `json:"-"`
	Progress     []ProgressItemView `json:"progress,omitempty"`
}

// hostView is everything the console knows of this host's policies.
type hostView struct {
	Policies []PolicyView
	Errors   []string
	Config   *reconcile.Config
}

// parsedHost is what the console read of the config directory, the state
// and the status sidecars, with the fingerprint of the files it read.
type parsedHost struct {
	key     string
	cfg     *reconcile.Config
	entries map[string]v1.ObjectStatus
}

// hostKey fingerprints the files loadHost reads (names, sizes and
// modification times), so that a page re-reads them only after a change:
// parsing 1,000 manifests and their statuses costs far more than a page.
func hostKey(configDir, stateDir, statusDir string) string {
	var b strings.Builder
	add := func(name string) {
		if fi, err := os.Stat(name); err == nil {
			fmt.Fprintf(&b, "%s|%d|%d\n", name, fi.Size(), fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "%s|-\n", name)
		}
	}
	entries, _ := os.ReadDir(configDir)
	for _, e := range entries {
		if reconcile.IsManifestFile(e.Name()) {
			f := filepath.Join(configDir, e.Name())
			add(f)
			add(reconcile.StatusPath(f, statusDir))
		}
	}
	if stateDir != "" {
		add(filepath.Join(stateDir, "state.db"))
	}
	return b.String()
}

// parseHost reads the manifests, the state and the status sidecars.
func parseHost(configDir, stateDir, statusDir, key string) (*parsedHost, error) {
	cfg, err := reconcile.LoadConfigWithState(configDir, stateDir)
	if err != nil {
		return nil, err
	}
	entries := map[string]v1.ObjectStatus{}
	for _, f := range cfg.Files {
		sf, err := reconcile.ReadStatusFile(reconcile.StatusPath(f, statusDir))
		if err != nil {
			return nil, err
		}
		for _, it := range sf.Items {
			entries[it.Kind+"/"+it.Name] = it.Status
		}
	}
	return &parsedHost{key: key, cfg: cfg, entries: entries}, nil
}

// viewHost sums up every policy of what was read.
func viewHost(ph *parsedHost, running func(string) bool, now time.Time) *hostView {
	cfg := ph.cfg
	hv := &hostView{Config: cfg}
	for _, e := range cfg.Errors {
		hv.Errors = append(hv.Errors, e.Error())
	}
	for _, o := range cfg.Objects {
		if o.Policy == nil {
			continue
		}
		st, seen := ph.entries[v1.KindBackupPolicy+"/"+o.Name]
		pv := policyViewOf(o.Policy, st, seen, len(cfg.ObjectErrors(o)) > 0, running(o.Name), now)
		pv.File = o.File
		hv.Policies = append(hv.Policies, pv)
	}
	sortPolicies(hv.Policies)
	return hv
}

// sortPolicies puts failing and overdue policies first, then by name.
func sortPolicies(ps []PolicyView) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := stateOrder[ps[i].State], stateOrder[ps[j].State]
		if a != b {
			return a < b
		}
		return ps[i].Name < ps[j].Name
	})
}

// policyViewOf sums up one policy; it is pure, for the tests.
func policyViewOf(p *v1.BackupPolicy, st v1.ObjectStatus, seen, invalid, running bool, now time.Time) PolicyView {
	pv := PolicyView{Name: p.Metadata.Name, Policy: p, Status: st, LastSuccess: st.LastSuccessfulTime,
		Next: st.NextScheduleTime, Destinations: p.Spec.Destinations}
	if t := st.LastSuccessfulTime; t != nil {
		pv.Age = observe.ShortAge(now.Sub(*t))
	}
	if lr := st.LastRun; lr != nil {
		for _, s := range lr.Sources {
			pv.Size += s.Bytes
		}
	}
	pv.SizeText = observe.FormatBytes(pv.Size)
	ready := v1.FindCondition(st.Conditions, v1.ConditionReady)
	late, why := observe.Overdue(p, st, now)
	switch {
	case invalid:
		pv.State, pv.Message = StateInvalid, "the manifest is invalid: aegis-agent validate says why"
	case running || (ready != nil && ready.Reason == reconcile.ReasonRunning):
		pv.State = StateRunning
	case ready != nil && ready.Status == v1.ConditionFalse:
		pv.State, pv.Message = StateFailing, redact(ready.Message)
	case late:
		pv.State, pv.Message = StateOverdue, why
	case p.Spec.Suspend:
		pv.State = StateSuspended
	case !seen || st.LastRun == nil:
		pv.State, pv.Message = StatePending, "no run yet"
	default:
		pv.State = StateReady
	}
	return pv
}
