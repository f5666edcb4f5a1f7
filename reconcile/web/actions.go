package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/retention"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// Audit actions of the console, besides what the agent records itself.
const (
	AuditRunRequested = "run.requested"
	AuditVerifyRun    = "verify.run"
	AuditPruneRun     = "prune.run"
	AuditPrunePreview = "prune.previewed"
)

// actionInfo describes an action on its confirmation page.
type actionInfo struct {
	Name, Title, Explain, Button string
}

var actionsByName = map[string]actionInfo{
	"run":           {"run", "Run now", "Back up every source of the policy now, whatever its schedule.", "Run now"},
	"verify":        {"verify", "Verify", "Read the latest snapshots back from every destination, check their hashes and decrypt them, writing nothing.", "Verify"},
	"prune-preview": {"prune-preview", "Prune preview", "Show what retention would delete now, deleting nothing.", "Preview"},
	"prune":         {"prune", "Prune", "Apply retention now: delete the snapshots its rules no longer keep. This cannot be undone.", "Delete what retention does not keep"},
}

// actor is the audit log's name of the signed-in user.
func actor(r *http.Request) string {
	if ss := sessionFrom(r); ss != nil {
		return "web:" + ss.user
	}
	return "web"
}

func (s *Server) audit(ev observe.AuditEvent) {
	if ev.Command == "" {
		ev.Command = "web"
	}
	if err := s.opts.Audit.Record(ev); err != nil {
		s.log.Error("cannot write the audit log", "action", ev.Action, "err", err)
	}
}

// confirmAction asks before an action.
func (s *Server) confirmAction(w http.ResponseWriter, r *http.Request) {
	a, ok := actionsByName[r.PathValue("action")]
	if !ok {
		s.fail(w, r, http.StatusNotFound, "no such action")
		return
	}
	s.render(w, r, http.StatusOK, "confirm", page{Title: a.Title + " " + r.PathValue("policy"), Nav: "overview",
		Data: struct {
			Action actionInfo
			Policy string
		}{a, r.PathValue("policy")}})
}

// action runs a confirmed action.
func (s *Server) action(w http.ResponseWriter, r *http.Request) {
	policy := r.PathValue("policy")
	switch r.PathValue("action") {
	case "run":
		s.runNow(w, r, policy)
	case "verify":
		s.verify(w, r, policy)
	case "prune-preview":
		s.prune(w, r, policy, true)
	case "prune":
		s.prune(w, r, policy, false)
	default:
		s.fail(w, r, http.StatusNotFound, "no such action")
	}
}

// runNow starts a backup in the background and goes back to the policy's
// page, which follows the run.
func (s *Server) runNow(w http.ResponseWriter, r *http.Request, policy string) {
	s.mu.Lock()
	busy := s.running[policy]
	if !busy {
		s.running[policy] = true
	}
	s.mu.Unlock()
	if busy {
		http.Redirect(w, r, "/policies/"+url.PathEscape(policy)+"?flash="+url.QueryEscape("A run of "+policy+" is already going."), http.StatusSeeOther)
		return
	}
	who := actor(r)
	s.audit(observe.AuditEvent{Action: AuditRunRequested, Actor: who, Object: v1.KindBackupPolicy + "/" + policy, Policy: policy, Outcome: observe.OutcomeSuccess})
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.running, policy)
			s.mu.Unlock()
		}()
		res, _, err := s.opts.Agent.RunNow(s.bg, policy, "", false)
		switch {
		case err != nil:
			s.log.Error("run started from the console failed", "policy", policy, "user", who, "err", err)
		default:
			s.log.Info("run started from the console ended", "policy", policy, "user", who, "result", res.Result, "snapshot", res.SnapshotID)
		}
	}()
	http.Redirect(w, r, "/policies/"+url.PathEscape(policy)+"?flash="+url.QueryEscape("Backup of "+policy+" started."), http.StatusSeeOther)
}

