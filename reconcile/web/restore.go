package web

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// restoreData is the restore preview.
type restoreData struct {
	Ref      snapshotRef
	Path     string
	Target   string
	Into     string // TARGET/SOURCE, where the files go
	Entries  []entry
	Existing int // entries that already exist there and will be replaced
	Total    int
	Error    string
}

// restoreTarget checks the directory a user typed.
func restoreTarget(t string) (string, error) {
	if t == "" {
		return "", errors.New("choose a target directory")
	}
	if !filepath.IsAbs(t) {
		return "", fmt.Errorf("target %q: give an absolute path", t)
	}
	return filepath.Clean(t), nil
}

// maxPreview bounds the entries the preview lists.
const maxPreview = 500

// restorePreview shows what a restore would write, with a form that
// confirms it.
func (s *Server) restorePreview(w http.ResponseWriter, r *http.Request) {
	ref := refOf(r)
	d := &restoreData{Ref: ref, Path: cleanEntry(r.URL.Query().Get("path")), Target: r.URL.Query().Get("target")}
	all, _, err := s.entries(r.Context(), ref, sessionFrom(r))
	if err != nil {
		d.Error = redact(err.Error())
		s.render(w, r, http.StatusOK, "restore", page{Title: "Restore", Nav: "snapshots", Data: d})
		return
	}
	if d.Target != "" {
		target, err := restoreTarget(d.Target)
		if err != nil {
			d.Error = err.Error()
		} else {
			d.Target, d.Into = target, filepath.Join(target, ref.Source)
		}
	}
	for _, e := range all {
		if !under(e.Name, d.Path) {
			continue
		}
		d.Total++
		if d.Into != "" {
			if _, err := os.Lstat(filepath.Join(d.Into, filepath.FromSlash(e.Name))); err == nil {
				d.Existing++
			}
		}
		if len(d.Entries) < maxPreview {
			d.Entries = append(d.Entries, e)
		}
	}
	s.render(w, r, http.StatusOK, "restore", page{Title: "Restore", Nav: "snapshots", Data: d})
}

// restore runs a confirmed restore: the snapshot (or one path of it) into
// TARGET/SOURCE, checked as `aegis-agent restore` checks it, and audited.
func (s *Server) restore(w http.ResponseWriter, r *http.Request) {
	ref := refOf(r)
	want := cleanEntry(r.PostFormValue("path"))
	target, err := restoreTarget(r.PostFormValue("target"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ev := observe.AuditEvent{Action: observe.AuditRestoreRun, Actor: actor(r), Command: "web", Object: v1.KindBackupPolicy + "/" + ref.Policy,
		Policy: ref.Policy, Snapshot: ref.ID, Sources: []string{ref.Source}, Destination: ref.Dest, File: target, Outcome: observe.OutcomeSuccess}
	st, err := s.restoreInto(r.Context(), ref, sessionFrom(r), want, target)
	ev.Bytes = st.Bytes
	if err != nil {
		ev.Outcome, ev.Message = observe.OutcomeFailure, err.Error()
	}
	s.audit(ev)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "restore failed: "+err.Error())
		return
	}
	flash := fmt.Sprintf("Restored %d files (%s) into %s", st.Files, observe.FormatBytes(st.Bytes), filepath.Join(target, ref.Source))
	s.render(w, r, http.StatusOK, "done", page{Title: "Restored", Nav: "snapshots", Flash: flash, Data: ref.URL()})
}

// incompleteMarker is the file restore leaves until a restore is checked.
const incompleteMarker = ".aegis-restore-incomplete"

// restoreInto unpacks the entries under want into target/SOURCE.
func (s *Server) restoreInto(ctx context.Context, ref snapshotRef, ss *session, want, target string) (files.ExtractStats, error) {
	var total files.ExtractStats
	d, sn, kr, err := s.openSnapshot(ctx, ref, ss)
	if err != nil {
		return total, err
	}
	if want == "" {
		return snapshot.Restore(ctx, d, sn, snapshot.RestoreOptions{Target: target, Keys: kr, Logger: s.log})
	}
	dir := filepath.Join(target, ref.Source)
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return total, fmt.Errorf("%s is a symbolic link: refusing to restore through it", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return total, err
	}
	marker := filepath.Join(dir, incompleteMarker)
	note := fmt.Sprintf("restore of %s from snapshot %s did not finish: do not trust this directory\n", want, ref.ID)
	if err := os.WriteFile(marker, []byte(note), 0o600); err != nil {
		return total, err
	}
	_, err = snapshot.Restore(ctx, d, sn, snapshot.RestoreOptions{Keys: kr, Logger: s.log,
		Unpack: func(ctx context.Context, ob v1.SnapshotObject, r io.Reader) (files.ExtractStats, error) {
			if ob.Format != "tar" {
				return files.ExtractStats{}, nil
			}
			pr, done := filterTar(r, want)
			st, err := files.Extract(ctx, pr, dir, files.ExtractOptions{Logger: s.log})
			pr.CloseWithError(io.ErrClosedPipe) // stops the filter if Extract stopped early
			<-done
			total.Files += st.Files
			total.Bytes += st.Bytes
			return st, err
		}})
	if err != nil {
		return total, err
	}
	return total, os.Remove(marker)
}

// filterTar returns a tar stream of the entries of r under dir; done is
// closed once the filter stopped reading r (close the reader to stop it).
func filterTar(r io.Reader, dir string) (*io.PipeReader, <-chan struct{}) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr := tar.NewReader(r)
		tw := tar.NewWriter(pw)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if !under(cleanEntry(h.Name), dir) {
				continue
			}
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr, done
}
