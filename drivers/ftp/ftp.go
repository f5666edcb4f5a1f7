// Package ftp is the destination driver for FTP and FTPS servers, through
// github.com/jlaffaye/ftp: plain FTP, explicit TLS (AUTH TLS) and implicit
// TLS, always in passive mode. TLS certificates are verified against the
// system's CAs, or against spec.ftp.caFile when it is set.
//
// An object is uploaded to a temporary name in its directory, its size
// checked, then renamed into place (atomic on servers that rename with
// rename(2), as vsftpd and proftpd do). Directories are created as needed.
//
// FTP runs one transfer per control connection, so the store keeps a small
// pool of connections; one that breaks is dropped and the next operation
// dials a new one. jlaffaye/ftp takes no context: when ctx is done the
// connection is closed, and a connection (control or data) that moves no
// data for the stall timeout while an operation waits fails.
package ftp

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jlaffaye/ftp"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/retry"
)

// tmpPrefix starts the names of uploads in progress.
const tmpPrefix = drivers.TempPrefix

// Options tune a Store; the zero value is the production setting.
type Options struct {
	Logger *slog.Logger
	// Retry is how cleanups that failed are retried (see CleanupGrace).
	Retry retry.Policy
	// ConnectTimeout bounds connecting, the TLS handshake and logging in
	// (default 30s).
	ConnectTimeout time.Duration
	// StallTimeout fails a connection that moves no data for this long
	// while an operation waits on it (default 2m).
	StallTimeout time.Duration
	// SweepAge: Check removes temporary files older than this that crashed
	// runs left (default 24h).
	SweepAge time.Duration
	// CleanupGrace is how long Close waits for cleanups that failed at
	// first (default 30s).
	CleanupGrace time.Duration
	// MaxConns bounds the connections open at once (default 4).
	MaxConns int
}

// Store keeps objects as files below a directory of an FTP server.
type Store struct {
	addr     string
	host     string
	user     string
	password string
	mode     string // none, explicit, implicit
	tls      *tls.Config
	spec     string // the configured path, for messages
	opts     Options
	log      *slog.Logger
	cleanups *retry.Deferred
	slots    chan struct{}

	mu     sync.Mutex
	idle   []*conn
	root   string // absolute, once known
	closed bool
}

// conn is one logged-in control connection.
type conn struct {
	c         *ftp.ServerConn
	ctl       net.Conn
	data      atomic.Pointer[net.Conn] // the data connection in use, if any
	uploading atomic.Bool              // the next data connection carries an upload
	lastUsed  time.Time
	closeOnce sync.Once
	closed    atomic.Bool
}

// close drops the connection at once, without a goodbye: it is called
// when the connection is broken or an operation must stop.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if d := c.data.Load(); d != nil {
			(*d).Close()
		}
		c.ctl.Close()
	})
}

// New returns a store for spec. It reads the password but does not
// connect: the first operation does.
func New(spec v1.FTPDestination, opts Options) (*Store, error) {
	opts.ConnectTimeout = cmp.Or(opts.ConnectTimeout, 30*time.Second)
	opts.StallTimeout = cmp.Or(opts.StallTimeout, 2*time.Minute)
	opts.SweepAge = cmp.Or(opts.SweepAge, 24*time.Hour)
	opts.CleanupGrace = cmp.Or(opts.CleanupGrace, 30*time.Second)
	opts.MaxConns = cmp.Or(opts.MaxConns, 4)
	mode := cmp.Or(spec.TLS, "none")
	port := spec.Port
	if port == 0 {
		port = 21
		if mode == "implicit" {
			port = 990
		}
	}
	addr := net.JoinHostPort(spec.Host, strconv.Itoa(port))
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("driver", "ftp", "server", addr)
	opts.Retry.Logger = cmp.Or(opts.Retry.Logger, log)

	pw, err := readSecret(spec.PasswordFile)
	if err != nil {
		return nil, drivers.Permanent(err)
	}
	s := &Store{
		addr:     addr,
		host:     spec.Host,
		user:     spec.User,
		password: strings.TrimRight(string(pw), "\r\n"),
		mode:     mode,
		spec:     spec.Path,
		opts:     opts,
		log:      log,
		cleanups: retry.NewDeferred(opts.Retry, opts.CleanupGrace),
		slots:    make(chan struct{}, opts.MaxConns),
	}
	switch mode {
	case "none":
		if spec.CAFile != "" {
			return nil, drivers.Permanent(errors.New("caFile is set but tls is none: set tls to explicit or implicit"))
		}
	case "explicit", "implicit":
		s.tls = &tls.Config{
			ServerName: spec.Host,
			MinVersion: tls.VersionTLS12,
			// Servers such as vsftpd (require_ssl_reuse) accept a data
			// connection only if it resumes the control connection's
			// TLS session.
			ClientSessionCache: tls.NewLRUClientSessionCache(16),
		}
		if spec.CAFile != "" {
			pem, err := os.ReadFile(spec.CAFile)
			if err != nil {
				return nil, drivers.Permanent(fmt.Errorf("caFile: %w", err))
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, drivers.Permanent(fmt.Errorf("caFile %s holds no PEM certificate", spec.CAFile))
			}
			s.tls.RootCAs = pool
		}
	default:
		return nil, drivers.Permanent(fmt.Errorf("tls %q: want none, explicit or implicit", spec.TLS))
	}
	if path.IsAbs(spec.Path) {
		s.root = path.Clean(spec.Path)
	}
	return s, nil
}

