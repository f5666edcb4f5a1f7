package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
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

	"golang.org/x/crypto/ssh"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/drivertest"
	"github.com/aegis-backup/aegis/drivers/retry"
	"github.com/aegis-backup/aegis/test/testenv"
)

var envVars = []string{
	"AEGIS_TEST_SFTP_HOST", "AEGIS_TEST_SFTP_PORT", "AEGIS_TEST_SFTP_USER",
	"AEGIS_TEST_SFTP_KEY_FILE", "AEGIS_TEST_SFTP_PASSWORD_FILE",
	"AEGIS_TEST_SFTP_KNOWN_HOSTS", "AEGIS_TEST_SFTP_PATH", "AEGIS_TEST_SFTP_READONLY_PATH",
}

// server is an SSH server the tests can use; its files are on this host.
type server struct {
	env map[string]string
	dir string // for private servers: the state directory
}

func sharedServer(t *testing.T) server {
	t.Helper()
	return server{env: testenv.Require(t, "SFTP server", envVars...)}
}

// privateServer starts a server of the test's own with
// hack/server-sftp.sh, for tests that stop, freeze or kill it.
func privateServer(t *testing.T) server {
	t.Helper()
	sharedServer(t)
	// Not t.TempDir(): the server's user must reach the directory.
	dir, err := os.MkdirTemp("", "aegis-sftp-test-")
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
	return testenv.ServerScript(t, "sftp", cmd, dir)
}

// signal sends sig to the private server's session processes, and to the
// listener too if all is set.
func (s server) signal(t *testing.T, sig syscall.Signal, all bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "sshd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	listener, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	pids := descendants(t, listener)
	if all {
		pids = append(pids, listener)
	}
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
}

// descendants returns the pids of pid's children, theirs, and so on.
func descendants(t *testing.T, pid int) []int {
	out, err := exec.Command("ps", "-e", "-o", "pid=,ppid=").Output()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	children := map[int][]int{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		c, _ := strconv.Atoi(f[0])
		p, _ := strconv.Atoi(f[1])
		children[p] = append(children[p], c)
	}
	var all []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			all = append(all, c)
			walk(c)
		}
	}
	walk(pid)
	return all
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func fastRetry(t *testing.T) retry.Policy {
	return retry.Policy{Attempts: 3, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Logger: testLogger(t)}
}

func (s server) spec(t *testing.T) v1.SFTPDestination {
	port, _ := strconv.Atoi(s.env["AEGIS_TEST_SFTP_PORT"])
	return v1.SFTPDestination{
		Host:           s.env["AEGIS_TEST_SFTP_HOST"],
		Port:           port,
		User:           s.env["AEGIS_TEST_SFTP_USER"],
		Path:           filepath.Join(s.env["AEGIS_TEST_SFTP_PATH"], strings.ReplaceAll(t.Name(), "/", "_")+"-"+randomHex(4)),
		PrivateKeyFile: s.env["AEGIS_TEST_SFTP_KEY_FILE"],
		KnownHostsFile: s.env["AEGIS_TEST_SFTP_KNOWN_HOSTS"],
	}
}

func (s server) open(t *testing.T, mod func(*v1.SFTPDestination, *Options)) *Store {
	t.Helper()
	spec := s.spec(t)
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
	drivertest.Run(t, func(t *testing.T) drivers.Destination { return srv.open(t, nil) },
		drivertest.WithSweep(func(d drivers.Destination) string { return d.(*Store).root }))
}

// TestConformancePassword runs the suite logged in with a password, on the
// stack the agent uses (the retry decorator around the driver).
func TestConformancePassword(t *testing.T) {
	srv := sharedServer(t)
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) {
			s.PrivateKeyFile = ""
			s.PasswordFile = srv.env["AEGIS_TEST_SFTP_PASSWORD_FILE"]
		})
		return retry.Wrap(st, fastRetry(t))
	})
}

func randomData(n int) []byte {
	b := make([]byte, n)
	mrand.NewChaCha8([32]byte{byte(n)}).Read(b)
	return b
}

// TestLargeObject: a large upload arrives whole, with mode 0600, and no
// temporary file is left.
func TestLargeObject(t *testing.T) {
	srv := sharedServer(t)
	st := srv.open(t, nil)
	defer st.Close()
	data := randomData(20<<20 + 7)
	n, err := st.Put(t.Context(), "h/p/s/id/files.tar.zst.age", bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put = %d, %v", n, err)
	}
	file := filepath.Join(st.root, "h/p/s/id/files.tar.zst.age")
	got, err := os.ReadFile(file) // the server's file, read on this host
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file on the server: %d bytes, %v", len(got), err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
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
	rc.Close()
}

