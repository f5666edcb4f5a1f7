package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/drivertest"
	"github.com/aegis-backup/aegis/drivers/retry"
	"github.com/aegis-backup/aegis/test/testenv"
)

// server is an S3 server the tests can use.
type server struct {
	endpoint, tlsEndpoint, bucket, credentials, caFile string
	access, secret                                     string
	dir                                                string // for private servers: the state directory
}

func sharedServer(t *testing.T) server {
	t.Helper()
	env := testenv.Require(t, "S3 server", "AEGIS_TEST_S3_ENDPOINT", "AEGIS_TEST_S3_BUCKET",
		"AEGIS_TEST_S3_CREDENTIALS_FILE", "AEGIS_TEST_S3_TLS_ENDPOINT", "AEGIS_TEST_S3_CA_FILE",
		"AEGIS_TEST_S3_ACCESS_KEY", "AEGIS_TEST_S3_SECRET_KEY")
	return serverFromEnv(env)
}

func serverFromEnv(env map[string]string) server {
	return server{
		endpoint:    env["AEGIS_TEST_S3_ENDPOINT"],
		tlsEndpoint: env["AEGIS_TEST_S3_TLS_ENDPOINT"],
		bucket:      env["AEGIS_TEST_S3_BUCKET"],
		credentials: env["AEGIS_TEST_S3_CREDENTIALS_FILE"],
		caFile:      env["AEGIS_TEST_S3_CA_FILE"],
		access:      env["AEGIS_TEST_S3_ACCESS_KEY"],
		secret:      env["AEGIS_TEST_S3_SECRET_KEY"],
	}
}

// privateServer starts servers of the test's own with hack/server-s3.sh,
// for tests that stop, freeze or kill them.
func privateServer(t *testing.T) server {
	t.Helper()
	sharedServer(t) // skips (or fails under CI) like the others
	dir := filepath.Join(t.TempDir(), "s3")
	t.Cleanup(func() { serverScript(t, "stop", dir) })
	s := serverFromEnv(serverScript(t, "start", dir))
	s.dir = dir
	return s
}

func serverScript(t *testing.T, cmd, dir string) map[string]string {
	return testenv.ServerScript(t, "s3", cmd, dir)
}

// signal sends sig to the private server's plain-HTTP gateway.
func (s server) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "plain.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// fastRetry retries as production does, without the waiting.
func fastRetry(t *testing.T) retry.Policy {
	return retry.Policy{
		Attempts: 3,
		Base:     10 * time.Millisecond,
		Max:      50 * time.Millisecond,
		Logger:   testLogger(t),
	}
}

// open returns a store under a fresh random prefix of the shared server.
func (s server) open(t *testing.T, mod func(*v1.S3Destination, *Options)) *Store {
	t.Helper()
	spec := v1.S3Destination{
		Provider:        "other",
		Endpoint:        s.endpoint,
		Bucket:          s.bucket,
		CredentialsFile: s.credentials,
		Prefix:          "test/" + t.Name() + "-" + randomHex(4),
	}
	opts := Options{Logger: testLogger(t), Retry: fastRetry(t), Getenv: func(string) string { return "" }}
	if mod != nil {
		mod(&spec, &opts)
	}
	st, err := New(spec, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st
}

// admin is a plain minio client on the server, to look behind the driver.
func (s server) admin(t *testing.T) *minio.Core {
	t.Helper()
	st := s.open(t, nil)
	t.Cleanup(func() { st.Close() })
	return st.core
}

func (s server) incompleteUploads(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for u := range s.admin(t).ListIncompleteUploads(t.Context(), s.bucket, prefix, true) {
		if u.Err != nil {
			t.Fatalf("list multipart uploads: %v", u.Err)
		}
		out = append(out, u.Key+" "+u.UploadID)
	}
	return out
}

func TestConformance(t *testing.T) {
	srv := sharedServer(t)
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		return srv.open(t, nil)
	})
}

// TestConformanceWrapped runs the suite on the stack the agent uses: the
// retry decorator around the driver, with several parts in flight.
func TestConformanceWrapped(t *testing.T) {
	srv := sharedServer(t)
	drivertest.Run(t, func(t *testing.T) drivers.Destination {
		st := srv.open(t, func(_ *v1.S3Destination, o *Options) { o.PartSize = minPartSize })
		return retry.Wrap(st, fastRetry(t))
	})
}

// randomData returns n reproducible bytes.
func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// chunky reads in uneven pieces, as the pipe from the pipeline does.
type chunky struct {
	r io.Reader
	n int
}