// readSecret reads the password file, refusing one that group or others
// may read.
func readSecret(file string) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("password file %s is accessible by group or others (mode %04o); chmod 600 it", file, perm)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	return b, nil
}

func (s *Store) scheme() string {
	if s.mode == "none" {
		return "ftp"
	}
	return "ftps"
}

// where names a remote path for messages.
func (s *Store) where(p string) string {
	return s.scheme() + "://" + s.user + "@" + s.addr + "/" + strings.TrimPrefix(p, "/")
}

// dial connects, logs in, and learns the root's absolute path.
func (s *Store) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: s.opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	ctl := &stallConn{Conn: raw}
	ctl.timeout.Store(int64(s.opts.ConnectTimeout))
	c := &conn{ctl: raw}
	stop := context.AfterFunc(ctx, c.close)
	fail := func(err error) (*conn, error) {
		stop()
		c.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.classify(err)
	}
	var first net.Conn = ctl
	if s.mode == "implicit" {
		tc := tls.Client(ctl, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("tls handshake with %s: %w", s.addr, err))
		}
		first = tc
	}
	used := false
	opts := []ftp.DialOption{
		ftp.DialWithShutTimeout(s.opts.StallTimeout),
		// The first call is the control connection, made above; later
		// ones are data connections.
		ftp.DialWithDialFunc(func(network, addr string) (net.Conn, error) {
			if !used {
				used = true
				return first, nil
			}
			return s.dialData(c, addr)
		}),
	}
	switch s.mode {
	case "explicit":
		opts = append(opts, ftp.DialWithExplicitTLS(s.tls))
	case "implicit":
		// Makes Login protect the data connections (PBSZ 0, PROT P).
		opts = append(opts, ftp.DialWithTLS(s.tls))
	}
	fc, err := ftp.Dial(s.addr, opts...)
	if err != nil {
		return fail(fmt.Errorf("greeting from %s: %w", s.addr, err))
	}
	c.c = fc
	if err := fc.Login(s.user, s.password); err != nil {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code == ftp.StatusNotLoggedIn {
			return fail(drivers.Permanent(fmt.Errorf("login to %s as %s failed: %v; check the user and password", s.addr, s.user, err)))
		}
		return fail(fmt.Errorf("login to %s as %s: %w", s.addr, s.user, err))
	}
	if err := s.resolveRoot(fc); err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(ctx.Err())
	}
	ctl.timeout.Store(int64(s.opts.StallTimeout))
	return c, nil
}

// resolveRoot makes a relative spec.ftp.path absolute, from the directory
// the server logs the user into.
func (s *Store) resolveRoot(fc *ftp.ServerConn) error {
	s.mu.Lock()
	known := s.root != ""
	s.mu.Unlock()
	if known {
		return nil
	}
	wd, err := fc.CurrentDir()
	if err != nil {
		return fmt.Errorf("working directory on %s: %w", s.addr, err)
	}
	s.mu.Lock()
	s.root = path.Join(wd, s.spec)
	s.mu.Unlock()
	return nil
}

