package web

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// entry is one file of a snapshot.
type entry struct {
	Name    string // path in the snapshot, without leading or trailing slash
	Type    string // dir, file, symlink, other
	Size    int64
	Mode    string
	ModTime time.Time
	Link    string
	Perm    int64 // the tar header's mode bits
}

// entryOf describes a tar header.
func entryOf(h *tar.Header) entry {
	e := entry{Name: cleanEntry(h.Name), Size: h.Size, Mode: h.FileInfo().Mode().String(), ModTime: h.ModTime, Link: h.Linkname, Perm: h.Mode}
	switch h.Typeflag {
	case tar.TypeDir:
		e.Type = "dir"
	case tar.TypeReg:
		e.Type = "file"
	case tar.TypeSymlink:
		e.Type = "symlink"
	default:
		e.Type = "other"
	}
	return e
}

func cleanEntry(name string) string {
	return strings.Trim(path.Clean("/"+name), "/")
}

// walk decodes every data object of a snapshot and calls fn with each
// entry (a non-tar object, such as a database dump, is one file named as
// the object) and a reader of its contents. The snapshot is checked as a
// restore checks it; an error of fn stops the walk.
func walk(ctx context.Context, d drivers.Destination, sn snapshot.Snapshot, kr *snapshot.KeyRing, fn func(e entry, r io.Reader) error) error {
	_, err := snapshot.Restore(ctx, d, sn, snapshot.RestoreOptions{Keys: kr, Unpack: func(ctx context.Context, ob v1.SnapshotObject, r io.Reader) (files.ExtractStats, error) {
		if ob.Format != "tar" {
			return files.ExtractStats{}, fn(entry{Name: cleanEntry(ob.Name), Type: "file", Size: ob.RawSize, Mode: "-rw-------", Perm: 0o600}, r)
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return files.ExtractStats{}, nil
			}
			if err != nil {
				return files.ExtractStats{}, fmt.Errorf("read tar of object %s: %w", ob.Key, err)
			}
			if err := fn(entryOf(h), tr); err != nil {
				return files.ExtractStats{}, err
			}
		}
	}})
	return err
}

