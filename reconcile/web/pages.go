package web

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	sigsyaml "sigs.k8s.io/yaml"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// isRunning reports whether the console started a run of policy that is
// still going.
func (s *Server) isRunning(policy string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[policy]
}

// host reads this host's policies, from the last read when no file
// changed since.
func (s *Server) host() (*hostView, error) {
	key := hostKey(s.opts.ConfigDir, s.opts.StateDir, s.opts.StatusDir)
	s.mu.Lock()
	ph := s.parsed
	s.mu.Unlock()
	if ph == nil || ph.key != key {
		var err error
		if ph, err = parseHost(s.opts.ConfigDir, s.opts.StateDir, s.opts.StatusDir, key); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.parsed = ph
		s.mu.Unlock()
	}
	return viewHost(ph, s.isRunning, s.opts.Now()), nil
}

// overviewData is the overview page.
type overviewData struct {
	Policies []PolicyView
	Errors   []string
	Progress []ProgressItemView
	Counts   map[string]int
}

func (s *Server) overviewData() (*overviewData, error) {
	hv, err := s.host()
	if err != nil {
		return nil, err
	}
	d := &overviewData{Policies: hv.Policies, Progress: s.opts.Progress.Snapshot(), Counts: map[string]int{}}
	for _, e := range hv.Errors {
		d.Errors = append(d.Errors, redact(e))
	}
	for _, p := range hv.Policies {
		d.Counts[p.State]++
	}
	return d, nil
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewData()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	s.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// overviewJSON is what the overview's script polls while a run is going.
func (s *Server) overviewJSON(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewData()
	if err != nil {
		http.Error(w, redact(err.Error()), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Policies []PolicyView       `json:"policies"`
		Progress []ProgressItemView `json:"progress"`
	}{d.Policies, d.Progress})
}

// policyData is the policy page.
type policyData struct {
	View       PolicyView
	Manifest   string
	Conditions []v1.Condition
	History    []historyRow
	HistoryErr []string
	Charts     []chart
	Logs       []string
}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	hv, err := s.host()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	i := slices.IndexFunc(hv.Policies, func(p PolicyView) bool { return p.Name == name })
	if i < 0 {
		s.fail(w, r, http.StatusNotFound, "policy "+name+" not found")
		return
	}
	pv := hv.Policies[i]
	d := &policyData{View: pv, Manifest: manifestYAML(pv.Policy), Conditions: pv.Status.Conditions, Logs: s.runLogs(name)}
	for i := range d.Conditions {
		d.Conditions[i].Message = redact(d.Conditions[i].Message)
	}
	snaps, errs := s.listSnapshots(r.Context(), hv.Config, name, "")
	for _, e := range errs {
		d.HistoryErr = append(d.HistoryErr, redact(e.Error()))
	}
	d.History = history(snaps, s.opts.Host)
	d.Charts = historyCharts(d.History)
	s.render(w, r, http.StatusOK, "policy", page{Title: "Policy " + name, Nav: "overview", Data: d})
}

// manifestYAML shows a policy as YAML, with anything that looks like a
// secret redacted (manifests name secret files by path only).
func manifestYAML(p *v1.BackupPolicy) string {
	b, err := sigsyaml.Marshal(p)
	if err != nil {
		return "(cannot show the manifest: " + err.Error() + ")"
	}
	return redact(string(b))
}

// runLogs lists the run logs of a policy, newest first.
func (s *Server) runLogs(policy string) []string {
	if s.opts.LogDir == "" {
		return nil
	}
	m, _ := filepath.Glob(filepath.Join(s.opts.LogDir, "backup-"+policy+"-*.log"))
	var out []string
	for _, f := range m {
		b := filepath.Base(f)
		// backup-web-2026… must not list backup-web-db-2026…
		if rest := strings.TrimPrefix(b, "backup-"+policy+"-"); len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
			out = append(out, b)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// runLog shows one run log of a policy, redacted.
func (s *Server) runLog(w http.ResponseWriter, r *http.Request) {
	name, file := r.PathValue("name"), r.PathValue("file")
	if !slices.Contains(s.runLogs(name), file) {
		s.fail(w, r, http.StatusNotFound, "run log "+file+" not found")
		return
	}
	body, err := readTail(filepath.Join(s.opts.LogDir, file), 4<<20)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	s.render(w, r, http.StatusOK, "runlog", page{Title: file, Nav: "overview",
		Data: struct{ Policy, File, Body string }{name, file, redact(string(body))}})
}

// readTail reads at most limit bytes of the end of a file.
func readTail(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, fi.Size()-limit)
	buf := make([]byte, fi.Size()-off)
	n, err := f.ReadAt(buf, off)
	if n == len(buf) {
		err = nil
	}
	if off > 0 { // drop the cut first line
		if i := strings.IndexByte(string(buf[:n]), '\n'); i >= 0 {
			return buf[i+1 : n], err
		}
	}
	return buf[:n], err
}
