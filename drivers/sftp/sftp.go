// Package sftp is the destination driver for SSH servers, through
// github.com/pkg/sftp over golang.org/x/crypto/ssh.
//
// The server's host key is always checked against the known_hosts file the
// manifest names: an unknown or changed key is refused, with the key's
// fingerprint in the message. An object is written to a temporary name in
// its directory, synced where the server can (fsync@openssh.com), then
// renamed into place, atomically where the server can
// (posix-rename@openssh.com). Directories are created as needed.
//
// One SSH connection serves every operation (SFTP multiplexes them); a
// connection that breaks is replaced by the next operation. pkg/sftp takes
// no context: when ctx is done the connection is closed, and a connection
// that moves no data for the stall timeout while an operation waits fails.
package sftp

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

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
	// ConnectTimeout bounds connecting and the SSH handshake (default 30s).
	ConnectTimeout time.Duration
	// StallTimeout fails a connection that moves no data for this long
	// while an operation waits on it (default 2m). Keepalives keep an idle
	// connection alive.
	StallTimeout time.Duration
	// SweepAge: Check removes temporary files older than this that crashed
	// runs left (default 24h).
	SweepAge time.Duration
	// CleanupGrace is how long Close waits for cleanups that failed at
	// first, such as removing a temporary file while the server was away
	// (default 30s).
	CleanupGrace time.Duration
}

// Store keeps objects as files below a directory of an SSH server.
type Store struct {
	addr     string // host:port
	user     string
	root     string // clean; relative to the login directory unless absolute
	config   *ssh.ClientConfig
	hostErr  *hostKeyError
	opts     Options
	log      *slog.Logger
	cleanups *retry.Deferred

	mu     sync.Mutex
	cur    *conn
	closed bool
}

// conn is one SSH connection with its SFTP session.
type conn struct {
	raw         net.Conn
	ssh         *ssh.Client
	sftp        *sftp.Client
	done        chan struct{} // closed when the connection is gone
	posixRename bool
	fsync       bool
	statvfs     bool
	closeOnce   sync.Once
	closed      atomic.Bool
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		// The network connection first: closing the SFTP session sends a
		// message, which blocks when the server stopped reading.
		c.raw.Close()
		c.ssh.Close()
		c.sftp.Close()
	})
}

func (c *conn) dead() bool {
	if c.closed.Load() {
		return true
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// New returns a store for spec. It reads the key or password and the
// known_hosts file but does not connect: the first operation does.
func New(spec v1.SFTPDestination, opts Options) (*Store, error) {
	opts.ConnectTimeout = cmp.Or(opts.ConnectTimeout, 30*time.Second)
	opts.StallTimeout = cmp.Or(opts.StallTimeout, 2*time.Minute)
	opts.SweepAge = cmp.Or(opts.SweepAge, 24*time.Hour)
	opts.CleanupGrace = cmp.Or(opts.CleanupGrace, 30*time.Second)
	port := cmp.Or(spec.Port, 22)
	addr := net.JoinHostPort(spec.Host, strconv.Itoa(port))
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("driver", "sftp", "server", addr)
	opts.Retry.Logger = cmp.Or(opts.Retry.Logger, log)

	var auth []ssh.AuthMethod
	if spec.PrivateKeyFile != "" {
		key, err := readSecret(spec.PrivateKeyFile, "private key")
		if err != nil {
			return nil, drivers.Permanent(err)
		}
		signer, err := ssh.ParsePrivateKey(key)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				return nil, drivers.Permanent(fmt.Errorf("private key %s is protected by a passphrase: aegis needs a key without one (keep it mode 0600)", spec.PrivateKeyFile))
			}
			return nil, drivers.Permanent(fmt.Errorf("private key %s: %v", spec.PrivateKeyFile, err))
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if spec.PasswordFile != "" {
		pw, err := readSecret(spec.PasswordFile, "password")
		if err != nil {
			return nil, drivers.Permanent(err)
		}
		password := strings.TrimRight(string(pw), "\r\n")
		auth = append(auth, ssh.Password(password), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = password
					}
				}
				return answers, nil
			}))
	}
	if len(auth) == 0 {
		return nil, drivers.Permanent(errors.New("set privateKeyFile or passwordFile"))
	}
	he := &hostKeyError{}
	cb, algos, err := hostKeyCheck(spec.KnownHostsFile, addr, he)
	if err != nil {
		return nil, drivers.Permanent(err)
	}
	root := path.Clean(spec.Path)
	s := &Store{
		addr: addr,
		user: spec.User,
		root: root,
		config: &ssh.ClientConfig{
			User:              spec.User,
			Auth:              auth,
			HostKeyCallback:   cb,
			HostKeyAlgorithms: algos,
			Timeout:           opts.ConnectTimeout,
		},
		hostErr:  he,
		opts:     opts,
		log:      log,
		cleanups: retry.NewDeferred(opts.Retry, opts.CleanupGrace),
	}
	return s, nil
}