func writeKnownHosts(t *testing.T, line string) string {
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostKeys(t *testing.T) {
	srv := sharedServer(t)
	hostPort := "[" + srv.env["AEGIS_TEST_SFTP_HOST"] + "]:" + srv.env["AEGIS_TEST_SFTP_PORT"]
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(priv)
	otherLine := hostPort + " " + string(ssh.MarshalAuthorizedKey(other.PublicKey()))
	real, _ := os.ReadFile(srv.env["AEGIS_TEST_SFTP_KNOWN_HOSTS"])
	realKey, _, _, _, err := ssh.ParseAuthorizedKey(bytes.TrimSpace(real[strings.IndexByte(string(real), ' ')+1:]))
	if err != nil {
		t.Fatal(err)
	}
	serverFP := ssh.FingerprintSHA256(realKey)

	for _, tc := range []struct {
		name, knownHosts string
		want             []string
	}{
		{"unknown", "[other.example]:22 " + string(ssh.MarshalAuthorizedKey(other.PublicKey())),
			[]string{"host key of 127.0.0.1:", "is unknown", serverFP, "ssh-keyscan"}},
		{"changed", otherLine,
			[]string{"HOST KEY MISMATCH", serverFP, ssh.FingerprintSHA256(other.PublicKey()), "known_hosts:1"}},
		{"revoked", "@revoked " + otherLine + hostPort + " " + string(real[strings.IndexByte(string(real), ' ')+1:]) + "@revoked * " + string(real[strings.IndexByte(string(real), ' ')+1:]),
			[]string{"revoked", serverFP}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kh := writeKnownHosts(t, tc.knownHosts)
			st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) { s.KnownHostsFile = kh })
			defer st.Close()
			calls := 0
			r := retry.Wrap(st, retry.Policy{Sleep: func(context.Context, time.Duration) error { calls++; return nil }})
			err := r.Check(t.Context())
			if err == nil || !drivers.IsPermanent(err) {
				t.Fatalf("Check: %v; want a permanent error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if calls != 0 {
				t.Errorf("retried %d times", calls)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	srv := sharedServer(t)
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-password-4711"
		pw := filepath.Join(t.TempDir(), "pw")
		os.WriteFile(pw, []byte(wrong+"\n"), 0o600)
		st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) { s.PrivateKeyFile, s.PasswordFile = "", pw })
		defer st.Close()
		err := st.Check(t.Context())
		if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "login to") || !strings.Contains(err.Error(), "as aegistest failed") {
			t.Fatalf("Check: %v; want a permanent login failure", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("the error shows the password: %v", err)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		pemBlock, _ := ssh.MarshalPrivateKey(priv, "")
		key := filepath.Join(t.TempDir(), "id")
		os.WriteFile(key, pem.EncodeToMemory(pemBlock), 0o600)
		st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) { s.PrivateKeyFile = key })
		defer st.Close()
		if err := st.Check(t.Context()); !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "login to") {
			t.Fatalf("Check: %v; want a permanent login failure", err)
		}
	})
	t.Run("key with a passphrase", func(t *testing.T) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		pemBlock, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
		key := filepath.Join(t.TempDir(), "id")
		os.WriteFile(key, pem.EncodeToMemory(pemBlock), 0o600)
		_, err := New(v1.SFTPDestination{Host: "127.0.0.1", User: "u", Path: "/x", PrivateKeyFile: key, KnownHostsFile: srv.env["AEGIS_TEST_SFTP_KNOWN_HOSTS"]}, Options{})
		if err == nil || !strings.Contains(err.Error(), "protected by a passphrase") {
			t.Fatalf("New: %v", err)
		}
	})
	t.Run("key readable by others", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "id")
		b, _ := os.ReadFile(srv.env["AEGIS_TEST_SFTP_KEY_FILE"])
		os.WriteFile(key, b, 0o644)
		_, err := New(v1.SFTPDestination{Host: "127.0.0.1", User: "u", Path: "/x", PrivateKeyFile: key, KnownHostsFile: srv.env["AEGIS_TEST_SFTP_KNOWN_HOSTS"]}, Options{})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("New: %v", err)
		}
	})
}

func TestReadOnlyDirectory(t *testing.T) {
	srv := sharedServer(t)
	st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) { s.Path = srv.env["AEGIS_TEST_SFTP_READONLY_PATH"] })
	defer st.Close()
	err := st.Check(t.Context())
	if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Check: %v; want a permanent permission error", err)
	}
	_, err = st.Put(t.Context(), "a/b", strings.NewReader("x"))
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Put: %v; want permission denied", err)
	}
}

func TestFullDisk(t *testing.T) {
	srv := sharedServer(t)
	full := testenv.Require(t, "a full remote file system", "AEGIS_TEST_SFTP_FULL_PATH")["AEGIS_TEST_SFTP_FULL_PATH"]
	st := srv.open(t, func(s *v1.SFTPDestination, _ *Options) { s.Path = filepath.Join(full, randomHex(4)) })
	defer st.Close()
	if err := st.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	_, err := st.Put(t.Context(), "big", bytes.NewReader(randomData(4<<20)))
	if err == nil || !strings.Contains(err.Error(), "the remote file system is full") {
		t.Fatalf("Put: %v; want an error saying the file system is full", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	entries, _ := os.ReadDir(st.root)
	if len(entries) != 0 {
		t.Errorf("left on the full file system: %v", entries)
	}
}

// TestServerKilledMidUpload: the server dies during an upload. Put fails;
// once the server is back, the temporary file is removed before Close
// returns, and the next upload works.
func TestServerKilledMidUpload(t *testing.T) {
	srv := privateServer(t)
	st := srv.open(t, func(_ *v1.SFTPDestination, o *Options) { o.CleanupGrace = time.Minute })
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
	st := srv.open(t, func(_ *v1.SFTPDestination, o *Options) {
		o.StallTimeout = time.Second
		o.CleanupGrace = time.Second
	})
	defer st.Close()
	if err := st.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.signal(t, syscall.SIGSTOP, false)
	start := time.Now()
	_, err := st.Put(t.Context(), "obj", bytes.NewReader(randomData(8<<20)))
	srv.signal(t, syscall.SIGKILL, false)
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

// TestCancel: a cancelled ctx stops an upload that waits on the server.
func TestCancel(t *testing.T) {
	srv := privateServer(t)
	st := srv.open(t, func(_ *v1.SFTPDestination, o *Options) { o.CleanupGrace = time.Second })
	defer st.Close()
	if err := st.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.signal(t, syscall.SIGSTOP, false)
	defer srv.signal(t, syscall.SIGKILL, false)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := st.Put(ctx, "obj", bytes.NewReader(randomData(8<<20)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put: %v; want the ctx's error", err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
