package s3

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/test/testenv"
)

// lockedServer is the shared server with its bucket that has Object Lock
// enabled.
func lockedServer(t *testing.T) server {
	t.Helper()
	srv := sharedServer(t)
	srv.bucket = testenv.Require(t, "S3 server", "AEGIS_TEST_S3_LOCKED_BUCKET")["AEGIS_TEST_S3_LOCKED_BUCKET"]
	return srv
}

// openLocked opens a store on the locked bucket that locks in mode for
// one day from now.
func openLocked(t *testing.T, srv server, mode string, now time.Time) *Store {
	t.Helper()
	st := srv.open(t, func(s *v1.S3Destination, o *Options) {
		s.ObjectLock = &v1.S3ObjectLock{Mode: mode, Days: 1}
		o.PartSize = minPartSize
		o.Clock = func() time.Time { return now }
	})
	t.Cleanup(func() { st.Close() })
	return st
}

func getBytes(t *testing.T, d drivers.Destination, key string) []byte {
	t.Helper()
	rc, err := d.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// TestObjectLock checks, against versitygw, that every object the driver
// writes (one PUT or multipart) carries the lock, and that the server then
// refuses to delete or overwrite it.
func TestObjectLock(t *testing.T) {
	srv := lockedServer(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	want := now.Add(24*time.Hour + time.Second)
	st := openLocked(t, srv, "compliance", now)
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check on a bucket with Object Lock: %v", err)
	}
	small, large := []byte("manifest\n"), randomData(7, 2*minPartSize+100)
	for key, data := range map[string][]byte{"h/p/s/id/manifest.json": small, "h/p/s/id/files.tar.zst": large} {
		if _, err := st.Put(ctx, key, bytes.NewReader(data)); err != nil {
			t.Fatalf("Put %s: %v", key, err)
		}
		got, err := st.RetainedUntil(ctx, key)
		if err != nil || !got.Equal(want) {
			t.Errorf("RetainedUntil(%s) = %v, %v; want %v", key, got, err, want)
		}
		err = st.Delete(ctx, key)
		if !errors.Is(err, drivers.ErrDeleteDenied) || !drivers.IsPermanent(err) {
			t.Errorf("Delete of a locked object: %v; want a permanent ErrDeleteDenied", err)
		}
		if _, err := st.Put(ctx, key, strings.NewReader("overwritten")); err == nil {
			t.Errorf("Put over a locked object succeeded")
		}
		if !bytes.Equal(getBytes(t, st, key), data) {
			t.Errorf("%s changed under its lock", key)
		}
	}
	key := "h/p/s/id/manifest.json"
	if err := st.Retain(ctx, key, want.Add(48*time.Hour)); err != nil {
		t.Fatalf("Retain (extend): %v", err)
	}
	if err := st.Retain(ctx, key, want); err != nil {
		t.Fatalf("Retain (shorter than the lock): %v", err)
	}
	if got, _ := st.RetainedUntil(ctx, key); !got.Equal(want.Add(48 * time.Hour)) {
		t.Errorf("after extending and a shorter Retain: until %v, want %v", got, want.Add(48*time.Hour))
	}
	// Even the root account cannot bypass a compliance lock.
	err := srv.admin(t).RemoveObject(ctx, srv.bucket, st.prefix+key, minio.RemoveObjectOptions{GovernanceBypass: true})
	if err == nil {
		t.Errorf("versitygw deleted a compliance-locked object with the governance bypass")
	}
}

// TestObjectLockGovernance: a governance lock is set and refuses a plain
// delete; the bucket owner may still bypass it, which is what governance
// means.
func TestObjectLockGovernance(t *testing.T) {
	srv := lockedServer(t)
	ctx := t.Context()
	st := openLocked(t, srv, "governance", time.Now())
	key := "h/p/s/id/data"
	if _, err := st.Put(ctx, key, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, key); !errors.Is(err, drivers.ErrDeleteDenied) {
		t.Errorf("Delete of a governance-locked object: %v; want ErrDeleteDenied", err)
	}
	err := srv.admin(t).RemoveObject(ctx, srv.bucket, st.prefix+key, minio.RemoveObjectOptions{GovernanceBypass: true})
	if err != nil {
		t.Errorf("the owner's governance bypass: %v", err)
	}
}

func TestObjectLockNotEnabled(t *testing.T) {
	srv := sharedServer(t)
	st := openLocked(t, srv, "governance", time.Now())
	err := st.Check(t.Context())
	want := "spec.s3.objectLock is set but bucket " + srv.bucket + " at " + srv.endpoint + " does not have Object Lock enabled; enable it on the bucket (docs/security.md) or remove spec.s3.objectLock"
	if err == nil || err.Error() != want || !drivers.IsPermanent(err) {
		t.Errorf("Check: %v\nwant the permanent error %q", err, want)
	}
}

func TestObjectLockUnlocked(t *testing.T) {
	srv := sharedServer(t)
	st := srv.open(t, nil)
	defer st.Close()
	ctx := t.Context()
	if _, err := st.Put(ctx, "k", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.RetainedUntil(ctx, "k"); err != nil || !got.IsZero() {
		t.Errorf("RetainedUntil of an unlocked object = %v, %v; want the zero time", got, err)
	}
	if _, err := st.RetainedUntil(ctx, "missing"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("RetainedUntil of a missing key: %v; want ErrNotFound", err)
	}
	err := st.Retain(ctx, "k", time.Now().Add(time.Hour))
	if want := "lock s3://" + srv.bucket + "/" + st.prefix + "k: spec.s3.objectLock is not set"; err == nil || err.Error() != want {
		t.Errorf("Retain without objectLock: %v; want %q", err, want)
	}
	if err := st.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete of an unlocked object: %v", err)
	}
}

// TestWriteOnlyCredentials: an account whose bucket policy lets it do all
// but delete (versitygw's IAM and bucket policy) passes Check, uploads with
// one PUT and in parts, and gets ErrDeleteDenied from Delete, the object
// left whole.
func TestWriteOnlyCredentials(t *testing.T) {
	srv := sharedServer(t)
	env := testenv.Require(t, "S3 server", "AEGIS_TEST_S3_WRITE_ONLY_BUCKET", "AEGIS_TEST_S3_WRITE_ONLY_CREDENTIALS_FILE")
	st := srv.open(t, func(s *v1.S3Destination, o *Options) {
		s.Bucket, s.CredentialsFile = env["AEGIS_TEST_S3_WRITE_ONLY_BUCKET"], env["AEGIS_TEST_S3_WRITE_ONLY_CREDENTIALS_FILE"]
		o.PartSize = minPartSize
	})
	defer st.Close()
	ctx := t.Context()
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check with write-only credentials: %v", err)
	}
	for key, data := range map[string][]byte{"h/p/s/id/manifest.json": []byte("m\n"), "h/p/s/id/data": randomData(3, minPartSize+10)} {
		if _, err := st.Put(ctx, key, bytes.NewReader(data)); err != nil {
			t.Fatalf("Put %s: %v", key, err)
		}
		err := st.Delete(ctx, key)
		if !errors.Is(err, drivers.ErrDeleteDenied) || !drivers.IsPermanent(err) {
			t.Errorf("Delete with write-only credentials: %v; want a permanent ErrDeleteDenied", err)
		}
		if !bytes.Equal(getBytes(t, st, key), data) {
			t.Errorf("%s changed after a refused Delete", key)
		}
	}
}
