package ftp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/drivertest"
	"github.com/aegis-backup/aegis/drivers/retry"
	"github.com/aegis-backup/aegis/test/testenv"
)

var envVars = []string{
	"AEGIS_TEST_FTP_HOST", "AEGIS_TEST_FTP_PORT", "AEGIS_TEST_FTP_IMPLICIT_PORT", "AEGIS_TEST_FTP_USER",
	"AEGIS_TEST_FTP_PASSWORD_FILE", "AEGIS_TEST_FTP_CA_FILE", "AEGIS_TEST_FTP_PATH", "AEGIS_TEST_FTP_READONLY_PATH",
}

// server is an FTP server the tests can use; its files are on this host.
type server struct {
	env map[string]string
	dir string // for private servers: the state directory
}

func sharedServer(t *testing.T) server {
	t.Helper()
	return server{env: testenv.Require(t, "FTP server", envVars...)}
}

// privateServer starts servers of the test's own with hack/server-ftp.sh,
// for tests that stop, freeze or kill them.
func privateServer(t *testing.T) server {
	t.Helper()
	sharedServer(t)
	// Not t.TempDir(): the server's user must reach the directory.
	dir, err := os.MkdirTemp("", "aegis-ftp-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Stop (and unmount) even when the start fails half way.
	t.Cleanup(func() { serverScript(t, "stop", dir) })
	s := server{env: serverScript(t, "start", dir), dir: dir}
	return s
}

func serverScript(t *testing.T, cmd, dir string) map[string]string {
	return testenv.ServerScript(t, "ftp", cmd, dir)
}

// sessions returns the pids of the private server's session processes
// (those of the plain and explicit TLS server).
func (s server) sessions(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "explicit.pid"))
	if err != nil {
		t.Fatal(err)
	}
	listener, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	out, err := exec.Command("ps", "-e", "-o", "pid=,ppid=").Output()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	children := map[int][]int{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			c, _ := strconv.Atoi(f[0])
			p, _ := strconv.Atoi(f[1])
			children[p] = append(children[p], c)
		}
	}
	var all []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			all = append(all, c)
			walk(c)
		}
	}
	walk(listener)
	return all
}

func (s server) signalSessions(t *testing.T, sig syscall.Signal) {
	for _, pid := range s.sessions(t) {
		syscall.Kill(pid, sig)
	}
}

func (s server) signalListener(t *testing.T, sig syscall.Signal) {
	b, err := os.ReadFile(filepath.Join(s.dir, "explicit.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	syscall.Kill(pid, sig)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func fastRetry(t *testing.T) retry.Policy {
	return retry.Policy{Attempts: 3, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Logger: testLogger(t)}
}

// spec returns a destination in mode ("none", "explicit" or "implicit")
// below a fresh directory.
func (s server) spec(t *testing.T, mode string) v1.FTPDestination {
	port, _ := strconv.Atoi(s.env["AEGIS_TEST_FTP_PORT"])
	spec := v1.FTPDestination{
		Host:         s.env["AEGIS_TEST_FTP_HOST"],
		Port:         port,
		User:         s.env["AEGIS_TEST_FTP_USER"],
		PasswordFile: s.env["AEGIS_TEST_FTP_PASSWORD_FILE"],
		Path:         filepath.Join(s.env["AEGIS_TEST_FTP_PATH"], strings.ReplaceAll(t.Name(), "/", "_")+"-"+randomHex(4)),
		TLS:          mode,
	}
	if mode != "none" {
		spec.CAFile = s.env["AEGIS_TEST_FTP_CA_FILE"]
	}
	if mode == "implicit" {
		spec.Port, _ = strconv.Atoi(s.env["AEGIS_TEST_FTP_IMPLICIT_PORT"])
	}
	return spec
}

func (s server) open(t *testing.T, mode string, mod func(*v1.FTPDestination, *Options)) *Store {
	t.Helper()
	spec := s.spec(t, mode)
	opts := Options{Logger: testLogger(t), Retry: fastRetry(t)}
	if mod != nil {
		mod(&spec, &opts)
	}
	st, err := New(spec, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st
}

func TestConformance(t *testing.T) {
	srv := sharedServer(t)
	for _, mode := range []string{"none", "explicit", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			drivertest.Run(t, func(t *testing.T) drivers.Destination { return srv.open(t, mode, nil) },
				drivertest.WithSweep(func(d drivers.Destination) string { return d.(*Store).path("") }))
		})
	}
}

// TestConformanceWrapped runs the suite on the stack the agent uses: the
// retry decorator around the driver.
func TestConformanceWrapped(t *testing.T) {
	srv := sharedServer(t)
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		return retry.Wrap(srv.open(t, "explicit", nil), fastRetry(t))
	})
}

func randomData(n int) []byte {
	b := make([]byte, n)
	mrand.NewChaCha8([32]byte{byte(n)}).Read(b)
	return b
}