func (c *chunky) Read(p []byte) (int, error) {
	c.n++
	size := []int{65536, 1, 100000, 4096, 777}[c.n%5]
	return c.r.Read(p[:min(len(p), size)])
}

func TestMultipart(t *testing.T) {
	srv := sharedServer(t)
	for _, tc := range []struct {
		name     string
		size     int
		parallel int
	}{
		{"two parts, the second short", minPartSize + 1, 1},
		{"parts in flight", 4*minPartSize + 12345, 3},
		{"ends on a part boundary", 3 * minPartSize, 2},
		{"exactly one part", minPartSize, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := srv.open(t, func(s *v1.S3Destination, o *Options) {
				o.PartSize = minPartSize
				s.ParallelUploads = tc.parallel
				s.StorageClass = "STANDARD"
			})
			defer st.Close()
			data := randomData(uint64(tc.size), tc.size)
			n, err := st.Put(t.Context(), "a/obj", &chunky{r: bytes.NewReader(data)})
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Put = %d, %v; want %d", n, err, len(data))
			}
			rc, err := st.Get(t.Context(), "a/obj")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get: %d bytes, %v; want the %d bytes put", len(got), err, len(data))
			}
			if u := srv.incompleteUploads(t, st.prefix); len(u) != 0 {
				t.Errorf("multipart uploads left: %v", u)
			}
		})
	}
}

var errBroken = errors.New("pipeline broke")