// dialData opens a data connection for c, with TLS when the control
// connection has it (resuming its session).
func (s *Store) dialData(c *conn, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: s.opts.ConnectTimeout}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: raw, drain: c.uploading.Load()}
	sc.timeout.Store(int64(s.opts.StallTimeout))
	var out net.Conn = sc
	if s.tls != nil {
		out = tls.Client(sc, s.tls)
	}
	c.data.Store(&out)
	if c.closed.Load() {
		raw.Close()
	}
	return out, nil
}

// stallConn fails a read or write that waits longer than timeout for the
// network.
type stallConn struct {
	net.Conn
	timeout atomic.Int64
	// drain: Close shuts the sending side down and reads what the server
	// still sends before closing. Closing a socket with unread data makes
	// the kernel reset the connection, and a server may then discard the
	// end of an upload: over TLS 1.3 the server's session tickets are such
	// data on an upload's data connection (vsftpd answers "426 Failure
	// reading network stream").
	drain bool
	wrote atomic.Bool
}

// drainLimit bounds what Close reads: a download closed early is reset.
const drainLimit = 1 << 20

func (c *stallConn) Close() error {
	// Only a connection that carried data needs it: one the server never
	// used stays open on its side until the next command.
	if tc, ok := c.Conn.(*net.TCPConn); ok && c.drain && c.wrote.Load() {
		tc.CloseWrite()
		tc.SetReadDeadline(time.Now().Add(min(time.Duration(c.timeout.Load()), 10*time.Second)))
		io.CopyN(io.Discard, tc, drainLimit)
	}
	return c.Conn.Close()
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(time.Duration(c.timeout.Load())))
	return c.Conn.Read(p)
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(time.Duration(c.timeout.Load())))
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.wrote.Store(true)
	}
	return n, err
}

// acquire returns a logged-in connection: an idle one that still answers,
// or a new one.
func (s *Store) acquire(ctx context.Context) (*conn, bool, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			<-s.slots
			return nil, false, errors.New("destination is closed")
		}
		var c *conn
		if n := len(s.idle); n > 0 {
			c, s.idle = s.idle[n-1], s.idle[:n-1]
		}
		s.mu.Unlock()
		if c == nil {
			break
		}
		// A server drops idle connections; check one that waited a while.
		if time.Since(c.lastUsed) < 15*time.Second || c.c.NoOp() == nil {
			return c, true, nil
		}
		c.close()
	}
	c, err := s.dial(ctx)
	if err != nil {
		<-s.slots
		return nil, false, err
	}
	return c, false, nil
}

// release returns c to the pool, unless err says it is broken.
func (s *Store) release(c *conn, err error) {
	defer func() { <-s.slots }()
	if c.closed.Load() || (err != nil && !replied(err)) {
		c.close()
		return
	}
	c.data.Store(nil)
	c.lastUsed = time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.close()
		return
	}
	s.idle = append(s.idle, c)
}

// replied reports whether err is the server's reply to a command, after
// which the control connection is still in step.
func replied(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code != ftp.StatusNotAvailable
}

// do runs fn on a connection. When ctx is done before fn returns, the
// connection is closed to stop fn, and the error is ctx's. When a pooled
// connection turns out to be dead before fn got anywhere (fresh reports
// whether fn may run again), fn runs once more on a new connection: the
// reconnect after a dropped control connection.
func (s *Store) do(ctx context.Context, fn func(c *conn) error, again func() bool) error {
	for try := 1; ; try++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, pooled, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, c.close)
		err = fn(c)
		cancelled := !stop()
		s.release(c, err)
		switch {
		case cancelled:
			return fmt.Errorf("%w (connection closed)", ctx.Err())
		case err != nil && pooled && try == 1 && !replied(err) && (again == nil || again()):
			s.log.Debug("pooled connection broken; reconnecting", "err", err)
			continue
		}
		return err
	}
}