// TestLargeObject: a large upload arrives whole, private (mode 0600), and
// no temporary file is left.
func TestLargeObject(t *testing.T) {
	srv := sharedServer(t)
	for _, mode := range []string{"none", "explicit", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			st := srv.open(t, mode, nil)
			defer st.Close()
			data := randomData(20<<20 + 7)
			n, err := st.Put(t.Context(), "h/p/s/id/files.tar.zst.age", bytes.NewReader(data))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Put = %d, %v", n, err)
			}
			file := filepath.Join(st.root, "h/p/s/id/files.tar.zst.age")
			got, err := os.ReadFile(file)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("the file on the server: %d bytes, %v", len(got), err)
			}
			if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
				t.Errorf("files beside the object: %v", entries)
			}
			rc, err := st.Get(t.Context(), "h/p/s/id/files.tar.zst.age")
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, rc); err != nil || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("Get: %d bytes, %v", buf.Len(), err)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	srv := sharedServer(t)
	const wrong = "not-the-password-4711"
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(wrong+"\n"), 0o600)
	st := srv.open(t, "explicit", func(s *v1.FTPDestination, _ *Options) { s.PasswordFile = pw })
	defer st.Close()
	calls := 0
	r := retry.Wrap(st, retry.Policy{Sleep: func(context.Context, time.Duration) error { calls++; return nil }})
	err := r.Check(t.Context())
	if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "as aegistest failed") {
		t.Fatalf("Check: %v; want a permanent login failure", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("the error shows the password: %v", err)
	}
	if calls != 0 {
		t.Errorf("retried %d times", calls)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	srv := sharedServer(t)
	for _, mode := range []string{"explicit", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			st := srv.open(t, mode, func(s *v1.FTPDestination, _ *Options) { s.CAFile = "" })
			defer st.Close()
			err := st.Check(t.Context())
			if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "is not trusted") ||
				!strings.Contains(err.Error(), "fingerprint") || !strings.Contains(err.Error(), "caFile") {
				t.Fatalf("Check: %v; want a permanent error about the certificate", err)
			}
		})
	}
}

func TestReadOnlyDirectory(t *testing.T) {
	srv := sharedServer(t)
	st := srv.open(t, "none", func(s *v1.FTPDestination, _ *Options) { s.Path = srv.env["AEGIS_TEST_FTP_READONLY_PATH"] })
	defer st.Close()
	err := st.Check(t.Context())
	if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "write check") {
		t.Fatalf("Check: %v; want a permanent error", err)
	}
	if _, err := st.Put(t.Context(), "a/b", strings.NewReader("x")); !drivers.IsPermanent(err) {
		t.Fatalf("Put: %v; want a permanent error", err)
	}
}

func TestFullDisk(t *testing.T) {
	srv := sharedServer(t)
	full := testenv.Require(t, "a full remote file system", "AEGIS_TEST_FTP_FULL_PATH")["AEGIS_TEST_FTP_FULL_PATH"]
	st := srv.open(t, "explicit", func(s *v1.FTPDestination, _ *Options) { s.Path = filepath.Join(full, randomHex(4)) })
	defer st.Close()
	if err := st.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	_, err := st.Put(t.Context(), "big", bytes.NewReader(randomData(4<<20)))
	if err == nil {
		t.Fatal("Put of 4 MiB onto a 2 MiB file system succeeded")
	}
	t.Logf("Put: %v", err)
	if err := st.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if entries, _ := os.ReadDir(st.root); len(entries) != 0 {
		t.Errorf("left on the full file system: %v", entries)
	}
}

// TestDroppedControlConnection: the server drops an idle pooled connection;
// the next operation reconnects without an error.
func TestDroppedControlConnection(t *testing.T) {
	srv := privateServer(t)
	st := srv.open(t, "explicit", nil)
	defer st.Close()
	if _, err := st.Put(t.Context(), "a", strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	srv.signalSessions(t, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	if _, err := st.Put(t.Context(), "b", strings.NewReader("b")); err != nil {
		t.Fatalf("Put after the connection dropped: %v", err)
	}
	srv.signalSessions(t, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	if _, err := st.Stat(t.Context(), "b"); err != nil {
		t.Fatalf("Stat after the connection dropped: %v", err)
	}
}

// TestServerKilledMidUpload: the server dies during an upload. Put fails;
// once the server is back, the temporary file is removed before Close
// returns, and the next upload works.
func TestServerKilledMidUpload(t *testing.T) {
	srv := privateServer(t)
	st := srv.open(t, "explicit", func(_ *v1.FTPDestination, o *Options) { o.CleanupGrace = time.Minute })
	data := randomData(8 << 20)
	var once sync.Once
	r := io.MultiReader(bytes.NewReader(data[:4<<20]), readerFunc(func([]byte) (int, error) {
		once.Do(func() { serverScript(t, "kill", srv.dir) })
		return 0, io.EOF
	}), bytes.NewReader(data[4<<20:]))
	if _, err := st.Put(t.Context(), "d/obj", r); err == nil {
		t.Fatal("Put succeeded with the server killed")
	} else {
		t.Logf("Put: %v", err)
	}
	serverScript(t, "start", srv.dir)
	if _, err := st.Put(t.Context(), "d/obj", bytes.NewReader(data)); err != nil {
		t.Fatalf("Put after the restart: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(st.root, "d"))
	if len(entries) != 1 || entries[0].Name() != "obj" {
		t.Errorf("files on the server: %v, want only obj", entries)
	}
}

// TestStalledServer: a session that stops answering fails the operation
// after the stall timeout, and the next connection works.
func TestStalledServer(t *testing.T) {
	srv := privateServer(t)
	st := srv.open(t, "none", func(_ *v1.FTPDestination, o *Options) {
		o.StallTimeout = time.Second
		o.ConnectTimeout = 2 * time.Second
		o.CleanupGrace = time.Second
	})
	defer st.Close()
	if err := st.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Freeze the session and the server: the reconnect hangs too.
	srv.signalSessions(t, syscall.SIGSTOP)
	srv.signalListener(t, syscall.SIGSTOP)
	start := time.Now()
	_, err := st.Put(t.Context(), "obj", bytes.NewReader(randomData(8<<20)))
	srv.signalListener(t, syscall.SIGCONT)
	srv.signalSessions(t, syscall.SIGKILL)
	if err == nil {
		t.Fatal("Put succeeded on a frozen server")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Put took %s to give up", d)
	}
	t.Logf("Put: %v", err)
	if _, err := st.Put(t.Context(), "obj", strings.NewReader("x")); err != nil {
		t.Fatalf("Put on a new connection: %v", err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