// readSecret reads a key or password file, refusing one that group or
// others may read.
func readSecret(file, what string) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", what, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s file %s is accessible by group or others (mode %04o); chmod 600 it", what, file, perm)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", what, err)
	}
	return b, nil
}

// hostKeyError keeps the host key problem of the last handshake, which the
// SSH library reports only as a handshake failure.
type hostKeyError struct {
	mu  sync.Mutex
	err error
}

func (h *hostKeyError) set(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

func (h *hostKeyError) take() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.err
	h.err = nil
	return err
}

// hostKeyCheck returns a callback that accepts only the keys file lists
// for addr, and the key algorithms to ask the server for: those of the
// listed keys, so that a server with several keys shows one we know.
func hostKeyCheck(file, addr string, he *hostKeyError) (ssh.HostKeyCallback, []string, error) {
	kh, err := knownhosts.New(file)
	if err != nil {
		return nil, nil, fmt.Errorf("known hosts file: %w", err)
	}
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	remote := &net.TCPAddr{IP: net.ParseIP(host), Port: port}

	// Ask the file about a key it cannot hold to learn which it holds.
	probe, _, _ := ed25519.GenerateKey(rand.Reader)
	probeKey, _ := ssh.NewPublicKey(probe)
	var algos []string
	var ke *knownhosts.KeyError
	if err := kh(addr, remote, probeKey); errors.As(err, &ke) {
		seen := map[string]bool{}
		for _, k := range ke.Want {
			for _, a := range algorithmsFor(k.Key.Type()) {
				if !seen[a] {
					seen[a] = true
					algos = append(algos, a)
				}
			}
		}
	}

	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := kh(hostname, remote, key)
		if err == nil {
			return nil
		}
		offered := key.Type() + " " + ssh.FingerprintSHA256(key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			err = fmt.Errorf("host key of %s (%s) is marked revoked in %s:%d; refusing to connect", addr, offered, re.Revoked.Filename, re.Revoked.Line)
		case errors.As(err, &ke) && len(ke.Want) == 0:
			err = fmt.Errorf("host key of %s is unknown: the server offered %s, which %s does not list; refusing to connect. If that is the server's key, add it (ssh-keyscan -p %d %s >> %s) after comparing the fingerprint with the one the server shows (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)",
				addr, offered, file, port, host, file)
		case errors.As(err, &ke):
			w := ke.Want[0]
			err = fmt.Errorf("HOST KEY MISMATCH for %s: the server offered %s, but %s:%d lists %s %s; refusing to connect (the server was reinstalled, or someone is intercepting the connection)",
				addr, offered, w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key))
		default:
			err = fmt.Errorf("check host key of %s: %w", addr, err)
		}
		err = drivers.Permanent(err)
		he.set(err)
		return err
	}
	return cb, algos, nil
}

// algorithmsFor lists the signature algorithms of a host key type.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// where names a remote path for messages.
func (s *Store) where(p string) string {
	return "sftp://" + s.user + "@" + s.addr + "/" + strings.TrimPrefix(p, "/")
}