// TestMultipartFailures: an upload that fails half way leaves no object
// and no multipart upload.
func TestMultipartFailures(t *testing.T) {
	srv := sharedServer(t)
	data := randomData(7, 4*minPartSize)
	for _, tc := range []struct {
		name string
		// reader returns what Put reads from and the error Put must wrap.
		reader func(cancel func()) (io.Reader, error)
	}{
		{"reader fails", func(func()) (io.Reader, error) {
			return io.MultiReader(bytes.NewReader(data[:2*minPartSize+100]), errReader{errBroken}), errBroken
		}},
		{"cancelled midway", func(cancel func()) (io.Reader, error) {
			return io.MultiReader(bytes.NewReader(data[:2*minPartSize+100]), onRead(cancel), bytes.NewReader(data[2*minPartSize+100:])), context.Canceled
		}},
		{"cancelled at the end", func(cancel func()) (io.Reader, error) {
			return io.MultiReader(bytes.NewReader(data), onRead(cancel)), context.Canceled
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := srv.open(t, func(s *v1.S3Destination, o *Options) {
				o.PartSize = minPartSize
				s.ParallelUploads = 2
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r, want := tc.reader(cancel)
			_, err := st.Put(ctx, "obj", r)
			if !errors.Is(err, want) {
				t.Fatalf("Put: %v; want an error wrapping %v", err, want)
			}
			if err := st.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			st2 := srv.open(t, nil)
			if _, err := st2.client.StatObject(t.Context(), st.bucket, st.prefix+"obj", minio.StatObjectOptions{}); err == nil {
				t.Errorf("the object exists after a failed Put")
			}
			if u := srv.incompleteUploads(t, st.prefix); len(u) != 0 {
				t.Errorf("multipart uploads left: %v", u)
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func onRead(f func()) io.Reader {
	var once sync.Once
	return readerFunc(func([]byte) (int, error) {
		once.Do(f)
		return 0, io.EOF
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestWrongCredentials(t *testing.T) {
	srv := sharedServer(t)
	creds := filepath.Join(t.TempDir(), "creds")
	const wrongSecret = "not-the-secret-0123456789abcdefghij"
	os.WriteFile(creds, []byte("[default]\naws_access_key_id = "+srv.access+"\naws_secret_access_key = "+wrongSecret+"\n"), 0o600)
	st := srv.open(t, func(s *v1.S3Destination, _ *Options) { s.CredentialsFile = creds })
	defer st.Close()
	calls := 0
	r := retry.Wrap(st, retry.Policy{Sleep: func(context.Context, time.Duration) error { calls++; return nil }})
	err := r.Check(t.Context())
	if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Check: %v; want a permanent error about the credentials", err)
	}
	if calls != 0 {
		t.Errorf("wrong credentials were retried %d times", calls)
	}
	for _, s := range []string{wrongSecret, srv.secret} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
	_, err = st.Put(t.Context(), "x", strings.NewReader("x"))
	if !drivers.IsPermanent(err) {
		t.Errorf("Put: %v; want a permanent error", err)
	}
}

func TestMissingBucket(t *testing.T) {
	srv := sharedServer(t)
	st := srv.open(t, func(s *v1.S3Destination, _ *Options) { s.Bucket = "no-such-bucket-" + randomHex(4) })
	defer st.Close()
	err := st.Check(t.Context())
	if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Check: %v; want a permanent error saying the bucket does not exist", err)
	}
	if _, err := st.Put(t.Context(), "x", strings.NewReader("x")); !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Put: %v; want a permanent error saying the bucket does not exist", err)
	}
}

func TestTLS(t *testing.T) {
	srv := sharedServer(t)
	env := func(vars map[string]string) func(*v1.S3Destination, *Options) {
		return func(s *v1.S3Destination, o *Options) {
			s.Endpoint = srv.tlsEndpoint
			o.Getenv = func(k string) string { return vars[k] }
		}
	}
	t.Run("AWS_CA_BUNDLE trusted", func(t *testing.T) {
		st := srv.open(t, env(map[string]string{"AWS_CA_BUNDLE": srv.caFile}))
		defer st.Close()
		if err := st.Check(t.Context()); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if _, err := st.Put(t.Context(), "k", strings.NewReader("over TLS")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		st.Delete(t.Context(), "k")
	})
	t.Run("untrusted certificate refused", func(t *testing.T) {
		st := srv.open(t, env(nil))
		defer st.Close()
		err := st.Check(t.Context())
		if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "is not trusted") ||
			!strings.Contains(err.Error(), "fingerprint") || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
			t.Fatalf("Check: %v; want a permanent error about the untrusted certificate", err)
		}
	})
	t.Run("insecureSkipVerify for a named endpoint", func(t *testing.T) {
		st := srv.open(t, func(s *v1.S3Destination, o *Options) {
			env(nil)(s, o)
			s.InsecureSkipVerify = true
		})
		defer st.Close()
		if err := st.Check(t.Context()); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("insecureSkipVerify refused for a provider's endpoint", func(t *testing.T) {
		_, err := New(v1.S3Destination{Provider: "aws", Bucket: "b", InsecureSkipVerify: true, CredentialsFile: srv.credentials}, Options{})
		if err == nil || !strings.Contains(err.Error(), "insecureSkipVerify needs an explicit") {
			t.Fatalf("New: %v", err)
		}
	})
	t.Run("plain HTTP ignores AWS_CA_BUNDLE", func(t *testing.T) {
		st := srv.open(t, func(s *v1.S3Destination, o *Options) {
			o.Getenv = func(k string) string {
				if k == "AWS_CA_BUNDLE" {
					return "/nonexistent/ca.pem"
				}
				return ""
			}
		})
		defer st.Close()
		if err := st.Check(t.Context()); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("AWS_CA_BUNDLE unreadable for a TLS endpoint", func(t *testing.T) {
		_, err := New(v1.S3Destination{Provider: "other", Endpoint: srv.tlsEndpoint, Bucket: srv.bucket, CredentialsFile: srv.credentials},
			Options{Getenv: func(k string) string {
				if k == "AWS_CA_BUNDLE" {
					return "/nonexistent/ca.pem"
				}
				return ""
			}})
		if err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
			t.Fatalf("New: %v", err)
		}
	})
}

// TestEnvironmentCredentials: without credentialsFile the standard AWS
// variables are used, and their absence is a clear, permanent error.
func TestEnvironmentCredentials(t *testing.T) {
	srv := sharedServer(t)
	st := srv.open(t, func(s *v1.S3Destination, o *Options) {
		s.CredentialsFile = ""
		o.Getenv = func(k string) string {
			return map[string]string{"AWS_ACCESS_KEY_ID": srv.access, "AWS_SECRET_ACCESS_KEY": srv.secret}[k]
		}
	})
	defer st.Close()
	if err := st.Check(t.Context()); err != nil {
		t.Fatalf("Check with credentials from the environment: %v", err)
	}
	_, err := New(v1.S3Destination{Provider: "other", Endpoint: srv.endpoint, Bucket: srv.bucket}, Options{Getenv: func(string) string { return "" }})
	if err == nil || !drivers.IsPermanent(err) || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("New without credentials: %v", err)
	}
}

// TestSweep: Check aborts multipart uploads under the prefix that are
// older than SweepAge, and leaves the others.
func TestSweep(t *testing.T) {
	srv := sharedServer(t)
	st := srv.open(t, func(_ *v1.S3Destination, o *Options) { o.SweepAge = time.Nanosecond })
	defer st.Close()
	other := srv.open(t, nil)
	defer other.Close()
	ctx := t.Context()
	if _, err := st.core.NewMultipartUpload(ctx, st.bucket, st.prefix+"h/p/s/1/files.tar", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	keep, err := other.core.NewMultipartUpload(ctx, other.bucket, other.prefix+"files.tar", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.core.AbortMultipartUpload(context.WithoutCancel(ctx), other.bucket, other.prefix+"files.tar", keep)
	time.Sleep(1100 * time.Millisecond) // the server stamps uploads to the second
	if err := st.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if u := srv.incompleteUploads(t, st.prefix); len(u) != 0 {
		t.Errorf("uploads left under the prefix: %v", u)
	}
	if u := srv.incompleteUploads(t, other.prefix); len(u) != 1 {
		t.Errorf("uploads of another prefix: %v, want the one left alone", u)
	}
	// With the default age, a fresh upload is left alone.
	fresh := srv.open(t, nil)
	defer fresh.Close()
	if err := fresh.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if u := srv.incompleteUploads(t, other.prefix); len(u) != 1 {
		t.Errorf("a recent upload was swept: %v", u)
	}
}

// TestServerKilledMidUpload: the server dies while parts are in flight. Put
// fails soon; once the server is back, the background cleanup aborts the
// multipart upload before Close returns.
func TestServerKilledMidUpload(t *testing.T) {
	srv := privateServer(t)
	st := srv.open(t, func(s *v1.S3Destination, o *Options) {
		o.PartSize = minPartSize
		s.ParallelUploads = 2
		o.CleanupGrace = time.Minute
	})
	data := randomData(9, 6*minPartSize)
	var once sync.Once
	killed := make(chan struct{})
	r := io.MultiReader(bytes.NewReader(data[:3*minPartSize]), onRead(func() {
		once.Do(func() {
			// Let the first parts arrive, then kill the server.
			waitFor(t, "a part on the server", func() bool { return len(srv.incompleteUploads(t, st.prefix)) > 0 })
			srv.signal(t, syscall.SIGKILL)
			close(killed)
		})
	}), bytes.NewReader(data[3*minPartSize:]))
	_, err := st.Put(t.Context(), "obj", r)
	if err == nil {
		t.Fatal("Put succeeded with the server killed")
	}
	<-killed
	t.Logf("Put: %v", err)
	serverScript(t, "start", srv.dir) // same port, same data
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if u := srv.incompleteUploads(t, st.prefix); len(u) != 0 {
		t.Errorf("multipart uploads left: %v", u)
	}
}

// TestStalledServer: a server that stops answering (SIGSTOP) fails the
// request after the stall timeout instead of hanging the run.
func TestStalledServer(t *testing.T) {
	srv := privateServer(t)
	st := srv.open(t, func(s *v1.S3Destination, o *Options) {
		o.StallTimeout = time.Second
		o.CleanupGrace = time.Second
	})
	defer st.Close()
	if err := st.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.signal(t, syscall.SIGSTOP)
	defer srv.signal(t, syscall.SIGCONT)
	start := time.Now()
	_, err := st.Put(t.Context(), "obj", bytes.NewReader(randomData(1, 1<<20)))
	if !errors.Is(err, errStalled) || !strings.Contains(err.Error(), "no progress for 1s") {
		t.Fatalf("Put: %v; want a stall", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Put took %s to give up", d)
	}
	_, err = st.Stat(t.Context(), "obj")
	if !errors.Is(err, errStalled) {
		t.Errorf("Stat: %v; want a stall", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUserAgentNamesAegis: every request says which program and version
// made it, as the command sets drivers.Agent at start.
func TestUserAgentNamesAegis(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.Header.Get("User-Agent"))
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	defer fake.Close()
	creds := filepath.Join(t.TempDir(), "credentials")
	os.WriteFile(creds, []byte("[default]\naws_access_key_id = AKIATEST\naws_secret_access_key = s3cr3t\n"), 0o600)
	old := drivers.Agent.Version
	drivers.Agent.Version = "9.8.7-test"
	defer func() { drivers.Agent.Version = old }()
	st, err := New(v1.S3Destination{Provider: "other", Endpoint: fake.URL, Bucket: "aegis-test", CredentialsFile: creds}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Stat(t.Context(), "k")
	mu.Lock()
	defer mu.Unlock()
	if len(agents) == 0 || !strings.Contains(agents[0], "aegis-agent/9.8.7-test") {
		t.Fatalf("User-Agent of the requests: %q, want aegis-agent/9.8.7-test in it", agents)
	}
}
