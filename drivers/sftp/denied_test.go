package sftp

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// TestDeleteDenied: a file of the account in a directory the account may
// not change cannot be deleted; Delete says so with ErrDeleteDenied, a
// permanent error, and the file stays. The test makes the file on this
// host (the server's directory is local), as root.
func TestDeleteDenied(t *testing.T) {
	srv := sharedServer(t)
	dir := srv.env["AEGIS_TEST_SFTP_READONLY_PATH"]
	name := "denied-" + randomHex(4)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("kept\n"), 0o644); err != nil {
		t.Fatalf("make a file in the read-only directory (tests run as root): %v", err)
	}
	t.Cleanup(func() { os.Remove(p) })
	if u, err := user.Lookup(srv.env["AEGIS_TEST_SFTP_USER"]); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		os.Chown(p, uid, -1)
	}
	st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) { s.Path = dir })
	defer st.Close()
	err := st.Delete(t.Context(), name)
	if !errors.Is(err, drivers.ErrDeleteDenied) || !drivers.IsPermanent(err) {
		t.Fatalf("Delete: %v; want a permanent ErrDeleteDenied", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "kept\n" {
		t.Errorf("after a refused Delete the file reads %q, %v", b, err)
	}
	if err := st.Delete(t.Context(), "missing-"+name); err != nil {
		t.Errorf("Delete of a missing key in the same directory: %v", err)
	}
}