// connect dials the server, checks its key, logs in and starts SFTP.
func (s *Store) connect(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: s.opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	// The handshake is bounded like the dial; ctx may end it sooner.
	raw.SetDeadline(time.Now().Add(s.opts.ConnectTimeout))
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	nc := &stallConn{Conn: raw}
	sc, chans, reqs, err := ssh.NewClientConn(nc, s.addr, s.config)
	if err != nil {
		stop()
		raw.Close()
		if herr := s.hostErr.take(); herr != nil {
			return nil, herr
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, drivers.Permanent(fmt.Errorf("login to %s as %s failed: %v; check the key or password, and that the server accepts it for this user", s.addr, s.user, err))
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", s.addr, err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	raw.SetDeadline(time.Time{})
	nc.timeout.Store(int64(s.opts.StallTimeout))
	fail := func(err error) (*conn, error) {
		stop()
		client.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	sf, err := sftp.NewClient(client,
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(64),
	)
	if err != nil {
		return fail(fmt.Errorf("start sftp on %s: %w", s.addr, err))
	}
	if !stop() {
		sf.Close()
		return fail(ctx.Err())
	}
	c := &conn{raw: raw, ssh: client, sftp: sf, done: make(chan struct{})}
	_, c.posixRename = sf.HasExtension("posix-rename@openssh.com")
	_, c.fsync = sf.HasExtension("fsync@openssh.com")
	_, c.statvfs = sf.HasExtension("statvfs@openssh.com")
	go func() {
		client.Wait()
		close(c.done)
	}()
	go s.keepalive(c)
	return c, nil
}

// keepalive asks the server for a sign of life three times per stall
// timeout: an idle connection stays up, and a dead one is noticed.
func (s *Store) keepalive(c *conn) {
	t := time.NewTicker(s.opts.StallTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if _, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil); err != nil {
				c.close()
				return
			}
		}
	}
}

// stallConn fails a read or write that waits longer than timeout (zero:
// no limit) for the network.
type stallConn struct {
	net.Conn
	timeout atomic.Int64
}

func (c *stallConn) Read(p []byte) (int, error) {
	if d := c.timeout.Load(); d > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(time.Duration(d)))
	}
	return c.Conn.Read(p)
}

func (c *stallConn) Write(p []byte) (int, error) {
	if d := c.timeout.Load(); d > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Duration(d)))
	}
	return c.Conn.Write(p)
}

// get returns the live connection, making a new one when there is none.
func (s *Store) get(ctx context.Context) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("destination is closed")
	}
	if s.cur != nil && !s.cur.dead() {
		return s.cur, nil
	}
	if s.cur != nil {
		s.cur.close()
		s.cur = nil
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.cur = c
	return c, nil
}

// do runs fn on the live connection. When ctx is done before fn returns,
// the connection is closed to stop fn, and the error is ctx's.
func (s *Store) do(ctx context.Context, fn func(c *conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, c.close)
	err = fn(c)
	if !stop() {
		return fmt.Errorf("%w (connection closed)", ctx.Err())
	}
	if err != nil && isConnError(err) {
		c.close()
	}
	return err
}

// isConnError reports whether err means the connection is unusable.
func isConnError(err error) bool {
	var ne net.Error
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

func (s *Store) path(key string) (string, error) {
	if err := drivers.CheckKey(key); err != nil {
		return "", err
	}
	return path.Join(s.root, key), nil
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// classify marks what retrying cannot fix.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sftp.StatusError
	switch {
	case errors.Is(err, fs.ErrPermission):
		return drivers.Permanent(err)
	case errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported:
		return drivers.Permanent(err)
	}
	return err
}

// Put writes r to a temporary file beside the final one, syncs it, checks
// its size and renames it into place.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.do(ctx, func(c *conn) error {
		var err error
		n, err = s.put(ctx, c, p, r)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("upload %s: %w", s.where(p), classify(err))
	}
	return n, nil
}