// verifyRow is the result of verifying one snapshot.
type verifyRow struct {
	Destination, Source, ID string
	Objects                 int
	Bytes                   int64
	Error                   string
}

// verify checks the latest snapshot of every source on each destination.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, policy string) {
	rows, err := s.verifyLatest(r.Context(), policy, sessionFrom(r))
	ev := observe.AuditEvent{Action: AuditVerifyRun, Actor: actor(r), Object: v1.KindBackupPolicy + "/" + policy, Policy: policy, Outcome: observe.OutcomeSuccess}
	var failed []string
	for _, row := range rows {
		if row.Error != "" {
			failed = append(failed, row.Destination+"/"+row.Source+"/"+row.ID+": "+row.Error)
		}
	}
	if err != nil {
		failed = append(failed, err.Error())
	}
	if len(failed) > 0 {
		ev.Outcome, ev.Message = observe.OutcomeFailure, strings.Join(failed, "; ")
	}
	s.audit(ev)
	flash := fmt.Sprintf("Verified %d snapshots of %s.", len(rows), policy)
	if len(failed) > 0 {
		flash = fmt.Sprintf("Verification of %s found %d problems.", policy, len(failed))
	}
	s.render(w, r, http.StatusOK, "verify", page{Title: "Verify " + policy, Nav: "overview", Flash: flash,
		Data: struct {
			Policy string
			Rows   []verifyRow
			Error  string
		}{policy, rows, redactErr(err)}})
}

func redactErr(err error) string {
	if err == nil {
		return ""
	}
	return redact(err.Error())
}

func (s *Server) verifyLatest(ctx context.Context, policy string, ss *session) ([]verifyRow, error) {
	cfg, err := reconcile.LoadConfigWithState(s.opts.ConfigDir, s.opts.StateDir)
	if err != nil {
		return nil, err
	}
	if cfg.Policy(policy) == nil {
		return nil, fmt.Errorf("policy %q not found", policy)
	}
	kr, err := s.keyRing(cfg, policy, ss)
	if err != nil {
		return nil, err
	}
	var rows []verifyRow
	var errs []error
	for _, dn := range destinationsOf(cfg, policy, "") {
		snaps, lerrs := s.listSnapshots(ctx, cfg, policy, dn)
		errs = append(errs, lerrs...)
		latest, err := snapshot.SelectSnapshot(snaps, "latest", s.opts.Host, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("destination %s: %w", dn, err))
			continue
		}
		d, err := s.openDestination(cfg, dn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, sn := range latest {
			res := snapshot.Verify(ctx, d, sn, kr)
			rows = append(rows, verifyRow{Destination: dn, Source: sn.Manifest.Source, ID: sn.Manifest.ID, Objects: res.Objects, Bytes: res.Bytes, Error: redactErr(res.Err)})
		}
	}
	return rows, errors.Join(errs...)
}

// prune applies retention to a policy, or previews it.
func (s *Server) prune(w http.ResponseWriter, r *http.Request, policy string, dryRun bool) {
	reports, _, err := s.opts.Agent.Prune(r.Context(), reconcile.PruneRequest{Policy: policy, DryRun: dryRun})
	ev := observe.AuditEvent{Action: AuditPruneRun, Actor: actor(r), Object: v1.KindBackupPolicy + "/" + policy, Policy: policy, Outcome: observe.OutcomeSuccess}
	if dryRun {
		ev.Action = AuditPrunePreview
	}
	if err != nil {
		ev.Outcome, ev.Message = observe.OutcomeFailure, err.Error()
	}
	for _, rep := range reports {
		if rep.Error != "" {
			ev.Outcome, ev.Message = observe.OutcomeFailure, rep.Error
		}
	}
	s.audit(ev)
	s.render(w, r, http.StatusOK, "prune", page{Title: "Prune " + policy, Nav: "overview",
		Data: struct {
			Policy  string
			DryRun  bool
			Reports []*retention.PruneReport
			Error   string
		}{policy, dryRun, reports, redactErr(err)}})
}
