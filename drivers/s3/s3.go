// Package s3 is the destination driver for Amazon S3 and the S3-compatible
// services (Backblaze B2, Google Cloud Storage, Wasabi, DigitalOcean Spaces,
// MinIO and others), through github.com/minio/minio-go/v7.
//
// Objects are uploaded with one PUT when they fit in one part, and as
// multipart uploads streamed from the pipe otherwise, several parts in
// flight at once. S3 makes an object visible only when its upload completes,
// so no temporary names are needed; a failed or abandoned multipart upload
// is aborted, and Check aborts the ones a crash left behind.
package s3

import (
	"bytes"
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
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/retry"
)

// tmpPrefix starts the names of uploads in progress.
const tmpPrefix = drivers.TempPrefix

// Defaults for the upload and its limits. With 8 MiB parts, 4 in flight,
// an upload holds 40 MiB (docs/destinations.md, "Memory"): a backup to S3
// peaked at 135-145 MiB RSS against 88-94 MiB to a local disk, at least as
// fast as with 16 MiB parts (which peaked at 162-181 MiB).
const (
	DefaultPartSize        = 8 << 20
	DefaultParallelUploads = 4
	minPartSize            = 5 << 20
	maxPartSize            = 5 << 30
	maxParts               = 10000
)

// Options tune a Store; the zero value is the production setting.
type Options struct {
	Logger *slog.Logger
	// Getenv reads the environment (AWS_ACCESS_KEY_ID, AWS_CA_BUNDLE ...);
	// default os.Getenv.
	Getenv func(string) string
	// Retry is how the driver retries the requests it may repeat (an
	// upload's parts, which it holds in memory).
	Retry retry.Policy
	// ConnectTimeout bounds connecting and the TLS handshake (default 30s).
	ConnectTimeout time.Duration
	// StallTimeout abandons a request that moves no data for this long
	// (default 2m).
	StallTimeout time.Duration
	// SweepAge: Check aborts multipart uploads under the prefix started
	// longer ago than this (default 24h), what crashed runs left behind.
	SweepAge time.Duration
	// CleanupGrace is how long Close waits for cleanups that failed at
	// first, such as aborting an upload while the server was away
	// (default 30s).
	CleanupGrace time.Duration
	// Clock dates the locks of new objects (default time.Now).
	Clock func() time.Time
	// PartSize overrides spec.partSizeMiB (tests use the minimum, 5 MiB,
	// or less against servers that allow it).
	PartSize int64
}

// withDefaults fills in the zero fields of o with their defaults.
func (o Options) withDefaults() Options {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	o.ConnectTimeout = cmp.Or(o.ConnectTimeout, 30*time.Second)
	o.StallTimeout = cmp.Or(o.StallTimeout, 2*time.Minute)
	o.SweepAge = cmp.Or(o.SweepAge, 24*time.Hour)
	o.CleanupGrace = cmp.Or(o.CleanupGrace, 30*time.Second)
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Store keeps objects in a bucket, below an optional prefix.
type Store struct {
	client    *minio.Client
	core      *minio.Core
	transport *http.Transport
	endpoint  Endpoint
	bucket    string
	prefix    string // "" or ending in "/"
	class     string
	partSize  int64
	parallel  int
	opts      Options
	log       *slog.Logger
	cleanups  *retry.Deferred
	bufs      *bufPool
	closed    atomic.Bool
	lock      *objectLock // nil: objects are not locked
}

// New returns a store for spec. It reads the credentials but does not
// connect: the first request does.
func New(spec v1.S3Destination, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("driver", "s3", "bucket", spec.Bucket)
	opts.Retry.Logger = cmp.Or(opts.Retry.Logger, log)

	e, err := ResolveEndpoint(spec)
	if err != nil {
		return nil, drivers.Permanent(err)
	}
	if spec.InsecureSkipVerify && spec.Endpoint == "" {
		return nil, drivers.Permanent(errors.New("insecureSkipVerify needs an explicit spec.s3.endpoint: certificates of a provider's own endpoint are always verified"))
	}
	lock, err := newObjectLock(spec.ObjectLock)
	if err != nil {
		return nil, drivers.Permanent(err)
	}
	creds, err := loadCredentials(spec.CredentialsFile, opts.Getenv)
	if err != nil {
		return nil, drivers.Permanent(err)
	}
	tlsCfg, err := tlsConfig(e, spec.InsecureSkipVerify, opts.Getenv)
	if err != nil {
		return nil, drivers.Permanent(err)
	}
	if spec.InsecureSkipVerify && e.Secure {
		log.Warn("TLS certificate checks are off for this endpoint (spec.s3.insecureSkipVerify)", "endpoint", e.URL())
	}
	tr := newTransport(opts, tlsCfg)
	lookup := minio.BucketLookupDNS
	if e.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(e.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, creds.SessionToken),
		Secure:       e.Secure,
		Transport:    tr,
		Region:       e.Region,
		BucketLookup: lookup,
		// One layer of retries, ours: the decorator for idempotent
		// operations, the uploader for the parts it holds.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, drivers.Permanent(fmt.Errorf("s3 client for %s: %w", e.URL(), err))
	}
	client.SetAppInfo(drivers.Agent.Name, drivers.Agent.Version)
	s := &Store{
		client:    client,
		core:      &minio.Core{Client: client},
		transport: tr,
		endpoint:  e,
		bucket:    spec.Bucket,
		class:     spec.StorageClass,
		parallel:  cmp.Or(spec.ParallelUploads, DefaultParallelUploads),
		opts:      opts,
		log:       log,
		cleanups:  retry.NewDeferred(opts.Retry, opts.CleanupGrace),
		lock:      lock,
	}
	s.partSize = int64(spec.PartSizeMiB) << 20
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if opts.PartSize > 0 {
		s.partSize = opts.PartSize
	}
	s.bufs = newBufPool(s.parallel + 1)
	if p := strings.Trim(spec.Prefix, "/"); p != "" {
		if path.Clean("/"+p) != "/"+p {
			return nil, drivers.Permanent(fmt.Errorf("prefix %q is not a clean path", spec.Prefix))
		}
		s.prefix = p + "/"
	}
	return s, nil
}

