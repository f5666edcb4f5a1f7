package ftp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// TestDeleteDenied: a file of the account in a directory the account may
// not change cannot be deleted; Delete says so with ErrDeleteDenied, a
// permanent error, and the file stays. The test makes the file on this
// host (the server's directory is local), as root.
func TestDeleteDenied(t *testing.T) {
	srv := sharedServer(t)
	dir := srv.env["AEGIS_TEST_FTP_READONLY_PATH"]
	name := "denied-" + randomHex(4)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("kept\n"), 0o644); err != nil {
		t.Fatalf("make a file in the read-only directory (tests run as root): %v", err)
	}
	t.Cleanup(func() { os.Remove(p) })
	if u, err := user.Lookup(srv.env["AEGIS_TEST_FTP_USER"]); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		os.Chown(p, uid, -1)
	}
	st := srv.open(t, "none", func(s *v1.FTPDestination, _ *Options) { s.Path = dir })
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

// freePort returns a port nothing listens on at the moment.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeOnlyServer starts a vsftpd of the test's own, a copy of the shared
// explicit-TLS server's configuration with cmds_denied=DELE,RMD (the setup
// docs/security.md describes), and returns its port.
func writeOnlyServer(t *testing.T, srv server) int {
	t.Helper()
	shared := filepath.Dir(filepath.Dir(srv.env["AEGIS_TEST_FTP_CA_FILE"]))
	cfg, err := os.ReadFile(filepath.Join(shared, "explicit.conf"))
	if err != nil {
		t.Fatalf("the shared server's configuration: %v", err)
	}
	port, pasv := freePort(t), freePort(t)
	dir := t.TempDir()
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(cfg)), "\n") {
		switch key, _, _ := strings.Cut(line, "="); key {
		case "listen_port":
			line = fmt.Sprintf("listen_port=%d", port)
		case "pasv_min_port", "pasv_max_port":
			line = fmt.Sprintf("%s=%d", key, pasv)
		case "vsftpd_log_file":
			line = "vsftpd_log_file=" + filepath.Join(dir, "vsftpd.log")
		}
		lines = append(lines, line)
	}
	lines = append(lines, "cmds_denied=DELE,RMD")
	conf := filepath.Join(dir, "vsftpd.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/vsftpd", conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vsftpd: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// vsftpd says nothing when it listens: try until it answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("vsftpd did not listen on %d: %v", port, err)
		}
		runtime.Gosched()
	}
}

// TestWriteOnlyAccount: against a vsftpd that refuses DELE, Check passes
// (with a warning), uploads work, even over an existing key, and Delete
// is refused with ErrDeleteDenied, the file left whole.
func TestWriteOnlyAccount(t *testing.T) {
	srv := sharedServer(t)
	port := writeOnlyServer(t, srv)
	st := srv.open(t, "explicit", func(s *v1.FTPDestination, _ *Options) { s.Port = port })
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
