// Package dumptool runs the command-line tools of database servers
// (pg_dump, psql, mariadb-dump, mariadb, ...) for the database drivers: it
// streams a tool's output into a data object, and turns a failure into an
// error that carries the tool's own words, bounded.
//
// Secrets never go on a command line: callers pass them in the environment
// (libpq's PGPASSWORD) or in a defaults file of mode 0600.
package dumptool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxStderr bounds what is kept of a tool's standard error: its first and
// its last half, which hold the connection error and the final complaint.
const maxStderr = 4 << 10

// copyBuf is the size of the reads from a tool's output.
const copyBuf = 1 << 20

// pipeSize asks the kernel for a larger pipe than the default 64 KiB, so a
// fast dump tool is not woken up for every 64 KiB the pipeline takes.
const pipeSize = 1 << 20

// Cmd is one run of a tool.
type Cmd struct {
	// Path is the tool, as found by Find.
	Path string
	Args []string
	// Env is added to the agent's environment.
	Env []string
	// Stdin, when set, is the tool's standard input.
	Stdin io.Reader
	// Dir is the working directory; empty means the agent's.
	Dir string
}

// Name is the tool's base name, for messages.
func (c Cmd) Name() string { return filepath.Base(c.Path) }

func (c Cmd) command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = c.Stdin
	cmd.Dir = c.Dir
	// A process group of its own, killed whole when the tool must stop:
	// a child it started would otherwise hold its pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Find returns the path of the first of names found on PATH.
func Find(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	if len(names) == 1 {
		return "", fmt.Errorf("%s not found on PATH", names[0])
	}
	return "", fmt.Errorf("none of %s found on PATH", strings.Join(names, ", "))
}

// Stream runs c and copies its standard output to w, returning the bytes
// copied and what the tool said on standard error (bounded) when it
// succeeded. A failure of the tool gives an error with the tool's own
// words; a failure to write to w stops the tool and is returned wrapped; the
// end of ctx stops the tool and returns ctx.Err().
func Stream(ctx context.Context, c Cmd, w io.Writer) (int64, string, error) {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := c.command(ctx)
	var stderr Tail
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, "", err
	}
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start %s: %w", c.Name(), err)
	}
	if f, ok := stdout.(*os.File); ok {
		_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	}
	n, copyErr := copyOut(w, stdout)
	if copyErr != nil {
		cancel() // the tool would block on a pipe nobody reads
	}
	waitErr := cmd.Wait()
	switch {
	case copyErr != nil && !errors.Is(copyErr, errRead):
		return n, "", copyErr
	case waitErr != nil && parent.Err() != nil:
		// Killed because the caller gave up, not failed on its own.
		return n, "", parent.Err()
	case waitErr != nil:
		return n, "", Failure(c.Name(), waitErr, stderr.String())
	case copyErr != nil:
		return n, "", fmt.Errorf("read output of %s: %w", c.Name(), copyErr)
	}
	return n, stderr.String(), nil
}

// errRead marks a failure to read the tool's output, as opposed to a
// failure to write it on.
var errRead = errors.New("read")

func copyOut(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, copyBuf)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			k, werr := w.Write(buf[:m])
			n += int64(k)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("%w: %w", errRead, rerr)
		}
	}
}

// Output runs c and returns its standard output, of at most limit bytes
// (more is an error), and what it said on standard error.
func Output(ctx context.Context, c Cmd, limit int64) ([]byte, string, error) {
	var out bytes.Buffer
	lw := &limitWriter{w: &out, n: limit}
	_, stderr, err := Stream(ctx, c, lw)
	if errors.Is(err, errTooMuch) {
		return nil, "", fmt.Errorf("%s: output larger than %d bytes", c.Name(), limit)
	}
	return out.Bytes(), stderr, err
}

var errTooMuch = errors.New("output too large")

type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errTooMuch
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// Run runs c with its standard output discarded, and returns what it said
// on standard error.
func Run(ctx context.Context, c Cmd) (string, error) {
	_, stderr, err := Stream(ctx, c, io.Discard)
	return stderr, err
}

// Failure is the error of a tool that failed: its name, how it ended, and
// its own words.
func Failure(tool string, err error, stderr string) error {
	how := err.Error()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		how = ee.ProcessState.String() // "exit status 1", "signal: killed"
	}
	msg := strings.TrimSpace(stderr)
	if msg == "" {
		return fmt.Errorf("%s failed (%s) without a message", tool, how)
	}
	return fmt.Errorf("%s failed (%s): %s", tool, how, msg)
}

// Tail keeps the first and the last maxStderr/2 bytes written to it.
type Tail struct {
	head    []byte
	tail    []byte
	dropped int64
}

func (t *Tail) Write(p []byte) (int, error) {
	n := len(p)
	const half = maxStderr / 2
	if room := half - len(t.head); room > 0 {
		k := min(room, len(p))
		t.head = append(t.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	t.tail = append(t.tail, p...)
	if over := len(t.tail) - half; over > 0 {
		t.dropped += int64(over)
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return n, nil
}

// String returns what was kept, marking what was left out.
func (t *Tail) String() string {
	if t.dropped == 0 {
		return string(t.head) + string(t.tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes left out ...]\n%s", t.head, t.dropped, t.tail)
}

// Lines splits a tool's standard error into trimmed, non-empty lines, for
// warnings.
func Lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// ReadSecret reads a password file: a regular file that neither group nor
// others may read or write. Trailing line breaks are not part of the
// password. The error never holds the file's content.
func ReadSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("password file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o066 != 0 {
		return "", fmt.Errorf("password file %s is readable or writable by group or others (mode %04o); chmod 600 it", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	if strings.ContainsAny(pw, "\n\x00") {
		return "", fmt.Errorf("password file %s holds more than one line", path)
	}
	return pw, nil
}

// ObjectName turns a database name into the name of its data object: the
// characters A-Z a-z 0-9 . _ - stay as they are, every other byte (and a
// leading "." or "_", so that names of the driver's own objects, which
// start with "_", never clash) is written %XX, then ext is added.
// DatabaseName undoes it.
func ObjectName(db, ext string) string {
	var b strings.Builder
	for i := 0; i < len(db); i++ {
		c := db[i]
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' ||
			(c == '.' || c == '_') && i > 0
		if safe {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String() + ext
}

// DatabaseName returns the database name of an object named by ObjectName
// with extension ext, or false when name is not such an object.
func DatabaseName(name, ext string) (string, bool) {
	base, ok := strings.CutSuffix(name, ext)
	if !ok || base == "" || strings.HasPrefix(base, "_") {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(base); i++ {
		c := base[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(base) {
			return "", false
		}
		var v byte
		if _, err := fmt.Sscanf(base[i+1:i+3], "%02X", &v); err != nil {
			return "", false
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), true
}

// Abort ends an object whose data cannot be trusted: with CloseWithError
// when the writer has it, so that the upload is dropped, else with Close
// (the caller then rolls the snapshot back).
func Abort(w io.WriteCloser, err error) {
	if cw, ok := w.(interface{ CloseWithError(error) error }); ok {
		_ = cw.CloseWithError(err)
		return
	}
	_ = w.Close()
}