// newTransport is the HTTP transport of a store: its timeouts come from
// opts, and large buffers suit large uploads.
func newTransport(opts Options, tlsCfg *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   opts.ConnectTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.StallTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
	}
}

// tlsConfig is nil for plain HTTP; for HTTPS it trusts the system's CAs
// plus those in AWS_CA_BUNDLE, which a plain-HTTP endpoint ignores.
func tlsConfig(e Endpoint, skipVerify bool, getenv func(string) string) (*tls.Config, error) {
	if !e.Secure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	if bundle := getenv("AWS_CA_BUNDLE"); bundle != "" {
		pem, err := os.ReadFile(bundle)
		if err != nil {
			return nil, fmt.Errorf("AWS_CA_BUNDLE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("AWS_CA_BUNDLE %s holds no PEM certificate", bundle)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// where names an object for messages.
func (s *Store) where(name string) string {
	return "s3://" + s.bucket + "/" + name
}

// listable reports whether prefix can match a valid key: every element
// before its last slash must be a valid name.
func listable(prefix string) bool {
	i := strings.LastIndex(prefix, "/")
	if i < 0 {
		return true
	}
	dir := prefix[:i]
	return path.Clean("/"+dir) == "/"+dir && dir != ""
}

func (s *Store) objectName(key string) (string, error) {
	if err := drivers.CheckKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Get opens the object of key. The body is read with a watchdog: a read
// that waits longer than the stall timeout fails.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	name, err := s.objectName(key)
	if err != nil {
		return nil, err
	}
	body, _, _, err := s.core.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", s.where(name), s.classify(err, key))
	}
	return newStallReader(body, s.opts.StallTimeout), nil
}

// GetRange opens length bytes of the object of key from offset, with one
// ranged GET read under the same watchdog as Get's.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	name, err := s.objectName(key)
	if err != nil {
		return nil, err
	}
	if err := drivers.CheckRange(offset, length); err != nil {
		return nil, err
	}
	if length == 0 {
		// HTTP cannot ask for no bytes: the object only has to exist.
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return http.NoBody, nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(offset, offset+length-1); err != nil {
		return nil, drivers.Permanent(fmt.Errorf("download %s: %w", s.where(name), err))
	}
	body, _, _, err := s.core.GetObject(ctx, s.bucket, name, opts)
	if isCode(err, "InvalidRange") {
		// The range starts at or past the end of an object that exists (a
		// missing one is NoSuchKey): none of its bytes are there.
		return drivers.ExactReader(http.NoBody, length), nil
	}
	if err != nil {
		return nil, fmt.Errorf("download %s bytes %d-%d: %w", s.where(name), offset, offset+length-1, s.classify(err, key))
	}
	return drivers.ExactReader(newStallReader(body, s.opts.StallTimeout), length), nil
}

// Stat describes the object of key.
func (s *Store) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	name, err := s.objectName(key)
	if err != nil {
		return drivers.ObjectInfo{}, err
	}
	var oi minio.ObjectInfo
	err = s.guard(ctx, func(ctx context.Context) error {
		var err error
		oi, err = s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return drivers.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.where(name), s.classify(err, key))
	}
	return drivers.ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List lists the objects whose keys start with prefix. Keys that are not
// valid keys (folder markers such as "a/", Check's probe) are left out.
func (s *Store) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	if !listable(prefix) {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine on an early return
	var out []drivers.ObjectInfo
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("list %s: %w", s.where(s.prefix+prefix), s.classify(oi.Err, ""))
		}
		key, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || drivers.CheckKey(key) != nil {
			continue
		}
		out = append(out, drivers.ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the object of key; a missing one is not an error. A
// deletion the server refuses (an object under a lock, credentials that
// may not delete) wraps drivers.ErrDeleteDenied.
//
// With spec.s3.objectLock the bucket keeps versions: a plain DELETE would
// only hide the object behind a delete marker, keeping its data (and its
// cost), so Delete removes the current version itself.
func (s *Store) Delete(ctx context.Context, key string) error {
	name, err := s.objectName(key)
	if err != nil {
		return err
	}
	var opts minio.RemoveObjectOptions
	err = s.guard(ctx, func(ctx context.Context) error {
		if s.lock != nil {
			oi, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
			if err != nil {
				return err
			}
			opts.VersionID = oi.VersionID
		}
		return s.client.RemoveObject(ctx, s.bucket, name, opts)
	})
	switch {
	case err == nil:
		return nil
	case deleteDenied(err):
		var resp minio.ErrorResponse
		errors.As(err, &resp)
		return drivers.Permanent(fmt.Errorf("delete %s: %w: %s (%s, HTTP %d)", s.where(name), drivers.ErrDeleteDenied, resp.Message, resp.Code, resp.StatusCode))
	}
	if err = s.classify(err, key); errors.Is(err, drivers.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("delete %s: %w", s.where(name), err)
}

// Check proves the bucket exists (with Object Lock enabled when
// spec.s3.objectLock is set) and the credentials may write below the
// prefix, then aborts the multipart uploads crashed runs left.
func (s *Store) Check(ctx context.Context) error {
	var ok bool
	err := s.guard(ctx, func(ctx context.Context) error {
		var err error
		ok, err = s.client.BucketExists(ctx, s.bucket)
		return err
	})
	if err != nil {
		return fmt.Errorf("check bucket %s at %s: %w", s.bucket, s.endpoint.URL(), s.classify(err, ""))
	}
	if !ok {
		return drivers.Permanent(fmt.Errorf("bucket %s does not exist at %s", s.bucket, s.endpoint.URL()))
	}
	if s.lock != nil {
		if err := s.checkLock(ctx); err != nil {
			return err
		}
	}
	probe := s.prefix + tmpPrefix + "check-" + randomHex(8)
	body := []byte("aegis write check\n")
	sum := sha256.Sum256(body)
	var version string
	err = s.guard(ctx, func(ctx context.Context) error {
		// The probe is not locked, so it can go again.
		info, err := s.core.PutObject(ctx, s.bucket, probe, bytes.NewReader(body), int64(len(body)), "", hex.EncodeToString(sum[:]),
			minio.PutObjectOptions{DisableContentSha256: true, StorageClass: s.class})
		version = info.VersionID
		return err
	})
	if err != nil {
		return fmt.Errorf("write check %s: %w", s.where(probe), s.classify(err, ""))
	}
	err = s.guard(ctx, func(ctx context.Context) error {
		return s.client.RemoveObject(ctx, s.bucket, probe, minio.RemoveObjectOptions{VersionID: version})
	})
	switch {
	case deleteDenied(err):
		// Write-only credentials: backups work; deleting old snapshots
		// is for other credentials (docs/security.md).
		s.log.Warn("the credentials may write but not delete: backups work, retention must run with other credentials", "probe", s.where(probe), "err", err)
	case err != nil:
		return fmt.Errorf("delete check %s: %w", s.where(probe), s.classify(err, ""))
	}
	s.sweep(ctx)
	return nil
}

// sweep aborts multipart uploads under the prefix that were started longer
// ago than SweepAge: a run killed before it could abort them left them, and
// their parts cost money. A failure is logged, not returned: it does not
// make the destination unusable.
func (s *Store) sweep(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cutoff := time.Now().Add(-s.opts.SweepAge)
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			s.log.Warn("cannot list unfinished multipart uploads", "prefix", s.prefix, "err", s.classify(u.Err, ""))
			return
		}
		if u.Initiated.IsZero() || u.Initiated.After(cutoff) {
			continue
		}
		err := s.guard(ctx, func(ctx context.Context) error {
			return s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID)
		})
		if err != nil {
			s.log.Warn("cannot abort an abandoned multipart upload", "key", u.Key, "upload_id", u.UploadID, "err", s.classify(err, ""))
			continue
		}
		s.log.Info("aborted an abandoned multipart upload", "key", u.Key, "upload_id", u.UploadID, "initiated", u.Initiated)
	}
}

// Close waits for pending cleanups (see Options.CleanupGrace) and closes
// idle connections.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.cleanups.Close()
	s.transport.CloseIdleConnections()
	s.bufs.drain()
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var _ drivers.Destination = (*Store)(nil)
