package retention

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestWithCredentials(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	pass := filepath.Join(dir, "pass")
	os.WriteFile(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n...\n"), 0o600)
	os.WriteFile(pass, []byte("secret\n"), 0o600)
	s3 := &v1.Destination{Metadata: v1.ObjectMeta{Name: "b"}, Spec: v1.DestinationSpec{S3: &v1.S3Destination{Bucket: "x", CredentialsFile: "/etc/aegis/write-only"}}}
	got, err := WithCredentials(s3, key)
	if err != nil || got.Spec.S3.CredentialsFile != key || s3.Spec.S3.CredentialsFile != "/etc/aegis/write-only" || got.Spec.S3.Bucket != "x" {
		t.Errorf("s3: %+v, %v (original now %q)", got.Spec.S3, err, s3.Spec.S3.CredentialsFile)
	}
	sftp := &v1.Destination{Spec: v1.DestinationSpec{SFTP: &v1.SFTPDestination{User: "u", PasswordFile: "/p"}}}
	if got, err := WithCredentials(sftp, key); err != nil || got.Spec.SFTP.PrivateKeyFile != key || got.Spec.SFTP.PasswordFile != "" {
		t.Errorf("sftp with a key: %+v, %v", got.Spec.SFTP, err)
	}
	if got, err := WithCredentials(sftp, pass); err != nil || got.Spec.SFTP.PasswordFile != pass || got.Spec.SFTP.PrivateKeyFile != "" {
		t.Errorf("sftp with a password: %+v, %v", got.Spec.SFTP, err)
	}
	ftp := &v1.Destination{Spec: v1.DestinationSpec{FTP: &v1.FTPDestination{PasswordFile: "/p"}}}
	if got, err := WithCredentials(ftp, pass); err != nil || got.Spec.FTP.PasswordFile != pass {
		t.Errorf("ftp: %+v, %v", got.Spec.FTP, err)
	}
	local := &v1.Destination{Metadata: v1.ObjectMeta{Name: "disk"}, Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: "/b"}}}
	if _, err := WithCredentials(local, pass); err == nil || err.Error() != "destination disk: a local destination has no credentials to replace" {
		t.Errorf("local: %v", err)
	}
}

func TestParseCredentialFlags(t *testing.T) {
	got, err := ParseCredentialFlags([]string{"/root/prune.creds", "offsite=/root/offsite.creds"})
	want := map[string]string{"": "/root/prune.creds", "offsite": "/root/offsite.creds"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range [][]string{{"a="}, {"x", "y"}} {
		if _, err := ParseCredentialFlags(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