// entries lists a snapshot's files, from the cache when it was browsed
// lately.
func (s *Server) entries(ctx context.Context, ref snapshotRef, ss *session) ([]entry, snapshot.Snapshot, error) {
	d, sn, kr, err := s.openSnapshot(ctx, ref, ss)
	if err != nil {
		return nil, sn, err
	}
	// A list made with a user's uploaded identity is that session's only.
	key := ref.URL()
	if ss != nil && len(ss.identityFiles(s.sessions)) > 0 {
		key += "|" + ss.csrf
	}
	if l, ok := s.cache.get(key); ok {
		return l, sn, nil
	}
	var l []entry
	err = walk(ctx, d, sn, kr, func(e entry, _ io.Reader) error {
		if e.Name != "" {
			l = append(l, e)
		}
		return nil
	})
	if err != nil {
		return nil, sn, err
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	s.cache.put(key, l)
	return l, sn, nil
}

// children lists what is directly in dir ("" is the top): entries, and the
// directories implied by deeper entries.
func children(all []entry, dir string) []entry {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	seen := map[string]int{}
	var out []entry
	for _, e := range all {
		rest, ok := strings.CutPrefix(e.Name, prefix)
		if !ok || rest == "" {
			continue
		}
		child, _, deeper := strings.Cut(rest, "/")
		name := prefix + child
		if i, dup := seen[name]; dup {
			if !deeper && e.Type != "dir" {
				out[i] = e
			}
			continue
		}
		seen[name] = len(out)
		if deeper {
			out = append(out, entry{Name: name, Type: "dir", Mode: "d---------", Perm: 0o755})
		} else {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Type == "dir") != (out[j].Type == "dir") {
			return out[i].Type == "dir"
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// under reports whether name is dir or inside it ("" holds everything).
func under(name, dir string) bool {
	return dir == "" || name == dir || strings.HasPrefix(name, dir+"/")
}

// crumb is one step of the path shown above a listing.
type crumb struct{ Name, Path string }

func crumbs(p string) []crumb {
	out := []crumb{{"/", ""}}
	if p == "" {
		return out
	}
	parts := strings.Split(p, "/")
	for i, part := range parts {
		out = append(out, crumb{part, strings.Join(parts[:i+1], "/")})
	}
	return out
}

// browseData is the page of one snapshot's directory.
type browseData struct {
	Ref      snapshotRef
	Snapshot snapshot.Snapshot
	Path     string
	Crumbs   []crumb
	Entries  []entry
	Error    string
}

func (s *Server) browse(w http.ResponseWriter, r *http.Request) {
	ref := refOf(r)
	p := cleanEntry(r.URL.Query().Get("path"))
	d := &browseData{Ref: ref, Path: p, Crumbs: crumbs(p)}
	all, sn, err := s.entries(r.Context(), ref, sessionFrom(r))
	d.Snapshot = sn
	if err != nil {
		d.Error = redact(err.Error())
		status := http.StatusOK
		if sn.Manifest == nil {
			status = http.StatusNotFound
		}
		s.render(w, r, status, "browse", page{Title: "Snapshot " + ref.ID, Nav: "snapshots", Data: d})
		return
	}
	d.Entries = children(all, p)
	s.render(w, r, http.StatusOK, "browse", page{Title: "Snapshot " + ref.ID, Nav: "snapshots", Data: d})
}

// downloadFile sends one file of a snapshot, streamed from the decoder.
// The snapshot is checked to its end after the file is sent; a failed
// check aborts the response, so the client sees a broken download rather
// than a whole one.
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) {
	ref := refOf(r)
	want := cleanEntry(r.URL.Query().Get("path"))
	d, sn, kr, err := s.openSnapshot(r.Context(), ref, sessionFrom(r))
	if err != nil {
		s.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	sent := false
	err = walk(r.Context(), d, sn, kr, func(e entry, rd io.Reader) error {
		if sent || e.Name != want || e.Type != "file" {
			return nil
		}
		sent = true
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", contentDisposition(path.Base(e.Name)))
		h.Set("Content-Length", strconv.FormatInt(e.Size, 10))
		_, err := io.Copy(w, rd)
		return err
	})
	s.finishDownload(w, r, ref, want, sent, err)
}

// finishDownload reports the end of a download: an error before anything
// was sent is a page, after it an aborted response.
func (s *Server) finishDownload(w http.ResponseWriter, r *http.Request, ref snapshotRef, want string, sent bool, err error) {
	switch {
	case err != nil && sent:
		s.log.Error("download of a snapshot failed", "snapshot", ref.URL(), "path", want, "err", err)
		panic(http.ErrAbortHandler)
	case err != nil:
		s.fail(w, r, http.StatusBadGateway, err.Error())
	case !sent:
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("%q is not a file of snapshot %s", want, ref.ID))
	}
}

// downloadTar sends a directory of a snapshot (or all of it) as a tar.
func (s *Server) downloadTar(w http.ResponseWriter, r *http.Request) {
	ref := refOf(r)
	want := cleanEntry(r.URL.Query().Get("path"))
	d, sn, kr, err := s.openSnapshot(r.Context(), ref, sessionFrom(r))
	if err != nil {
		s.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	name := ref.Source + "-" + ref.ID
	if want != "" {
		name += "-" + path.Base(want)
	}
	var tw *tar.Writer
	err = walk(r.Context(), d, sn, kr, func(e entry, rd io.Reader) error {
		if !under(e.Name, want) {
			return nil
		}
		if tw == nil {
			w.Header().Set("Content-Type", "application/x-tar")
			w.Header().Set("Content-Disposition", contentDisposition(name+".tar"))
			tw = tar.NewWriter(w)
		}
		return copyEntry(tw, e, rd)
	})
	if err == nil && tw != nil {
		err = tw.Close()
	}
	s.finishDownload(w, r, ref, want, tw != nil, err)
}

// copyEntry writes one entry to a tar.
func copyEntry(tw *tar.Writer, e entry, rd io.Reader) error {
	h := &tar.Header{Name: e.Name, Size: e.Size, ModTime: e.ModTime, Linkname: e.Link, Mode: e.Perm, Format: tar.FormatPAX}
	switch e.Type {
	case "dir":
		h.Typeflag, h.Name, h.Size = tar.TypeDir, e.Name+"/", 0
	case "symlink":
		h.Typeflag, h.Size = tar.TypeSymlink, 0
	case "file":
		h.Typeflag = tar.TypeReg
	default:
		return nil
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag == tar.TypeReg {
		_, err := io.Copy(tw, rd)
		return err
	}
	return nil
}

// contentDisposition names a download, safely quoted.
func contentDisposition(name string) string {
	return "attachment; filename=" + strconv.Quote(strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r > 0x7e {
			return '_'
		}
		return r
	}, name))
}
