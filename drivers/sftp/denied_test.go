package sftp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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

// writeOnlyServer starts an sshd of the test's own, a copy of the shared
// server's configuration whose SFTP server refuses remove and rmdir
// (internal-sftp -P remove,rmdir: the setup docs/security.md describes),
// and returns its port and known_hosts file.
func writeOnlyServer(t *testing.T, srv server) (int, string) {
	t.Helper()
	shared := filepath.Dir(srv.env["AEGIS_TEST_SFTP_KNOWN_HOSTS"])
	cfg, err := os.ReadFile(filepath.Join(shared, "sshd_config"))
	if err != nil {
		t.Fatalf("the shared server's sshd_config: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	var lines []string
	for _, line := range strings.Split(string(cfg), "\n") {
		switch {
		case strings.HasPrefix(line, "ListenAddress "):
			line = fmt.Sprintf("ListenAddress 127.0.0.1:%d", port)
		case strings.HasPrefix(line, "PidFile "):
			line = "PidFile " + filepath.Join(dir, "sshd.pid")
		case strings.HasPrefix(line, "ForceCommand "):
			line = "ForceCommand internal-sftp -P remove,rmdir"
		}
		lines = append(lines, line)
	}
	conf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	kh, _ := os.ReadFile(srv.env["AEGIS_TEST_SFTP_KNOWN_HOSTS"])
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(strings.Replace(string(kh), "]:"+srv.env["AEGIS_TEST_SFTP_PORT"]+" ", fmt.Sprintf("]:%d ", port), 1)), 0o644)

	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// sshd says when it listens.
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Server listening on") {
			go io.Copy(io.Discard, stderr)
			return port, known
		}
		t.Log(sc.Text())
	}
	t.Fatalf("sshd did not start")
	return 0, ""
}

// TestWriteOnlyAccount: against an SFTP server that refuses deletions,
// Check passes (with a warning), uploads work, even over an existing key,
// and Delete is refused with ErrDeleteDenied, the file left whole.
func TestWriteOnlyAccount(t *testing.T) {
	srv := sharedServer(t)
	port, known := writeOnlyServer(t, srv)
	st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) { s.Port, s.KnownHostsFile = port, known })
	defer st.Close()
	ctx := t.Context()
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check with an account that may not delete: %v", err)
	}
	for _, body := range []string{"first\n", "second\n"} {
		if _, err := st.Put(ctx, "h/p/s/id/data", strings.NewReader(body)); err != nil {
			t.Fatalf("Put %q: %v", body, err)
		}
	}
	err := st.Delete(ctx, "h/p/s/id/data")
	if !errors.Is(err, drivers.ErrDeleteDenied) {
		t.Fatalf("Delete: %v; want ErrDeleteDenied", err)
	}
	rc, err := st.Get(ctx, "h/p/s/id/data")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "second\n" {
		t.Errorf("after a refused Delete the object reads %q", b)
	}
}