// classify marks what retrying cannot fix: a permanent (5xx) reply, or a
// certificate that is not trusted.
func (s *Store) classify(err error) error {
	if err == nil || drivers.IsPermanent(err) {
		return err
	}
	var cverr *tls.CertificateVerificationError
	if errors.As(err, &cverr) {
		fp := ""
		if len(cverr.UnverifiedCertificates) > 0 {
			sum := sha256.Sum256(cverr.UnverifiedCertificates[0].Raw)
			fp = fmt.Sprintf(" (certificate SHA256 fingerprint %s)", hex.EncodeToString(sum[:]))
		}
		return drivers.Permanent(fmt.Errorf("TLS certificate of %s is not trusted%s: %v; set spec.ftp.caFile to the CA that signed it", s.addr, fp, cverr.Err))
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return drivers.Permanent(err)
	}
	return err
}

// checkKey enforces the key rules of the drivers contract, and refuses
// line breaks, which could end an FTP command.
func checkKey(key string) error {
	if strings.ContainsAny(key, "\r\n") {
		return drivers.Permanent(fmt.Errorf("invalid key %q", key))
	}
	return drivers.CheckKey(key)
}

// path returns the absolute remote path of key; the root is known after
// the first connection.
func (s *Store) path(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key == "" {
		return s.root
	}
	return path.Join(s.root, key)
}

func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// mkdirAll makes dir and its parents.
func (s *Store) mkdirAll(c *conn, dir string) error {
	if c.c.ChangeDir(dir) == nil {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	p := ""
	for _, part := range parts {
		p += "/" + part
		_ = c.c.MakeDir(p) // fails when it exists; checked below
	}
	if err := c.c.ChangeDir(dir); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	return nil
}

// countReader counts what was read through it.
type countReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Put uploads r to a temporary file beside the final one, checks its size
// and renames it into place.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	cr := &countReader{ctx: ctx, r: r}
	var p string
	err := s.do(ctx, func(c *conn) error {
		p = s.path(key)
		return s.put(ctx, c, p, cr)
	}, func() bool { return cr.n == 0 })
	if err != nil {
		return cr.n, fmt.Errorf("upload %s: %w", s.where(p), s.classify(err))
	}
	return cr.n, nil
}

func (s *Store) put(ctx context.Context, c *conn, p string, cr *countReader) error {
	dir := path.Dir(p)
	tmp := path.Join(dir, tmpPrefix+path.Base(p)+"-"+randomHex(6))
	var err error
	stored := false
	// A concurrent Delete removes directories that look empty, possibly
	// one mkdirAll just made or found: try again while nothing was read.
	for attempt := 1; ; attempt++ {
		if err = s.mkdirAll(c, dir); err == nil {
			stored = true
			err = s.stor(c, tmp, cr)
		}
		if err == nil || cr.n > 0 || !replied(err) || attempt == 5 {
			break
		}
	}
	if err == nil {
		// The reader may have ended because ctx is done: commit nothing.
		err = ctx.Err()
	}
	if err != nil {
		if stored {
			s.remove(ctx, tmp)
		}
		return err
	}
	size, err := c.c.FileSize(tmp)
	if err == nil && size != cr.n {
		err = fmt.Errorf("the server stored %d bytes, %d were sent", size, cr.n)
	}
	if err == nil {
		err = c.c.Rename(tmp, p)
		if err != nil && replied(err) {
			// Some servers refuse to rename onto an existing file: remove
			// the old object first, leaving a moment without one.
			if c.c.Delete(p) == nil {
				err = c.c.Rename(tmp, p)
			}
		}
	}
	if err != nil {
		s.remove(ctx, tmp)
		return err
	}
	return nil
}

// stor uploads r to p on c.
func (s *Store) stor(c *conn, p string, r io.Reader) error {
	c.uploading.Store(true)
	defer c.uploading.Store(false)
	return c.c.Stor(p, r)
}

// remove deletes a temporary file, now or, if the server is away, in the
// background until Close.
func (s *Store) remove(ctx context.Context, p string) {
	s.cleanups.Run(ctx, "remove temporary file "+s.where(p), func(ctx context.Context) error {
		return s.do(ctx, func(c *conn) error {
			err := c.c.Delete(p)
			if err != nil && code(err) != ftp.StatusFileUnavailable {
				return s.classify(err)
			}
			s.tidy(c, path.Dir(p))
			return nil
		}, nil)
	})
}