func (s *Store) put(ctx context.Context, c *conn, p string, r io.Reader) (int64, error) {
	dir := path.Dir(p)
	var f *sftp.File
	var tmp string
	// A concurrent Delete removes directories that look empty, possibly
	// one MkdirAll just made or found; once the temporary file is in, dir
	// stays.
	for attempt := 1; ; attempt++ {
		err := c.sftp.MkdirAll(dir)
		if err == nil {
			tmp = path.Join(dir, tmpPrefix+path.Base(p)+"-"+randomHex(6))
			f, err = c.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		}
		if err == nil {
			break
		}
		if !notExist(err) || attempt == 10 {
			return 0, fmt.Errorf("create %s: %w", tmp, err)
		}
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			s.remove(ctx, tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	n, err := f.ReadFrom(ctxReader{ctx, r})
	if err != nil {
		return n, s.explainWrite(c, dir, err)
	}
	// ctx may be done while the last read blocked: do not commit.
	if err := ctx.Err(); err != nil {
		return n, err
	}
	if c.fsync {
		if err := f.Sync(); err != nil {
			return n, fmt.Errorf("sync %s: %w", tmp, s.explainWrite(c, dir, err))
		}
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close %s: %w", tmp, s.explainWrite(c, dir, err))
	}
	fi, err := c.sftp.Lstat(tmp)
	if err != nil {
		return n, fmt.Errorf("stat %s: %w", tmp, err)
	}
	if fi.Size() != n {
		return n, fmt.Errorf("the server stored %d bytes, %d were sent", fi.Size(), n)
	}
	if c.posixRename {
		err = c.sftp.PosixRename(tmp, p)
	} else {
		// Plain SFTP rename refuses to replace: remove the old object
		// first, leaving a moment without one.
		err = c.sftp.Rename(tmp, p)
		if err != nil {
			if rerr := c.sftp.Remove(p); rerr == nil {
				err = c.sftp.Rename(tmp, p)
			}
		}
	}
	if err != nil {
		return n, fmt.Errorf("rename %s to %s: %w", tmp, p, err)
	}
	committed = true
	return n, nil
}

// explainWrite adds the free space of dir to a write error that SFTP
// reports only as a generic failure, which is what a full disk gives.
func (s *Store) explainWrite(c *conn, dir string, err error) error {
	var se *sftp.StatusError
	if !errors.As(err, &se) || se.FxCode() != sftp.ErrSSHFxFailure || !c.statvfs || c.dead() {
		return err
	}
	st, verr := c.sftp.StatVFS(dir)
	if verr != nil {
		return err
	}
	free := st.FreeSpace()
	if free < 1<<20 {
		return fmt.Errorf("%w: the remote file system is full (%d bytes free in %s)", err, free, dir)
	}
	return fmt.Errorf("%w (%d bytes free in %s)", err, free, dir)
}

// remove removes a temporary file, now or, if the server is away, in the
// background until Close.
func (s *Store) remove(ctx context.Context, p string) {
	s.cleanups.Run(ctx, "remove temporary file "+s.where(p), func(ctx context.Context) error {
		return s.do(ctx, func(c *conn) error {
			if err := c.sftp.Remove(p); err != nil && !notExist(err) {
				return classify(err)
			}
			s.tidy(c, path.Dir(p))
			return nil
		})
	})
}

// Get opens the file of key. Reading it uses concurrent requests when the
// caller copies with io.Copy (WriteTo).
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.open(ctx, key, 0)
}

// GetRange opens the file of key at offset.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := drivers.CheckRange(offset, length); err != nil {
		return nil, err
	}
	rc, err := s.open(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	return drivers.ExactReader(rc, length), nil
}

