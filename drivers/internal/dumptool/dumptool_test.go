package dumptool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestObjectName(t *testing.T) {
	for _, tc := range []struct{ db, want string }{
		{"app", "app.sql"},
		{"my-db_2.x", "my-db_2.x.sql"},
		{"_users", "%5Fusers.sql"},
		{".hidden", "%2Ehidden.sql"},
		{"a/b c", "a%2Fb%20c.sql"},
		{"ünï", "%C3%BCn%C3%AF.sql"},
		{"50%", "50%25.sql"},
	} {
		got := ObjectName(tc.db, ".sql")
		if got != tc.want {
			t.Errorf("ObjectName(%q) = %q, want %q", tc.db, got, tc.want)
		}
		back, ok := DatabaseName(got, ".sql")
		if !ok || back != tc.db {
			t.Errorf("DatabaseName(%q) = %q, %v", got, back, ok)
		}
	}
	for _, name := range []string{"_users.sql", "x.pgdump", "bad%2.sql", ".sql"} {
		if db, ok := DatabaseName(name, ".sql"); ok {
			t.Errorf("DatabaseName(%q) = %q, want none", name, db)
		}
	}
}

func TestTail(t *testing.T) {
	var tl Tail
	tl.Write([]byte("first line\n"))
	if tl.String() != "first line\n" {
		t.Errorf("short: %q", tl.String())
	}
	tl.Write(bytes.Repeat([]byte("x"), 10000))
	tl.Write([]byte("\nlast line"))
	s := tl.String()
	if !strings.HasPrefix(s, "first line\n") || !strings.HasSuffix(s, "last line") || len(s) > maxStderr+100 || !strings.Contains(s, "bytes left out") {
		t.Errorf("long: %d bytes, %q...%q", len(s), s[:20], s[len(s)-20:])
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), mode)
		os.Chmod(p, mode)
		return p
	}
	if pw, err := ReadSecret(write("ok", "s3cret\r\n", 0o600)); err != nil || pw != "s3cret" {
		t.Errorf("ok: %q %v", pw, err)
	}
	for _, tc := range []struct{ path, want string }{
		{write("open", "s3cret\n", 0o644), "readable or writable by group or others"},
		{write("empty", "\n", 0o600), "is empty"},
		{write("two", "a\nb\n", 0o600), "more than one line"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		_, err := ReadSecret(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v", tc.path, err)
		}
	}
}

func TestStream(t *testing.T) {
	ctx := context.Background()
	sh := Cmd{Path: "/bin/sh"}
	run := func(script string) Cmd { c := sh; c.Args = []string{"-c", script}; return c }

	var out bytes.Buffer
	n, stderr, err := Stream(ctx, run("echo data; echo note >&2"), &out)
	if err != nil || n != 5 || out.String() != "data\n" || stderr != "note\n" {
		t.Errorf("ok: %d %q %q %v", n, out.String(), stderr, err)
	}
	_, _, err = Stream(ctx, run("echo partial; echo 'pg_dump: error: boom' >&2; exit 1"), &out)
	if err == nil || err.Error() != "sh failed (exit status 1): pg_dump: error: boom" {
		t.Errorf("failure: %v", err)
	}
	// A writer that fails stops the tool at once.
	t0 := time.Now()
	werr := errors.New("destination gone")
	_, _, err = Stream(ctx, run("yes"), failWriter{werr})
	if !errors.Is(err, werr) || time.Since(t0) > 5*time.Second {
		t.Errorf("write failure: %v after %s", err, time.Since(t0))
	}
	// The caller's end stops it too, and says so.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, _, err = Stream(cctx, run("sleep 20"), &out)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancel: %v", err)
	}
	if _, _, err := Output(ctx, run("yes | head -c 100000"), 1000); err == nil || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Errorf("limit: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