// Get opens the file of key.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.retr(ctx, key, 0)
}

// GetRange opens the file of key at offset (REST, then RETR) and reads
// length bytes of it. Closing the reader before the server finished
// sending closes the data connection; the server's reply to that (426) is
// read, so the control connection stays in step and goes back to the pool.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := drivers.CheckRange(offset, length); err != nil {
		return nil, err
	}
	if length == 0 {
		// No transfer for no bytes: the file only has to exist.
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	rc, err := s.retr(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	return drivers.ExactReader(rc, length), nil
}

// retr starts the download of the file of key from offset.
func (s *Store) retr(ctx context.Context, key string, offset int64) (*reader, error) {
	c, _, err := s.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", s.where(key), s.classify(err))
	}
	p := s.path(key)
	stop := context.AfterFunc(ctx, c.close)
	resp, err := c.c.RetrFrom(p, uint64(offset))
	if err != nil {
		if code(err) == ftp.StatusFileUnavailable {
			// Missing, a directory, or unreadable: only the last is an
			// error.
			if _, serr := c.c.FileSize(p); serr != nil {
				err = fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
			}
		}
		cancelled := !stop()
		s.release(c, err)
		if cancelled {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("download %s: %w", s.where(p), s.classify(err))
	}
	return &reader{s: s, c: c, resp: resp, stop: stop}, nil
}

// reader is a download in progress; closing it returns its connection.
type reader struct {
	s    *Store
	c    *conn
	resp *ftp.Response
	stop func() bool
	eof  bool // the server sent the whole file
	once sync.Once
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.resp.Read(p)
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}

// Close ends the transfer. A reader closed before the end aborts it: the
// server then replies that the transfer failed (426), which is the answer
// expected, not an error.
func (r *reader) Close() error {
	var err error
	r.once.Do(func() {
		r.stop()
		err = r.resp.Close()
		if err != nil && !r.eof && replied(err) {
			err = nil
		}
		r.s.release(r.c, err)
	})
	return err
}

// Stat describes the file of key.
func (s *Store) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return drivers.ObjectInfo{}, err
	}
	var info drivers.ObjectInfo
	var p string
	err := s.do(ctx, func(c *conn) error {
		p = s.path(key)
		size, err := c.c.FileSize(p)
		if err != nil {
			return err
		}
		info = drivers.ObjectInfo{Key: key, Size: size}
		if c.c.IsGetTimeSupported() {
			if t, err := c.c.GetTime(p); err == nil {
				info.ModTime = t
			}
		}
		return nil
	}, nil)
	if code(err) == ftp.StatusFileUnavailable {
		return drivers.ObjectInfo{}, fmt.Errorf("stat %s: %s: %w", s.where(p), key, drivers.ErrNotFound)
	}
	if err != nil {
		return drivers.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.where(p), s.classify(err))
	}
	return info, nil
}

// List walks the directory below prefix. A missing root lists nothing.
func (s *Store) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	start := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		// Keys are clean paths: a prefix whose directory part is not
		// matches none, and must not leave the root.
		dir := prefix[:i]
		if dir == "" || path.Clean("/"+dir) != "/"+dir || strings.ContainsAny(dir, "\r\n") {
			return nil, nil
		}
		start = dir
	}
	var out []drivers.ObjectInfo
	err := s.do(ctx, func(c *conn) error {
		out = nil
		if start != "" {
			// LIST of a file lists the file: the prefix's directory must
			// be one.
			if c.c.ChangeDir(s.path(start)) != nil {
				return nil
			}
		}
		return s.walk(ctx, c, start, false, func(key string, e *ftp.Entry) {
			if strings.HasPrefix(key, prefix) {
				out = append(out, drivers.ObjectInfo{Key: key, Size: int64(e.Size), ModTime: e.Time})
			}
		})
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.where(start), s.classify(err))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// walk calls file for every file below dir (a key prefix, "" for the
// root): the temporary ones when temps is set, the others when not. A
// directory that vanishes during the walk held nothing.
func (s *Store) walk(ctx context.Context, c *conn, dir string, temps bool, file func(key string, e *ftp.Entry)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.path(dir)
	if temps {
		// Temporary names start with a dot: ask for hidden files.
		p = "-a " + p
	}
	entries, err := c.c.List(p)
	if code(err) == ftp.StatusFileUnavailable {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\r\n") {
			continue
		}
		key := e.Name
		if dir != "" {
			key = dir + "/" + e.Name
		}
		switch e.Type {
		case ftp.EntryTypeFolder:
			if err := s.walk(ctx, c, key, temps, file); err != nil {
				return err
			}
		case ftp.EntryTypeFile:
			if strings.HasPrefix(e.Name, tmpPrefix) == temps {
				file(key, e)
			}
		}
	}
	return nil
}

