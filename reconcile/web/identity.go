package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// memIdentity is an age identity a user uploaded. It lives in an
// anonymous memory file (memfd): never written to a disk, readable by the
// key ring as a key file through /proc/self/fd, and gone once closed (at
// sign-out or when the session expires, or when the process ends).
type memIdentity struct {
	f  *os.File
	id string // the key ID, for the page
}

// maxIdentity bounds an uploaded identity file.
const maxIdentity = 64 << 10

func newMemIdentity(body []byte) (*memIdentity, error) {
	fd, err := unix.MemfdCreate("aegis-identity", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("hold the identity in memory: %w", err)
	}
	f := os.NewFile(uintptr(fd), "uploaded identity")
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return nil, err
	}
	m := &memIdentity{f: f}
	info, ids, _, err := snapshot.ReadKeyFile(m.path())
	if err != nil || len(ids) == 0 {
		f.Close()
		return nil, errors.New("this is not an age identity (a line AGE-SECRET-KEY-1…); passphrase-protected identities cannot be uploaded")
	}
	m.id = info.ID
	return m, nil
}

// path names the identity for snapshot.LoadKeyRing.
func (m *memIdentity) path() string { return fmt.Sprintf("/proc/self/fd/%d", m.f.Fd()) }

func (m *memIdentity) close() { m.f.Close() }

// uploadIdentity takes an age identity from the form (a file, or pasted
// text) and keeps it with the session, in memory only.
func (s *Server) uploadIdentity(w http.ResponseWriter, r *http.Request) {
	ss := sessionFrom(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxIdentity+4096)
	body := []byte(r.PostFormValue("identity"))
	if file, _, err := r.FormFile("file"); err == nil {
		body, _ = io.ReadAll(io.LimitReader(file, maxIdentity))
		file.Close()
	}
	back := safeNext(r.PostFormValue("next"))
	if len(strings.TrimSpace(string(body))) == 0 {
		s.fail(w, r, http.StatusBadRequest, "paste an age identity or choose its file")
		return
	}
	m, err := newMemIdentity(body)
	clear(body)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	s.sessions.addIdentity(ss, m)
	s.cache.clear() // entries that could not be listed before may be now
	s.log.Info("identity uploaded for this session", "user", ss.user, "key", m.id)
	http.Redirect(w, r, back, http.StatusSeeOther)
}