// open opens the file of key for reading from offset.
func (s *Store) open(ctx context.Context, key string, offset int64) (*reader, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	var rc *reader
	err = s.do(ctx, func(c *conn) error {
		fi, err := c.sftp.Stat(p)
		if notExist(err) || err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
		}
		if err != nil {
			return err
		}
		f, err := c.sftp.Open(p)
		if notExist(err) {
			return fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return err
		}
		rc = &reader{f: f, stop: context.AfterFunc(ctx, c.close)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", s.where(p), classify(err))
	}
	return rc, nil
}

// reader is an open remote file; ctx's end closes its connection.
type reader struct {
	f    *sftp.File
	stop func() bool
}

func (r *reader) Read(p []byte) (int, error) { return r.f.Read(p) }

// WriteTo reads with several requests in flight.
func (r *reader) WriteTo(w io.Writer) (int64, error) { return r.f.WriteTo(w) }

func (r *reader) Close() error {
	r.stop()
	return r.f.Close()
}

// Stat describes the file of key.
func (s *Store) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return drivers.ObjectInfo{}, err
	}
	var info drivers.ObjectInfo
	err = s.do(ctx, func(c *conn) error {
		fi, err := c.sftp.Stat(p)
		if notExist(err) || err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
		}
		if err != nil {
			return err
		}
		info = drivers.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}
		return nil
	})
	if err != nil {
		return drivers.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.where(p), classify(err))
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
		if dir == "" || path.Clean("/"+dir) != "/"+dir {
			return nil, nil
		}
		start = dir
	}
	var out []drivers.ObjectInfo
	err := s.do(ctx, func(c *conn) error {
		out = nil
		return s.walk(ctx, c, start, func(key string, fi os.FileInfo) {
			if strings.HasPrefix(key, prefix) {
				out = append(out, drivers.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
			}
		}, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.where(path.Join(s.root, start)), classify(err))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// walk calls file for every regular file below dir (a key prefix, "" for
// the root) that is not a temporary one, and tmp, if not nil, for every
// temporary one. A directory that vanishes during the walk held nothing.
func (s *Store) walk(ctx context.Context, c *conn, dir string, file, tmp func(key string, fi os.FileInfo)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := c.sftp.ReadDir(path.Join(s.root, dir))
	if notExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, fi := range entries {
		key := fi.Name()
		if dir != "" {
			key = dir + "/" + key
		}
		switch {
		case fi.IsDir():
			if err := s.walk(ctx, c, key, file, tmp); err != nil {
				return err
			}
		case !fi.Mode().IsRegular():
		case strings.HasPrefix(fi.Name(), tmpPrefix):
			if tmp != nil {
				tmp(key, fi)
			}
		default:
			file(key, fi)
		}
	}
	return nil
}

// Delete removes the file of key and the directories it leaves empty. A
// file the server refuses to remove, although it is there, wraps
// drivers.ErrDeleteDenied.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	err = s.do(ctx, func(c *conn) error {
		fi, err := c.sftp.Lstat(p)
		if notExist(err) || err == nil && fi.IsDir() {
			return nil // a directory is a prefix of keys, not an object
		}
		if err != nil {
			return err
		}
		if err := c.sftp.Remove(p); err != nil && !notExist(err) {
			if errors.Is(err, fs.ErrPermission) {
				// The account may write but not delete here (a directory
				// it may not change, or sftp-server -P remove).
				return drivers.Permanent(fmt.Errorf("%w: %v", drivers.ErrDeleteDenied, err))
			}
			return err
		}
		s.tidy(c, path.Dir(p))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", s.where(p), classify(err))
	}
	return nil
}

// tidy removes dir and its parents up to the root while they are empty.
func (s *Store) tidy(c *conn, dir string) {
	for ; dir != s.root && strings.HasPrefix(dir, s.root) && dir != path.Dir(dir); dir = path.Dir(dir) {
		if c.sftp.RemoveDirectory(dir) != nil {
			return
		}
	}
}

// Check connects, creates the root if needed, proves it writable, and
// removes the temporary files crashed runs left (older than SweepAge).
func (s *Store) Check(ctx context.Context) error {
	err := s.do(ctx, func(c *conn) error {
		if err := c.sftp.MkdirAll(s.root); err != nil {
			return fmt.Errorf("create %s: %w", s.root, err)
		}
		probe := path.Join(s.root, tmpPrefix+"check-"+randomHex(6))
		f, err := c.sftp.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("write check in %s: %w", s.root, err)
		}
		_, werr := f.Write([]byte("aegis write check\n"))
		cerr := f.Close()
		rerr := c.sftp.Remove(probe)
		if err := errors.Join(werr, cerr); err != nil {
			return fmt.Errorf("write check in %s: %w", s.root, s.explainWrite(c, s.root, err))
		}
		switch {
		case errors.Is(rerr, fs.ErrPermission):
			// Write-only on purpose (docs/security.md): backups work.
			s.log.Warn("the account may write but not delete: backups work, retention must run with another account", "probe", probe, "err", rerr)
		case rerr != nil:
			return fmt.Errorf("remove write check %s: %w", probe, rerr)
		}
		s.sweep(ctx, c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("check %s: %w", s.where(s.root), classify(err))
	}
	return nil
}

// sweep removes temporary files older than SweepAge: an upload writes to
// its temporary file all along, so an old one belongs to a run that died.
// Failures are logged: they do not make the destination unusable.
func (s *Store) sweep(ctx context.Context, c *conn) {
	cutoff := time.Now().Add(-s.opts.SweepAge)
	var stale []string
	err := s.walk(ctx, c, "", func(string, os.FileInfo) {}, func(key string, fi os.FileInfo) {
		if fi.ModTime().Before(cutoff) {
			stale = append(stale, key)
		}
	})
	if err != nil {
		s.log.Warn("cannot look for leftover temporary files", "root", s.root, "err", err)
		return
	}
	for _, key := range stale {
		p := path.Join(s.root, key)
		if err := c.sftp.Remove(p); err != nil && !notExist(err) {
			s.log.Warn("cannot remove a leftover temporary file", "path", p, "err", err)
			continue
		}
		s.tidy(c, path.Dir(p))
		s.log.Info("removed a leftover temporary file", "path", p)
	}
}

// Close waits for pending cleanups (see Options.CleanupGrace) and closes
// the connection.
func (s *Store) Close() error {
	err := s.cleanups.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.cur != nil {
		s.cur.close()
		s.cur = nil
	}
	return err
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var _ drivers.Destination = (*Store)(nil)
