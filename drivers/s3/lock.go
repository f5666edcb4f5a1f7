package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// objectLock is spec.s3.objectLock, resolved: every object the store
// writes is locked in mode for days from the moment it is written.
type objectLock struct {
	mode minio.RetentionMode
	days int
}

func newObjectLock(spec *v1.S3ObjectLock) (*objectLock, error) {
	if spec == nil {
		return nil, nil
	}
	mode := minio.RetentionMode(strings.ToUpper(spec.Mode))
	if !mode.IsValid() || spec.Days < 1 {
		return nil, fmt.Errorf("objectLock: mode must be governance or compliance and days at least 1 (got %q, %d)", spec.Mode, spec.Days)
	}
	return &objectLock{mode: mode, days: spec.Days}, nil
}

// lockUntil is the retain-until date of an object written now. S3 keeps
// it to the second; rounding up never locks for less than asked.
func (s *Store) lockUntil() time.Time {
	t := s.opts.Clock().UTC().Add(time.Duration(s.lock.days) * 24 * time.Hour)
	return t.Truncate(time.Second).Add(time.Second)
}

// lockOptions adds the lock of a new object to opts. S3 wants a checksum
// of the body with a retention header; PUTs send their SHA-256, and
// contentMD5 supplies Content-MD5 as well, which AWS asks for.
func (s *Store) lockOptions(opts minio.PutObjectOptions) minio.PutObjectOptions {
	if s.lock != nil {
		opts.Mode = s.lock.mode
		opts.RetainUntilDate = s.lockUntil()
	}
	return opts
}

// contentMD5 is the Content-MD5 of data when objects are locked, "" else.
func (s *Store) contentMD5(data []byte) string {
	if s.lock == nil {
		return ""
	}
	sum := md5.Sum(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Retain-until header of HEAD: servers send it when the object is locked
// and the caller may read its retention (s3:GetObjectRetention on AWS).
const retainUntilHeader = "X-Amz-Object-Lock-Retain-Until-Date"

// RetainedUntil returns the date before which the object of key cannot be
// deleted or overwritten, read from its HEAD; the zero time when it is not
// locked.
func (s *Store) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	name, err := s.objectName(key)
	if err != nil {
		return time.Time{}, err
	}
	var oi minio.ObjectInfo
	err = s.guard(ctx, func(ctx context.Context) error {
		var err error
		oi, err = s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read the lock of %s: %w", s.where(name), s.classify(err, key))
	}
	v := oi.Metadata.Get(retainUntilHeader)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the lock of %s: retain-until date %q: %w", s.where(name), v, err)
	}
	return t.UTC(), nil
}

// Retain extends the lock of the object of key to until, in the mode of
// spec.s3.objectLock. A lock that already lasts as long is left alone:
// S3 refuses to shorten a compliance lock, and Aegis never tries.
func (s *Store) Retain(ctx context.Context, key string, until time.Time) error {
	name, err := s.objectName(key)
	if err != nil {
		return err
	}
	if s.lock == nil {
		return drivers.Permanent(fmt.Errorf("lock %s: spec.s3.objectLock is not set", s.where(name)))
	}
	cur, err := s.RetainedUntil(ctx, key)
	if err != nil {
		return err
	}
	until = until.UTC().Truncate(time.Second)
	if !until.After(cur) {
		return nil
	}
	mode := s.lock.mode
	err = s.guard(ctx, func(ctx context.Context) error {
		return s.client.PutObjectRetention(ctx, s.bucket, name, minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	})
	if err != nil {
		return fmt.Errorf("lock %s until %s: %w", s.where(name), until.Format(time.RFC3339), s.classify(err, key))
	}
	return nil
}

// checkLock proves that the bucket has Object Lock enabled, which a
// bucket needs before any object in it can be locked.
func (s *Store) checkLock(ctx context.Context) error {
	var enabled string
	err := s.guard(ctx, func(ctx context.Context) error {
		var err error
		enabled, _, _, _, err = s.client.GetObjectLockConfig(ctx, s.bucket)
		return err
	})
	if err != nil && !isCode(err, "ObjectLockConfigurationNotFoundError") {
		return fmt.Errorf("read the Object Lock configuration of bucket %s: %w", s.bucket, s.classify(err, ""))
	}
	if enabled != "Enabled" {
		return drivers.Permanent(fmt.Errorf("spec.s3.objectLock is set but bucket %s at %s does not have Object Lock enabled; enable it on the bucket (docs/security.md) or remove spec.s3.objectLock", s.bucket, s.endpoint.URL()))
	}
	return nil
}

// deleteDenied reports whether a failed delete was refused: an object
// under a lock, or credentials without the right to delete.
func deleteDenied(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && (resp.Code == "AccessDenied" || resp.StatusCode == 403)
}

var _ drivers.Retainer = (*Store)(nil)