// Delete removes the file of key and the directories it leaves empty. A
// file the server refuses to remove, although it is there, wraps
// drivers.ErrDeleteDenied.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	var p string
	err := s.do(ctx, func(c *conn) error {
		p = s.path(key)
		err := c.c.Delete(p)
		if code(err) == ftp.StatusFileUnavailable {
			// Missing or a directory (nothing to do), or not deletable.
			if _, serr := c.c.FileSize(p); serr != nil {
				return nil
			}
			// The file is there: the server refused (no permission in
			// its directory, or DELE denied to the account).
			return drivers.Permanent(fmt.Errorf("%w: %v", drivers.ErrDeleteDenied, err))
		}
		if err != nil {
			return err
		}
		s.tidy(c, path.Dir(p))
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("delete %s: %w", s.where(p), s.classify(err))
	}
	return nil
}

// tidy removes dir and its parents up to the root while they are empty.
func (s *Store) tidy(c *conn, dir string) {
	root := s.path("")
	for ; dir != root && strings.HasPrefix(dir, root+"/"); dir = path.Dir(dir) {
		if c.c.RemoveDir(dir) != nil {
			return
		}
	}
}

// Check connects, creates the root if needed, proves it writable, and
// removes the temporary files crashed runs left (older than SweepAge).
func (s *Store) Check(ctx context.Context) error {
	var root string
	err := s.do(ctx, func(c *conn) error {
		root = s.path("")
		if err := s.mkdirAll(c, root); err != nil {
			return err
		}
		probe := path.Join(root, tmpPrefix+"check-"+randomHex(6))
		if err := s.stor(c, probe, strings.NewReader("aegis write check\n")); err != nil {
			_ = c.c.Delete(probe)
			return fmt.Errorf("write check in %s: %w", root, err)
		}
		switch err := c.c.Delete(probe); {
		case code(err) == ftp.StatusFileUnavailable:
			// The probe is there: the account may write but not delete,
			// on purpose (docs/security.md). Backups work.
			s.log.Warn("the account may write but not delete: backups work, retention must run with another account", "probe", probe, "err", err)
		case err != nil:
			return fmt.Errorf("remove write check %s: %w", probe, err)
		}
		s.sweep(ctx, c)
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("check %s: %w", s.where(root), s.classify(err))
	}
	return nil
}

// sweep removes temporary files older than SweepAge: an upload writes to
// its temporary file all along, so an old one belongs to a run that died.
// Failures are logged: they do not make the destination unusable.
func (s *Store) sweep(ctx context.Context, c *conn) {
	cutoff := time.Now().Add(-s.opts.SweepAge)
	var stale []string
	err := s.walk(ctx, c, "", true, func(key string, e *ftp.Entry) {
		if !e.Time.IsZero() && e.Time.Before(cutoff) {
			stale = append(stale, key)
		}
	})
	if err != nil {
		s.log.Warn("cannot look for leftover temporary files", "root", s.path(""), "err", err)
		return
	}
	for _, key := range stale {
		p := s.path(key)
		if err := c.c.Delete(p); err != nil {
			s.log.Warn("cannot remove a leftover temporary file", "path", p, "err", err)
			continue
		}
		s.tidy(c, path.Dir(p))
		s.log.Info("removed a leftover temporary file", "path", p)
	}
}

// Close waits for pending cleanups (see Options.CleanupGrace) and closes
// the connections.
func (s *Store) Close() error {
	err := s.cleanups.Close()
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, c := range idle {
		c.c.Quit()
		c.close()
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var _ drivers.Destination = (*Store)(nil)
