package s3

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/aegis-backup/aegis/drivers"
)

// errStalled is the cause of a request abandoned by the stall watchdog.
var errStalled = errors.New("stalled")

// classify turns an error of the S3 client into one the agent can act on:
// a missing object wraps drivers.ErrNotFound; what retrying cannot fix
// (credentials, a missing bucket, an untrusted certificate, a malformed
// request) is drivers.Permanent, with a hint for the operator; the rest
// (network trouble, 5xx, throttling) stays retryable. key names the object
// asked for, "" when none.
func (s *Store) classify(err error, key string) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errStalled) {
		return err
	}
	// Keep the cause, not the request URL around it.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var cverr *tls.CertificateVerificationError
	if errors.As(err, &cverr) {
		fp := ""
		if len(cverr.UnverifiedCertificates) > 0 {
			sum := sha256.Sum256(cverr.UnverifiedCertificates[0].Raw)
			fp = fmt.Sprintf(" (certificate SHA256 fingerprint %s)", hex.EncodeToString(sum[:]))
		}
		return drivers.Permanent(fmt.Errorf("TLS certificate of %s is not trusted%s: %v; point AWS_CA_BUNDLE at the CA that signed it", s.endpoint.Host, fp, cverr.Err))
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return err
	}
	msg := resp.Error()
	if resp.Code != "" {
		msg = fmt.Sprintf("%s (%s, HTTP %d)", msg, resp.Code, resp.StatusCode)
	} else if resp.StatusCode != 0 {
		msg = fmt.Sprintf("%s (HTTP %d)", msg, resp.StatusCode)
	}
	switch {
	case resp.Code == "NoSuchBucket":
		return drivers.Permanent(fmt.Errorf("bucket %s does not exist at %s: %s", s.bucket, s.endpoint.URL(), msg))
	case resp.Code == "NoSuchKey" || (key != "" && resp.StatusCode == 404 && resp.Code != "NoSuchUpload"):
		return fmt.Errorf("%s: %w", key, drivers.ErrNotFound)
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" ||
		resp.Code == "InvalidToken" || resp.Code == "ExpiredToken" || resp.Code == "InvalidClientTokenId" ||
		resp.StatusCode == 401:
		return drivers.Permanent(fmt.Errorf("%s refused the credentials: %s; check the access key and secret", s.endpoint.URL(), msg))
	case resp.Code == "AccessDenied" || resp.StatusCode == 403:
		return drivers.Permanent(fmt.Errorf("access denied by %s: %s; check that the credentials may read, write, list and delete in bucket %s", s.endpoint.URL(), msg, s.bucket))
	case resp.Code == "RequestTimeTooSkewed":
		return drivers.Permanent(fmt.Errorf("%s: this host's clock is too far from the server's; fix the time (NTP)", msg))
	case resp.Code == "RequestTimeout" || resp.Code == "SlowDown" || resp.Code == "InternalError" ||
		resp.Code == "XAmzContentSHA256Mismatch" || resp.Code == "BadDigest" || resp.Code == "IncompleteBody" ||
		resp.Code == "OperationAborted" || resp.StatusCode == 409 || // a concurrent operation: try again
		resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500:
		return errors.New(msg)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return drivers.Permanent(errors.New(msg))
	}
	return errors.New(msg)
}

// guard runs one request under a watchdog: it is cancelled when it moves
// no data for the stall timeout. The request kicks the watchdog through
// the returned function of kicker as it progresses (see kickReader).
func (s *Store) guard(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.guardKick(ctx, func(ctx context.Context, _ func()) error { return fn(ctx) })
}

func (s *Store) guardKick(ctx context.Context, fn func(ctx context.Context, kick func()) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d := s.opts.StallTimeout
	t := time.AfterFunc(d, func() { cancel(errStalled) })
	defer t.Stop()
	err := fn(ctx, func() { t.Reset(d) })
	if err != nil && context.Cause(ctx) == errStalled {
		return fmt.Errorf("no progress for %s: %w", d, errStalled)
	}
	return err
}

// kickReader kicks a watchdog on every read: the HTTP client reads the
// body as the connection takes it.
type kickReader struct {
	r    io.Reader
	kick func()
}

func (k *kickReader) Read(p []byte) (int, error) {
	k.kick()
	return k.r.Read(p)
}

// stallReader fails a read that waits longer than d for data, by closing
// the body under it.
type stallReader struct {
	rc      io.ReadCloser
	d       time.Duration
	t       *time.Timer
	stalled atomic.Bool
}

func newStallReader(rc io.ReadCloser, d time.Duration) *stallReader {
	r := &stallReader{rc: rc, d: d}
	r.t = time.AfterFunc(time.Hour, func() {
		r.stalled.Store(true)
		rc.Close()
	})
	r.t.Stop()
	return r
}

func (r *stallReader) Read(p []byte) (int, error) {
	r.t.Reset(r.d)
	n, err := r.rc.Read(p)
	r.t.Stop()
	if err != nil && err != io.EOF && r.stalled.Load() {
		err = fmt.Errorf("no data for %s: %w", r.d, errStalled)
	}
	return n, err
}

func (r *stallReader) Close() error {
	r.t.Stop()
	return r.rc.Close()
}
